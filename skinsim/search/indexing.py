"""Embed a whole image archive with a run's model, in shards that survive a kill, and index it with FAISS.

    python -m skinsim.index --run demo ../shared/ham10000/images --name ham10000
    python -m skinsim.index --run demo photos.csv          # a CSV: a `path` column, other columns kept as metadata
    torchrun --standalone --nproc_per_node 4 -m skinsim.index -- --run demo SOURCE   # ranks share the shards

(torchrun takes `--run` for its own `--run-path`; the `--` hands everything after it to skinsim.search.indexing.)

SOURCE is a folder (every .jpg/.jpeg/.png below it, sorted, hidden files and folders skipped) or a CSV whose
`path` column holds paths relative to the CSV's folder or absolute. Each image is resized, normalised and embedded
as in training (search_index.SearchIndex, flips averaged when the run's config says tta). The archive is written
to RUN/archives/NAME/ (layout: skinsim.search.archive, data/README.md): a plan of every file (sha256, shard), parquet
shards of embedded images, reports of unreadable files and of byte-identical duplicates (embedded once), a
FAISS index and manifest.json. A finished shard is never embedded again: after a kill, run the same command.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from skinsim.compute.allocator import keep_freed_memory
from skinsim.compute.compiled import SETTINGS, use_compile
from skinsim.compute.device import pick_device
from skinsim.compute.distributed import World, gather_objects, same_on_all, stop
from skinsim.data.images import parse_size, to_array
from skinsim.runs.folder import write_atomic, write_vectors
from skinsim.runs.spreadsheet import neutralise
from skinsim.search import vector_index
from skinsim.search.archive import (
    DUPLICATES,
    FILE_COLUMNS,
    INDEX,
    PLAN,
    UNREADABLE,
    ArchiveError,
    read_manifest,
    read_shards,
    shard_file,
)
from skinsim.search.archive_job import (
    BATCH_SIZE,
    PLAN_COLUMNS,
    SHARD_SIZE,
    Job,
    join_world,
    prepare_job,
    start_archive,
    update_manifest,
)

# ---------------------------------------------------------------- embedding the shards


@dataclass
class Decoded:
    """One file decoded at the model's input size, or why it could not be."""

    array: np.ndarray | None
    width: int = 0
    height: int = 0
    error: str | None = None


def decode(path: Path, size: tuple[int, int]) -> Decoded:
    """An image file as the model's input array (skinsim.data.images.to_array), with its original size."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            return Decoded(to_array(img, size), width, height)
    except Exception as err:  # PIL raises many types for broken, truncated or foreign files
        return Decoded(None, error=f"{type(err).__name__}: {err}")


def decoded_batches(paths: list[Path], size: tuple[int, int], batch_size: int,
                    pool: ThreadPoolExecutor) -> Iterator[list[Decoded]]:
    """Batches of decoded files; the next batch decodes while the caller embeds this one (two in memory at most)."""
    chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]

    def submit(i: int) -> list[Future[Decoded]]:
        return [pool.submit(decode, p, size) for p in chunks[i]] if i < len(chunks) else []

    ahead = submit(0)
    for i in range(len(chunks)):
        current, ahead = ahead, submit(i + 1)
        yield [f.result() for f in current]


def embed_shard(searcher: Any, rows: pd.DataFrame, root: Path, batch_size: int, pool: ThreadPoolExecutor,
                bar: tqdm) -> tuple[pd.DataFrame, np.ndarray, list[dict[str, Any]]]:
    """Embed one shard's files: (table of embedded files, their vectors, the files that could not be read)."""
    size = parse_size(searcher.config.image_size)
    kept, widths, heights, vectors, errors = [], [], [], [], []
    start = 0
    for batch in decoded_batches([root / p for p in rows["path"]], size, batch_size, pool):
        chunk = rows.iloc[start:start + len(batch)]
        start += len(batch)
        good = [i for i, d in enumerate(batch) if d.array is not None]
        errors += [{"row": int(r), "path": p, "error": d.error}
                   for r, p, d in zip(chunk.index, chunk["path"], batch) if d.array is None]
        if good:
            # PIL images of the model's size: SearchIndex's own preprocessing then only normalises them
            vectors.append(searcher.embed_images([Image.fromarray(batch[i].array) for i in good]))
            kept.append(chunk.iloc[good])
            widths += [batch[i].width for i in good]
            heights += [batch[i].height for i in good]
        bar.update(len(batch))
    table = pd.concat(kept) if kept else rows.iloc[:0]
    table = table.assign(id=table["sha256"].str[:16], width=np.array(widths, dtype=np.int64),
                         height=np.array(heights, dtype=np.int64))
    metadata = [c for c in rows.columns if c not in PLAN_COLUMNS]
    em = searcher.config.em
    return (table[FILE_COLUMNS + metadata].reset_index(drop=True),
            np.concatenate(vectors) if vectors else np.zeros((0, em), np.float32), errors)


