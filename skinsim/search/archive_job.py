"""An indexing job (`python -m skinsim.index`): what is indexed with which run, and the archive's manifest,
started, reopened after a kill or checked against what was asked for; ranks of a torchrun job share it."""
from __future__ import annotations

import argparse
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from skinsim.compute.distributed import World, start
from skinsim.runs.config import TrainConfig
from skinsim.runs.folder import Run, load_run, write_atomic, write_json
from skinsim.search import vector_index
from skinsim.search.archive import (
    ARCHIVE_VERSION,
    ARCHIVES,
    INDEX,
    MANIFEST,
    PLAN,
    SHARDS,
    ArchiveError,
    check_name,
    checkpoint_digest,
    read_manifest,
    read_shards,
)
from skinsim.search.archive_plan import Source, default_name, plan_files, read_source, same_listing

BATCH_SIZE = 64
SHARD_SIZE = 1000
PLAN_COLUMNS = ["path", "sha256", "file_size", "shard", "copy_of", "error"]


@dataclass
class Job:
    """One indexing command: the run and its model, the source, the archive folder and the settings asked for."""

    run: Run
    config: TrainConfig
    digest: str
    source: Source
    name: str
    folder: Path
    batch_size: int | None
    shard_size: int | None
    spec: str | None
    workers: int
    rebuild_index: bool
    compile: str = "auto"


@contextmanager
def _manifest_lock(folder: Path) -> Iterator[None]:
    # ranks of a torchrun job record their shards in the one manifest; the lock keeps their updates apart
    with open(folder / ".manifest.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read the manifest, apply `change`, write it back atomically, under the archive's lock."""
    with _manifest_lock(folder):
        manifest = read_manifest(folder)
        change(manifest)
        write_atomic(folder / MANIFEST, lambda p: write_json(p, manifest))
    return manifest


def new_manifest(job: Job, plan: pd.DataFrame, batch_size: int, shard_size: int) -> dict[str, Any]:
    """The manifest of an archive just planned: no shard finished yet."""
    return {"version": ARCHIVE_VERSION, "name": job.name, "complete": False,
            "run": {"name": job.run.name, "path": str(job.run.path.resolve()), "checkpoint_sha256": job.digest},
            "source": {"path": str(job.source.path), "kind": job.source.kind, "root": str(job.source.root)},
            "model": {"backbone": job.config.backbone, "em": job.config.em, "image_size": job.config.image_size,
                      "tta": job.config.tta, "precision": job.config.precision},
            "settings": {"batch_size": batch_size, "shard_size": shard_size},
            "metadata_columns": [c for c in plan.columns if c not in PLAN_COLUMNS],
            "n_shards": int(plan["shard"].max() + 1) if (plan["shard"] >= 0).any() else 0,
            "shards": [], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def start_archive(job: Job) -> str:
    """Plan a new archive, or check an existing one; 'new', 'resume', 'rebuild' or 'complete'. Rank 0 only."""
    folder = job.folder
    if (folder / MANIFEST).is_file():
        return reopen_archive(job)
    if folder.exists():
        ours = {PLAN, SHARDS, ".manifest.lock"}
        if any(not (p.name in ours or p.name.startswith(".")) for p in folder.iterdir()):
            raise ArchiveError(f"{folder} exists and is not an archive; choose another --name")
    batch_size, shard_size = job.batch_size or BATCH_SIZE, job.shard_size or SHARD_SIZE
    plan = plan_files(job.source, shard_size, job.workers)
    (folder / SHARDS).mkdir(parents=True, exist_ok=True)
    for leftover in (folder / SHARDS).iterdir():
        leftover.unlink()  # shards of a start that never wrote its manifest: nothing vouches for them
    write_atomic(folder / PLAN, lambda p: plan.to_parquet(p, index=False))
    manifest = new_manifest(job, plan, batch_size, shard_size)
    write_atomic(folder / MANIFEST, lambda p: write_json(p, manifest))
    return "new"


def reopen_archive(job: Job) -> str:
    """Check that an existing archive was made from this run, source and settings; say what is left to do."""
    folder, manifest = job.folder, read_manifest(job.folder)
    where = f"archive {job.name} ({folder})"
    if manifest.get("version") != ARCHIVE_VERSION:
        raise ArchiveError(f"{where} is version {manifest.get('version')}, not {ARCHIVE_VERSION}; choose another "
                           "--name")
    if manifest["run"]["checkpoint_sha256"] != job.digest:
        raise ArchiveError(f"{where} was embedded with another checkpoint; choose another --name")
    if manifest["source"]["path"] != str(job.source.path):
        raise ArchiveError(f"{where} was made from {manifest['source']['path']}, not {job.source.path}; choose "
                           "another --name")
    for key, asked in (("batch_size", job.batch_size), ("shard_size", job.shard_size)):
        if asked is not None and asked != manifest["settings"][key]:
            raise ArchiveError(f"{where} was started with --{key.replace('_', '-')} {manifest['settings'][key]}; "
                               "give that, or nothing, to continue it")
    changed = same_listing(pd.read_parquet(folder / PLAN), job.source)
    if changed:
        raise ArchiveError(f"SOURCE changed since {where} was started: {changed}; choose another --name")
    for leftover in (folder / SHARDS).glob(".*.tmp"):
        leftover.unlink()  # a shard being written when the process died
    if not manifest.get("complete"):
        return "resume"
    if job.rebuild_index:
        update_manifest(folder, lambda m: m.update(complete=False))
        return "rebuild"
    table, vectors = read_shards(folder, manifest)
    try:
        vector_index.load(folder / INDEX, vectors)
    except vector_index.IndexMismatch as err:
        raise vector_index.IndexMismatch(f"{err}; `--rebuild-index` rebuilds it from the stored vectors") from None
    return "complete"


def join_world(device: torch.device) -> World:
    """The torchrun world (a world of one without torchrun), with a timeout that outlasts hashing and embedding."""
    # rank 0 hashes every file while the others wait, and a rank resuming with little left waits for the rest at
    # the end: both can take hours on a big archive, far past torch's default 10-30 minutes
    return start(device, timeout=timedelta(hours=24))


def prepare_job(args: argparse.Namespace) -> Job:
    """Check the command's inputs (every rank does, before any process group); ArchiveError with one message."""
    try:
        run = load_run(args.run)
    except FileNotFoundError as err:
        raise ArchiveError(str(err)) from None
    digest = checkpoint_digest(run.path)
    if digest is None:
        raise ArchiveError(f"run {run.name} has no checkpoint.safetensors, so images cannot be embedded with its "
                           "model; index with a run trained by `python -m skinsim.train`")
    config = TrainConfig.from_dict(run.config)
    source = read_source(args.source)
    name = check_name(args.name if args.name is not None else default_name(args.source))
    if args.index is not None:
        check_spec(args.index, config.em)
    workers = args.workers or max(1, min(4, (os.cpu_count() or 1) // int(os.environ.get("WORLD_SIZE", "1"))))
    return Job(run=run, config=config, digest=digest, source=source, name=name,
               folder=run.path / ARCHIVES / name, batch_size=args.batch_size, shard_size=args.shard_size,
               spec=args.index, workers=workers, rebuild_index=args.rebuild_index, compile=args.compile)


def check_spec(spec: str, dim: int) -> None:
    """ArchiveError unless `spec` is a FAISS index factory string (checked before hours of embedding)."""
    import faiss

    try:
        faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise ArchiveError(f"--index {spec!r} is not a FAISS index factory string "
                           f"({str(err).strip().splitlines()[-1]})") from None
