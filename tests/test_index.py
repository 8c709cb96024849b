"""`python -m skinsim.index`: an image archive embedded with a run's model, in shards that survive kill -9, under
torchrun, with duplicates and unreadable files reported; `skinsim.search.archive` reads it back."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.distributed as dist
from PIL import Image

from skinsim.search import vector_index
from skinsim.search.archive import (ArchiveError, check_name, list_archives, open_archive, read_manifest,
                             read_shards)
from skinsim.search.archive_plan import default_name
from skinsim.search.indexing import main

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--shard-size", "7", "--batch-size", "4"]
# 26 images in two nested folders, an uppercase .PNG, a byte copy, a truncated JPEG, a text file named .png;
# hidden files and folders and non-image suffixes are not listed
LISTED = 30
EMBEDDED = 27


def _images(synthetic_data: Path) -> list[Path]:
    return sorted((synthetic_data / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def source(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder tree of synthetic images with the awkward cases an archive meets."""
    root = tmp_path_factory.mktemp("archive_source") / "photos"
    images = _images(synthetic_data)
    for i, image in enumerate(images[:26]):
        folder = root / ("a" if i < 13 else "b/c")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / image.name)
    Image.open(images[30]).save(root / "lesion.PNG")
    shutil.copy(images[0], root / "copy.jpg")                      # the same bytes as a/<first image>
    content = images[31].read_bytes()
    (root / "broken.jpg").write_bytes(content[: len(content) // 2])  # truncated
    (root / "fake.png").write_text("not an image")
    (root / "notes.txt").write_text("not listed")
    (root / ".hidden").mkdir()
    shutil.copy(images[40], root / ".hidden" / "skipped.jpg")
    shutil.copy(images[41], root / ".skipped.jpg")
    return root


@pytest.fixture(scope="module")
def run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny trained run, so archives written here never touch the session's run."""
    out = tmp_path_factory.mktemp("index_runs") / "tiny"
    shutil.copytree(tiny_run, out)
    return out


@pytest.fixture(scope="module")
def archive(run: Path, source: Path) -> Path:
    """The source embedded into archive 'photos' in one uninterrupted process."""
    assert main(["--run", str(run), str(source), *ARGS]) == 0
    return run / "archives" / "photos"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_archive_holds_every_readable_image_once(archive: Path, source: Path) -> None:
    manifest = read_manifest(archive)
    assert manifest["complete"] and manifest["version"] == 1
    assert manifest["counts"] == {"files": LISTED, "embedded": EMBEDDED, "duplicates": 1, "unreadable": 2}
    # 29 distinct files in shards of 7; broken.jpg and fake.png fall in shard 3
    assert manifest["n_shards"] == 5 and [s["rows"] for s in manifest["shards"]] == [7, 7, 7, 5, 1]
    assert sorted(p.name for p in (archive / "shards").iterdir()) == [f"shard-0000{j}.parquet" for j in range(5)]
    assert manifest["run"]["checkpoint_sha256"] == sha(archive.parents[1] / "checkpoint.safetensors")
    assert manifest["index"] == {"file": "index.faiss", "spec": "Flat", "ntotal": EMBEDDED}

    table, vectors = read_shards(archive, manifest)
    listed = sorted(p.relative_to(source).as_posix() for p in source.rglob("*")
                    if p.suffix.lower() in (".jpg", ".png") and not any(s.startswith(".") for s in
                                                                       p.relative_to(source).parts))
    assert len(listed) == LISTED
    expected = [p for p in listed if p not in ("copy.jpg", "broken.jpg", "fake.png")]
    assert table["path"].tolist() == expected  # sorted, recursive, duplicates and broken files left out
    assert table["sha256"].tolist() == [sha(source / p) for p in expected]
    assert (table["id"] == table["sha256"].str[:16]).all() and table["id"].is_unique
    assert table["file_size"].tolist() == [(source / p).stat().st_size for p in expected]
    assert set(zip(table["width"], table["height"])) == {(40, 30)}
    assert vectors.shape == (EMBEDDED, 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)

    dups = pd.read_csv(archive / "duplicates.csv")
    first = table["path"].iloc[0]
    assert dups[["path", "copy_of"]].values.tolist() == [["copy.jpg", first]]
    assert dups["id"].iloc[0] == table["id"].iloc[0]
    bad = pd.read_csv(archive / "unreadable.csv")
    assert bad["path"].tolist() == ["broken.jpg", "fake.png"]
    assert "truncated" in bad["error"].iloc[0].lower() and "UnidentifiedImageError" in bad["error"].iloc[1]


def test_vectors_are_the_search_index_embeddings(archive: Path, run: Path, source: Path) -> None:
    from skinsim.search.search_index import SearchIndex

    opened = open_archive(run, "photos")
    searcher = SearchIndex.from_run(run)
    paths = [source / p for p in opened.table["path"]]
    # shard 0 (7 readable images) was embedded in batches of 4 and 3: SearchIndex gives the very same numbers
    direct = np.concatenate([searcher.embed_images(paths[:4]), searcher.embed_images(paths[4:7])])
    np.testing.assert_array_equal(opened.vectors[:7], direct)
    # other batches only move the last bits (CPU kernels sum in another order)
    np.testing.assert_allclose(searcher.embed_images(paths[:10]), opened.vectors[:10], atol=1e-6)
    # and they agree with the vectors the run stored for the same images in training
    stored_table, stored = searcher.run.embeddings()
    by_id = dict(zip(stored_table["image_id"], stored))
    for path, vector in zip(opened.table["path"], opened.vectors):
        if Path(path).stem in by_id:
            assert float(vector @ by_id[Path(path).stem]) > 0.99


def test_a_compiled_archive_holds_the_same_vectors(run: Path, source: Path, tmp_path: Path) -> None:
    # a float32 run: bfloat16 embedding passes would turn the float16 cache's last-bit differences into 1e-2 ones
    run32 = tmp_path / "tiny32"
    shutil.copytree(run, run32, ignore=shutil.ignore_patterns("archives"))
    config = json.loads((run32 / "config.json").read_text())
    (run32 / "config.json").write_text(json.dumps({**config, "precision": "fp32"}))
    assert main(["--run", str(run32), str(source), *ARGS, "--name", "photos", "--compile", "off"]) == 0
    assert main(["--run", str(run32), str(source), *ARGS, "--name", "photos-compiled", "--compile", "on"]) == 0
    eager, compiled = open_archive(run32, "photos"), open_archive(run32, "photos-compiled")
    assert list(compiled.table["path"]) == list(eager.table["path"])
    np.testing.assert_allclose(compiled.vectors, eager.vectors, atol=1e-4)  # fused kernels move the last bits


def test_open_archive_and_neighbours(archive: Path, run: Path) -> None:
    opened = open_archive(run, "photos")
    assert "photos" in list_archives(run) and opened.name == "photos"
    hits = opened.neighbours(opened.vectors[[3, 20]], k=5)
    assert len(hits) == 2
    for row, found in zip([3, 20], hits):
        assert list(found.columns) == ["rank", "id", "path", "distance"]
        assert found["rank"].tolist() == [1, 2, 3, 4, 5]
        assert found["id"].iloc[0] == opened.table["id"].iloc[row] and found["distance"].iloc[0] < 1e-3
        assert found["distance"].is_monotonic_increasing
    assert opened.image_path(opened.table["path"].iloc[0]).is_file()


def test_search_index_and_its_cli_search_an_archive(archive: Path, run: Path, capsys: pytest.CaptureFixture) -> None:
    from skinsim.search.search_index import SearchIndex
    from skinsim.search.search_index import main as search_main

    opened = open_archive(run, "photos")
    image = opened.image_path(opened.table["path"].iloc[7])
    index = SearchIndex.from_run(run, archive="photos")
    found = index.query_image(image, k=4)
    expected = opened.neighbours(index.embed_images([image]), k=4)[0]
    pd.testing.assert_frame_equal(found, expected)
    assert found["id"].iloc[0] == opened.table["id"].iloc[7]  # the image finds its own archived copy first
    assert search_main(["--run", str(run), "--archive", "photos", "-k", "3", str(image)]) == 0
    out = capsys.readouterr().out
    assert "3 nearest in archive photos" in out and opened.table["id"].iloc[7] in out
    assert search_main(["--run", str(run), "--archive", "nope", str(image)]) == 2
    assert "has no archive 'nope'" in capsys.readouterr().err


def test_running_again_on_a_complete_archive_changes_nothing(archive: Path, run: Path, source: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(archive)
    assert main(["--run", str(run), str(source)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert snapshot(archive) == before


# Runs skinsim.search.indexing with record_shard wrapped: the second shard is written but the process is killed (kill -9)
# before the manifest lists it, as a power cut would.
KILL_AT_SECOND_SHARD = """
import os, signal, sys
import skinsim.search.indexing as I
real_record, recorded = I.record_shard, []
def dying_record(folder, j, rows, errors):
    if recorded:
        os.kill(os.getpid(), signal.SIGKILL)
    recorded.append(j)
    real_record(folder, j, rows, errors)
I.record_shard = dying_record
sys.exit(I.main(sys.argv[1:]))
"""


def same_archive(a: Path, b: Path) -> None:
    """Two archives hold the same files, vectors, reports and index (names and times aside)."""
    ma, mb = read_manifest(a), read_manifest(b)
    for m in (ma, mb):
        for key in ("name", "created", "finished", "throughput"):
            m.pop(key)
    assert ma == mb
    (ta, va), (tb, vb) = read_shards(a, read_manifest(a)), read_shards(b, read_manifest(b))
    assert ta.equals(tb) and np.array_equal(va, vb)
    for report in ("plan.parquet", "unreadable.csv", "duplicates.csv", "index.faiss.json"):
        assert (a / report).read_bytes() == (b / report).read_bytes(), report


def test_kill_9_then_run_again_ends_equal_to_an_uninterrupted_archive(archive: Path, run: Path, source: Path) -> None:
    args = ["--run", str(run), str(source), "--name", "killed", *ARGS]
    done = subprocess.run([sys.executable, "-c", KILL_AT_SECOND_SHARD, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-3000:]
    killed = run / "archives" / "killed"
    manifest = read_manifest(killed)
    assert not manifest["complete"] and [s["index"] for s in manifest["shards"]] == [0]
    assert (killed / "shards" / "shard-00001.parquet").is_file()  # written, but not listed: it is redone
    assert "killed" not in list_archives(run)
    with pytest.raises(ArchiveError, match="unfinished"):
        open_archive(run, "killed")
    first = (killed / "shards" / "shard-00000.parquet").stat()

    assert main(args[:-4]) == 0  # the settings come from the manifest
    assert (killed / "shards" / "shard-00000.parquet").stat().st_mtime_ns == first.st_mtime_ns  # not redone
    same_archive(archive, killed)
    assert read_manifest(killed)["throughput"]["images"] == 30 - 7 - 1  # every file but shard 0's and the copy


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available in this torch build")
def test_two_torchrun_processes_write_the_archive_one_process_writes(run: Path, source: Path) -> None:
    # torchrun gives each process one thread; the single process gets one too, so the sums run in the same order
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["--run", str(run), str(source), *ARGS]
    one = subprocess.run([sys.executable, "-m", "skinsim.index", *args, "--name", "one"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    # torchrun reads `--run` as an abbreviation of its own --run-path: `--` hands the rest to the module
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "skinsim.index", "--", *args, "--name", "two"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1  # rank 0 alone finishes the archive
    same_archive(run / "archives" / "one", run / "archives" / "two")
    assert read_manifest(run / "archives" / "two")["throughput"]["processes"] == 2


def test_csv_source_keeps_its_metadata(run: Path, synthetic_data: Path, tmp_path: Path) -> None:
    images = _images(synthetic_data)
    (tmp_path / "imgs").mkdir()
    for image in images[:6]:
        shutil.copy(image, tmp_path / "imgs" / image.name)
    rows = [{"path": f"imgs/{p.name}", "label": f"L{i}", "score": i / 10} for i, p in enumerate(images[:6])]
    rows.append({"path": str(images[50]), "label": "absolute", "score": 0.9})           # an absolute path
    rows.append({"path": "imgs/missing.jpg", "label": "gone", "score": 1.0})             # no such file
    rows.append({"path": f"imgs/{images[2].name}", "label": "again", "score": 1.1})      # listed twice
    csv = tmp_path / "Clinic list 2026.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    assert main(["--run", str(run), str(csv), "--shard-size", "4"]) == 0
    opened = open_archive(run, default_name(csv))
    assert opened.name == "Clinic-list-2026" and opened.metadata_columns == ["label", "score"]
    assert opened.table["label"].tolist() == ["L0", "L1", "L2", "L3", "L4", "L5", "absolute"]
    assert opened.table["score"].tolist() == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.9])
    assert opened.image_path(opened.table["path"].iloc[-1]) == images[50]
    found = opened.neighbours(opened.vectors[6], k=3)[0]
    assert list(found.columns) == ["rank", "id", "path", "distance", "label", "score"]
    assert found["label"].iloc[0] == "absolute"
    bad = pd.read_csv(opened.path / "unreadable.csv")
    assert bad["path"].tolist() == ["imgs/missing.jpg"] and "FileNotFoundError" in bad["error"].iloc[0]
    dups = pd.read_csv(opened.path / "duplicates.csv")
    assert dups[["path", "copy_of", "label"]].values.tolist() == [[f"imgs/{images[2].name}"] * 2 + ["again"]]
    manifest = read_manifest(opened.path)
    assert manifest["source"]["kind"] == "csv" and manifest["source"]["root"] == str(tmp_path.resolve())


def bad_input_cases(run: Path, tmp_path: Path, source: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (command arguments, what the one error line says)."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.txt").write_text("x")
    (tmp_path / "no_path.csv").write_text("file,dx\na.jpg,nv\n")
    no_checkpoint = tmp_path / "runs" / "plain"
    no_checkpoint.mkdir(parents=True)
    for name in ("config.json", "embeddings.parquet", "metrics.json"):
        shutil.copy(run / name, no_checkpoint / name)
    r = ["--run", str(run)]
    return {
        "missing source": ([*r, str(tmp_path / "nowhere")], "does not exist"),
        "empty folder": ([*r, str(tmp_path / "empty")], "holds no"),
        "no images in folder": ([*r, str(tmp_path / "only_text")], "holds no"),
        "csv without path": ([*r, str(tmp_path / "no_path.csv")], "has no `path` column"),
        "not a folder or csv": ([*r, str(tmp_path / "only_text" / "a.txt")], "neither a folder"),
        "no checkpoint": (["--run", str(no_checkpoint), str(source)], "no checkpoint.safetensors"),
        "no such run": (["--run", str(tmp_path / "norun"), str(source)], "not a complete run folder"),
        "name with a slash": ([*r, str(source), "--name", "a/b"], "cannot name an archive folder"),
        "name of a parent": ([*r, str(source), "--name", ".."], "cannot name an archive folder"),
        "hidden name": ([*r, str(source), "--name", ".x"], "cannot name an archive folder"),
        "bad index spec": ([*r, str(source), "--name", "spec", "--index", "NoSuchIndex9"], "not a FAISS index"),
    }


@pytest.mark.parametrize("case", ["missing source", "empty folder", "no images in folder", "csv without path",
                                  "not a folder or csv", "no checkpoint", "no such run", "name with a slash",
                                  "name of a parent", "hidden name", "bad index spec"])
def test_bad_input_is_one_message_and_exit_2(case: str, archive: Path, run: Path, source: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args, says = bad_input_cases(run, tmp_path, source)[case]
    before = snapshot(run)
    capsys.readouterr()
    assert main(args) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], out.err
    assert "Traceback" not in out.err and out.out == ""
    assert snapshot(run) == before  # nothing written, nothing lost


def test_a_stored_index_that_does_not_match_is_refused_then_rebuilt(archive: Path, run: Path, source: Path,
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "tiny"
    shutil.copytree(run, copy)
    folder = copy / "archives" / "photos"
    other = np.random.default_rng(0).normal(size=(EMBEDDED, 16)).astype(np.float32)
    vector_index.save(vector_index.build(other, "Flat"), folder / "index.faiss", other, "Flat")
    with pytest.raises(vector_index.IndexMismatch):
        open_archive(copy, "photos")
    before = snapshot(copy)
    capsys.readouterr()
    assert main(["--run", str(copy), str(source)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "other vectors" in err and "--rebuild-index" in err
    assert snapshot(copy) == before

    assert main(["--run", str(copy), str(source), "--rebuild-index", "--index", "HNSW32"]) == 0
    opened = open_archive(copy, "photos")
    assert read_manifest(folder)["index"]["spec"] == "HNSW32"
    assert opened.neighbours(opened.vectors[5], 1)[0]["id"].iloc[0] == opened.table["id"].iloc[5]


def test_an_index_that_cannot_be_built_keeps_the_embeddings(archive: Path, run: Path, source: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--run", str(run), str(source), "--name", "ivf", *ARGS]
    assert main([*args, "--index", "IVF256,Flat"]) == 2  # 256 inverted lists, 27 vectors
    assert "cannot be trained on 27 vectors" in capsys.readouterr().err
    manifest = read_manifest(run / "archives" / "ivf")
    assert not manifest["complete"] and len(manifest["shards"]) == manifest["n_shards"] == 5
    assert main(args) == 0
    assert read_manifest(run / "archives" / "ivf")["throughput"]["images"] == 0  # nothing embedded twice
    same_archive(archive, run / "archives" / "ivf")


def test_a_changed_source_or_other_settings_do_not_mix_into_an_archive(run: Path, source: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    copy_source = tmp_path / "photos"
    shutil.copytree(source, copy_source)
    folder = run / "archives" / "changing"
    args = ["--run", str(run), str(copy_source), "--name", "changing"]
    done = subprocess.run([sys.executable, "-c", KILL_AT_SECOND_SHARD, *args, *ARGS], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr[-3000:]
    before = snapshot(folder)
    assert main([*args, "--shard-size", "9"]) == 2
    assert "--shard-size 7" in capsys.readouterr().err
    shutil.copy(source / "a" / sorted(os.listdir(source / "a"))[1], copy_source / "new.jpg")
    assert main(args) == 2
    assert "SOURCE changed" in capsys.readouterr().err
    assert snapshot(folder) == before
    (copy_source / "new.jpg").unlink()
    assert main(args) == 0


def test_archive_names() -> None:
    assert default_name("/x/HAM10000 images") == "HAM10000-images"
    assert default_name("/x/.list.csv") == "list"
    assert check_name("ham10000_v2.1") == "ham10000_v2.1"
    for bad in ("", "a b", "a/b", "..", "x.", "-x", "é"):
        with pytest.raises(ArchiveError):
            check_name(bad)