def write_shard(folder: Path, j: int, table: pd.DataFrame, vectors: np.ndarray) -> None:
    """Write shard `j` under a temporary name and rename it into place."""
    write_atomic(folder / shard_file(j), lambda p: write_vectors(p, table, vectors))


def record_shard(folder: Path, j: int, rows: int, errors: list[dict[str, Any]]) -> None:
    """List shard `j` as finished in the manifest (with the files it could not read)."""
    entry = {"index": j, "file": shard_file(j), "rows": rows, "unreadable": errors}

    def add(manifest: dict[str, Any]) -> None:
        manifest["shards"] = sorted([e for e in manifest["shards"] if e["index"] != j] + [entry],
                                    key=lambda e: e["index"])

    update_manifest(folder, add)


def finished_shards(folder: Path) -> set[int]:
    """Shards the manifest lists whose file is there."""
    return {e["index"] for e in read_manifest(folder)["shards"] if (folder / e["file"]).is_file()}


def embed_my_shards(job: Job, world: World, device: torch.device) -> tuple[int, float]:
    """Embed the unfinished shards this rank owns (round robin): (files decoded, seconds after the model loaded)."""
    from skinsim.search.search_index import SearchIndex

    manifest = read_manifest(job.folder)
    plan = pd.read_parquet(job.folder / PLAN)
    done = finished_shards(job.folder)
    todo = [j for j in range(manifest["n_shards"]) if world.owns(j) and j not in done]
    if not todo:
        return 0, 0.0
    if world.is_main and done:
        print(f"{len(done)} of {manifest['n_shards']} shards are finished already; embedding the rest",
              file=sys.stderr)
    searcher = SearchIndex(job.run, device=str(device))
    began = time.perf_counter()
    rows_of = plan.groupby("shard").groups
    total = sum(len(rows_of[j]) for j in todo)
    searcher.compiled = use_compile(job.compile, device, total)
    batch_size = manifest["settings"]["batch_size"]
    with ThreadPoolExecutor(job.workers) as pool, tqdm(total=total, unit="img", desc=f"embedding {job.name}",
                                                       disable=not world.is_main) as bar:
        for j in todo:
            table, vectors, errors = embed_shard(searcher, plan.loc[rows_of[j]], job.source.root, batch_size, pool,
                                                 bar)
            write_shard(job.folder, j, table, vectors)
            record_shard(job.folder, j, len(table), errors)
    return total, time.perf_counter() - began


# ---------------------------------------------------------------- finishing: reports, index, manifest


def write_reports(folder: Path, plan: pd.DataFrame, manifest: dict[str, Any]) -> tuple[int, int]:
    """unreadable.csv (path, error) and duplicates.csv (path, copy_of, id, sha256, metadata); their lengths."""
    found = [e for s in manifest["shards"] for e in s["unreadable"]]
    early = plan[plan["error"].notna()]
    unreadable = pd.concat([pd.DataFrame({"row": early.index, "path": early["path"], "error": early["error"]}),
                            pd.DataFrame(found, columns=["row", "path", "error"])])
    unreadable = unreadable.sort_values("row").drop(columns="row")
    metadata = [c for c in plan.columns if c not in PLAN_COLUMNS]
    dups = plan[plan["copy_of"].notna()]
    dups = dups.assign(id=dups["sha256"].str[:16])[["path", "copy_of", "id", "sha256", *metadata]]
    # reports a person opens in a spreadsheet: a file named like a formula must not run as one
    write_atomic(folder / UNREADABLE, lambda p: neutralise(unreadable).to_csv(p, index=False))
    write_atomic(folder / DUPLICATES, lambda p: neutralise(dups).to_csv(p, index=False))
    return len(unreadable), len(dups)


def save_index(folder: Path, vectors: np.ndarray, spec: str) -> None:
    """Build the FAISS index of `spec` over the vectors and put it (and its sidecar) in place."""
    try:
        index = vector_index.build(vectors, spec)
    except ValueError as err:  # vector_index says which spec and why (e.g. fewer vectors than inverted lists)
        raise ArchiveError(f"{err}; the shards are kept: run again with another --index") from None
    except RuntimeError as err:
        raise ArchiveError(f"FAISS could not build the index {spec!r} over {len(vectors)} vectors "
                           f"({str(err).strip().splitlines()[-1]}); the shards are kept: run again with another "
                           "--index") from None
    tmp = folder / f".{INDEX}.{os.getpid()}.tmp"
    vector_index.save(index, tmp, vectors, spec)
    # the sidecar first: between the two renames the old index still matches (same vectors, same digest)
    os.replace(tmp.with_name(tmp.name + ".json"), folder / f"{INDEX}.json")
    os.replace(tmp, folder / INDEX)


def finish_archive(job: Job, throughput: dict[str, Any]) -> dict[str, Any]:
    """Rank 0, once every shard is written: reports, the FAISS index, the completed manifest."""
    folder, manifest = job.folder, read_manifest(job.folder)
    missing = sorted(set(range(manifest["n_shards"])) - finished_shards(folder))
    if missing:
        raise ArchiveError(f"shards {missing[:10]} of archive {job.name} are not finished; run the command again")
    plan = pd.read_parquet(folder / PLAN)
    n_unreadable, n_dups = write_reports(folder, plan, manifest)
    table, vectors = read_shards(folder, manifest)
    if len(vectors) == 0:
        raise ArchiveError(f"none of the {len(plan)} files of {job.source.path} could be read as an image; "
                           f"see {folder / UNREADABLE}")
    spec = job.spec or vector_index.auto_spec(len(vectors))
    began = time.perf_counter()
    save_index(folder, vectors, spec)
    throughput["index_s"] = round(time.perf_counter() - began, 3)
    throughput["peak_rss_mib"] = round(max(throughput["peak_rss_mib"], peak_rss_mib()), 1)  # index building too
    counts = {"files": len(plan), "embedded": len(table), "duplicates": n_dups, "unreadable": n_unreadable}

    def complete(m: dict[str, Any]) -> None:
        m.update(complete=True, counts=counts, index={"file": INDEX, "spec": spec, "ntotal": len(vectors)},
                 throughput=throughput, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    manifest = update_manifest(folder, complete)
    (folder / ".manifest.lock").unlink(missing_ok=True)
    return manifest


# ---------------------------------------------------------------- the command


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024








def summary_line(manifest: dict[str, Any]) -> str:
    """One line for people and benchmarks: counts, images/s, seconds, peak memory."""
    c, t = manifest["counts"], manifest["throughput"]
    return (f"archive {manifest['name']}: {c['files']:,} files, {c['embedded']:,} embedded, {c['duplicates']:,} "
            f"duplicates, {c['unreadable']:,} unreadable; this run decoded and embedded {t['images']:,} images in "
            f"{t['embed_s']:.1f} s on {t['processes']} process(es) ({t['device']}): {t['images_per_s']:.1f} "
            f"images/s; plan {t['plan_s']:.1f} s, index {manifest['index']['spec']} {t['index_s']:.1f} s; peak RSS "
            f"{t['peak_rss_mib']:.0f} MiB (largest process)")


def index_archive(job: Job, world: World, device: torch.device) -> int:
    """Plan (rank 0), embed (every rank), finish (rank 0); the exit status."""
    began = time.perf_counter()
    state: tuple[str, str] = ("", "")
    if world.is_main:
        try:
            state = ("ok", start_archive(job))
        except (ArchiveError, vector_index.IndexMismatch, OSError) as err:
            state = ("error", str(err))
    state = same_on_all(state, world)
    if state[0] == "error":
        if world.is_main:
            print(f"error: {state[1]}", file=sys.stderr)
        return 2
    if state[1] == "complete":
        if world.is_main:
            print(f"archive {job.name} of run {job.run.name} is complete ({job.folder}); nothing to do")
        return 0
    plan_s = time.perf_counter() - began
    images, embed_s = embed_my_shards(job, world, device)
    per_rank = gather_objects((images, embed_s, peak_rss_mib()), world)
    world.barrier()
    if not world.is_main:
        return 0
    n = sum(r[0] for r in per_rank)
    seconds = max(r[1] for r in per_rank)
    throughput = {"images": n, "embed_s": round(seconds, 3), "images_per_s": round(n / seconds, 2) if n else 0.0,
                  "plan_s": round(plan_s, 3), "processes": world.size, "device": device.type,
                  "peak_rss_mib": round(max(r[2] for r in per_rank), 1)}
    try:
        manifest = finish_archive(job, throughput)
    except (ArchiveError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {job.folder}")
    print(summary_line(manifest))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command's flags."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.index", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE", help="a folder of JPEG/PNG images, or a CSV with a path column")
    parser.add_argument("--run", default="latest", help="run folder or name under data/runs (default: latest)")
    parser.add_argument("--name", default=None, help="archive name: RUN/archives/NAME (default: SOURCE's name)")
    parser.add_argument("--index", default=None, metavar="SPEC",
                        help="FAISS index factory string (default: Flat up to 200,000 vectors, HNSW32 above)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help=f"images decoded and embedded at once (default {BATCH_SIZE}; fixed per archive)")
    parser.add_argument("--shard-size", type=int, default=None, metavar="N",
                        help=f"images per parquet shard (default {SHARD_SIZE}; fixed per archive)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="threads that read and decode images (default: up to 4 per process)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where the model runs (default: cuda when available)")
    parser.add_argument("--compile", default="auto", choices=SETTINGS,
                        help="torch.compile the run's frozen trunk: auto (on the CPU for 2,000+ images), on or "
                             "off (default auto; speed only)")
    parser.add_argument("--rebuild-index", action="store_true",
                        help="rebuild a finished archive's FAISS index from its stored vectors (e.g. another --index)")
    args = parser.parse_args(argv)
    for flag in ("batch_size", "shard_size", "workers"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """CLI: embed SOURCE into an archive of the run; 2 (one message, nothing lost) on bad input."""
    args = parse_args(argv)
    try:
        job = prepare_job(args)
        device = pick_device(args.device)
    except ValueError as err:  # ArchiveError, IndexMismatch, and pick_device's "no CUDA GPU"
        print(f"error: {err}", file=sys.stderr)
        return 2
    keep_freed_memory()  # no page faults per batch (skinsim.compute.allocator)
    world = join_world(device)
    if device.type == "cuda" and world.distributed:
        device = torch.device("cuda", world.local_rank)
    try:
        return index_archive(job, world, device)
    finally:
        stop(world)

