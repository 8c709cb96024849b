"""The dataset audit (skinsim.audit) on small synthetic run folders built here: no model, no real data."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinsim.audit import FILES, FORMAT_VERSION, SUMMARY, AuditError, read_audit_table, run_audit
from skinsim.audit.__main__ import main
from skinsim.audit.knn import _smallest, lesion_codes, neighbours, unit_rows
from skinsim.runs.folder import read_json, write_json, write_vectors

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["image_id", "lesion_id", "split", "dx", "dx_type", "age", "sex", "localization", "path"]


@pytest.fixture(autouse=True)
def _no_shared_data(monkeypatch):
    monkeypatch.delenv("SKINSIM_DATA", raising=False)  # the fake run's own data folder must be the one used


def pattern(rng: np.random.Generator, size=(200, 150)) -> Image.Image:
    """A smooth random colour field: unrelated draws are far apart in pHash, unlike plain blobs."""
    small = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BICUBIC)


def write_run(root: Path, table: pd.DataFrame, vectors: np.ndarray, data_dir: Path | None) -> Path:
    """A run folder as training leaves it, minus the checkpoint: config, embeddings, metrics, split, curves."""
    run = root / "run"
    run.mkdir(parents=True)
    table = table.copy()
    for col in COLUMNS:
        if col not in table:
            table[col] = {"dx_type": "histo", "age": 50.0, "sex": "male", "localization": "back"}.get(col)
    if "path" not in table or table["path"].isna().all():
        table["path"] = "images/" + table["image_id"] + ".jpg"
    write_vectors(run / "embeddings.parquet", table[COLUMNS], vectors)
    write_json(run / "config.json", {"data_dir": str(data_dir), "meta": {"complete": True, "data_dir": str(data_dir)}})
    write_json(run / "metrics.json", {"overall": {"p_at_1": 0.5}})
    table[["image_id", "lesion_id", "dx", "split"]].to_parquet(run / "split.parquet", index=False)
    (run / "curves.csv").write_text("epoch,train_loss\n1,0.5\n")
    return run


def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def planted(tmp_path):
    """30 unrelated images plus planted duplicates; returns (run, {frozenset(ids): expected labels})."""
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    n = 30
    ids = [f"IMG_{i:03d}" for i in range(n)]
    lesions = [f"L{i:03d}" for i in range(n)]
    splits = ["train"] * n
    dx = ["nv"] * n
    vectors = random_unit(rng, n, 32)
    for i in range(n):
        pattern(rng).save(data / "images" / f"{ids[i]}.jpg", quality=90)

    def add(image_id, lesion, split, vector, write):
        ids.append(image_id), lesions.append(lesion), splits.append(split), dx.append("nv")
        vectors_list.append(vector)
        write(data / "images" / f"{image_id}.jpg")

    vectors_list = list(vectors)
    src = data / "images"
    # 1: byte-identical file, another lesion in another split, embeddings unrelated (not near in kNN)
    add("DUP_identical_x", "L900", "test", random_unit(rng, 1, 32)[0],
        lambda p: p.write_bytes((src / "IMG_000.jpg").read_bytes()))
    # 2: byte-identical file, same lesion and split, embeddings unrelated
    add("DUP_identical_same", "L001", "train", random_unit(rng, 1, 32)[0],
        lambda p: p.write_bytes((src / "IMG_001.jpg").read_bytes()))
    # 3: re-saved at another JPEG quality, same lesion, other split, almost the same embedding
    add("DUP_resaved", "L002", "val", vectors[2] + 1e-4 * rng.normal(size=32).astype(np.float32),
        lambda p: Image.open(src / "IMG_002.jpg").save(p, quality=70))
    # 4: tiny pixel noise, other lesion, same split, unrelated embedding: only the pHash finds it
    noisy = np.asarray(Image.open(src / "IMG_003.jpg")).astype(float) + rng.normal(0, 2, size=(150, 200, 3))
    add("DUP_noise", "L901", "train", random_unit(rng, 1, 32)[0],
        lambda p: Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(p, quality=90))
    # 5: a different picture with almost the same embedding (other lesion, other split): embedding only
    add("DUP_embedding", "L902", "test", vectors[4] + 1e-4 * rng.normal(size=32).astype(np.float32),
        lambda p: pattern(rng).save(p, quality=90))

    table = pd.DataFrame({"image_id": ids, "lesion_id": lesions, "split": splits, "dx": dx})
    run = write_run(tmp_path, table, np.stack(vectors_list), data)
    expected = {
        frozenset({"IMG_000", "DUP_identical_x"}): dict(rule="identical bytes", same_lesion=False, crosses_split=True),
        frozenset({"IMG_001", "DUP_identical_same"}): dict(rule="identical bytes", same_lesion=True,
                                                           crosses_split=False),
        frozenset({"IMG_002", "DUP_resaved"}): dict(rule="phash", same_lesion=True, crosses_split=True),
        frozenset({"IMG_003", "DUP_noise"}): dict(rule="phash", same_lesion=False, crosses_split=False),
        frozenset({"IMG_004", "DUP_embedding"}): dict(rule="embedding", same_lesion=False, crosses_split=True),
    }
    return run, expected


def test_planted_duplicates_are_found_with_their_labels_and_nothing_else(planted):
    run, expected = planted
    summary = run_audit(run, k=5, dup_k=5, quiet=True)
    dups, meta = read_audit_table(run / FILES["duplicates"])
    assert meta["format_version"] == FORMAT_VERSION and meta["table"] == "duplicates"
    found = {frozenset({a, b}): row for a, b, row in zip(dups["image_a"], dups["image_b"], dups.to_dict("records"))}
    assert set(found) == set(expected)
    for pair, want in expected.items():
        row = found[pair]
        assert {key: row[key] for key in want} == want, pair
        assert row["phash_distance"] is not None and not pd.isna(row["phash_distance"])
    ident = found[frozenset({"IMG_000", "DUP_identical_x"})]
    assert ident["identical_bytes"] and ident["phash_distance"] == 0 and ident["cosine_distance"] > 0.1
    assert not found[frozenset({"IMG_002", "DUP_resaved"})]["identical_bytes"]
    assert found[frozenset({"IMG_002", "DUP_resaved"})]["embedding_match"]
    assert found[frozenset({"IMG_004", "DUP_embedding"})]["phash_distance"] > 4
    assert summary["counts"]["duplicates_by_rule"] == {"identical bytes": 2, "phash": 2, "embedding": 1}
    assert summary["images"]["found"] == 35


def test_without_images_the_tables_are_written_and_hash_columns_are_null(planted, tmp_path):
    run, _ = planted
    config = read_json(run / "config.json")
    config["data_dir"] = config["meta"]["data_dir"] = str(tmp_path / "nowhere")
    write_json(run / "config.json", config)
    summary = run_audit(run, k=5, dup_k=5, quiet=True)
    dups, _ = read_audit_table(run / FILES["duplicates"])
    assert summary["images"]["found"] == 0
    # only the embedding rule is left: the re-saved copy and the planted neighbour
    assert {frozenset(p) for p in zip(dups["image_a"], dups["image_b"])} == {
        frozenset({"IMG_002", "DUP_resaved"}), frozenset({"IMG_004", "DUP_embedding"})}
    assert (dups["rule"] == "embedding").all()
    assert dups["phash_distance"].isna().all() and dups["identical_bytes"].isna().all()
    for name in FILES.values():
        assert (run / name).is_file()


def test_label_issues_rank_planted_wrong_lesion_labels_first(tmp_path):
    rng = np.random.default_rng(0)
    classes = ["bkl", "mel", "nv", "bcc"]
    centres = random_unit(rng, len(classes), 16) * 3
    rows, vectors, planted = [], [], set()
    lesion = 0
    for c, name in enumerate(classes):
        for j in range(40):  # 40 lesions per class, two close views each
            centre = centres[c] + 0.3 * rng.normal(size=16)
            # two lesions per class get two different wrong labels (both views: labels are per lesion), so
            # planted lesions never vote for each other's wrong label
            given = classes[(c + 1 + j) % len(classes)] if j < 2 else name
            for view in range(2):
                image_id = f"I{lesion:03d}_{view}"
                rows.append({"image_id": image_id, "lesion_id": f"L{lesion:03d}", "split": "train", "dx": given})
                vectors.append(centre + 0.02 * rng.normal(size=16))
                if given != name:
                    planted.add(image_id)
            lesion += 1
    vectors = unit_rows(np.array(vectors))
    run = write_run(tmp_path, pd.DataFrame(rows), vectors, None)
    run_audit(run, k=5, images=False, quiet=True)
    issues, _ = read_audit_table(run / FILES["label_issues"])
    assert list(issues.columns[:9]) == ["image_id", "lesion_id", "dx", "dx_type", "split", "suggested_dx",
                                        "label_quality", "is_label_issue", "rank"]
    top = issues.nsmallest(len(planted), "rank")
    assert set(top["image_id"]) == planted
    truth = {f"I{i:03d}_{v}": classes[i // 40] for i in range(160) for v in range(2)}
    assert top["is_label_issue"].all() and (top["suggested_dx"] == top["image_id"].map(truth)).all()
    assert issues["is_label_issue"].sum() == len(planted)  # and nothing else is flagged
    assert (issues["label_quality"] > 0).all()  # smoothing: no probability is 0
    assert sorted(issues["rank"]) == list(range(1, len(issues) + 1))


def test_label_votes_leave_out_the_images_own_lesion():
    # two views of one lesion side by side, everything else far: with siblings excluded, the view's
    # neighbours are other lesions only
    rng = np.random.default_rng(0)
    v = unit_rows(np.r_[np.ones((2, 8)) + 0.01 * rng.normal(size=(2, 8)), rng.normal(size=(10, 8))])
    lesions = lesion_codes(pd.Series(["A", "A"] + [f"B{i}" for i in range(10)]))
    nb = neighbours(v, lesions, k=3, m=3, block_bytes=64)  # tiny blocks exercise the block loop
    assert nb.idx[0, 0] == 1 and 1 not in nb.other_idx[0] and 0 not in nb.other_idx[0]
    # one lesion holding almost everything: the masked second search still fills what it can
    lesions = lesion_codes(pd.Series(["A"] * 11 + ["B"]))
    nb = neighbours(v, lesions, k=3, m=3)
    assert list(nb.other_idx[0]) == [11, -1, -1] and np.isnan(nb.other_dist[0, 1:]).all()


def test_candidate_selection_is_exact_nearest_first_ties_by_index():
    rng = np.random.default_rng(5)
    d = rng.random((40, 3000)).astype(np.float32)
    d[:, rng.integers(0, 3000, 30)] = 0.001  # ties inside the m nearest and at their edge
    d[7, :] = 0.25
    d[9, 100:2000] = np.inf
    got = _smallest(d, 12, sample=64)  # small sample: the bounded-candidate path
    want = np.array([np.lexsort((np.arange(3000), row))[:12] for row in d])
    assert np.array_equal(got, want)
    assert list(got[7]) == list(range(12))
    mixed = rng.random((10, 3000)).astype(np.float32)
    mixed[::2] = 0.5  # collapsed vectors: rows of equal distances take the partition path, the rest stay exact
    mixed[::2, 5] = 0.1
    got = _smallest(mixed, 12, sample=256)
    assert (got[::2, 0] == 5).all() and (np.take_along_axis(mixed[::2], got[::2, 1:], 1) == 0.5).all()
    assert np.array_equal(got[1::2], [np.lexsort((np.arange(3000), row))[:12] for row in mixed[1::2]])


def test_a_far_away_vector_is_the_top_outlier(tmp_path):
    rng = np.random.default_rng(3)
    centres = random_unit(rng, 3, 24)
    vectors = centres[rng.integers(0, 3, size=200)] + 0.05 * rng.normal(size=(200, 24))
    far = -centres.sum(0)  # opposite every cluster
    vectors = unit_rows(np.r_[vectors, far[None]])
    table = pd.DataFrame({"image_id": [f"I{i:03d}" for i in range(201)],
                          "lesion_id": [f"L{i:03d}" for i in range(201)], "split": "train", "dx": "nv"})
    run = write_run(tmp_path, table, vectors, None)
    run_audit(run, k=5, images=False, quiet=True)
    out, _ = read_audit_table(run / FILES["outliers"])
    assert out.iloc[0]["image_id"] == "I200" and out.iloc[0]["rank"] == 1
    assert out["score"].is_monotonic_decreasing


def test_the_runs_own_files_are_untouched_and_only_audit_files_are_added(planted):
    run, _ = planted
    assert not (run / "checkpoint.safetensors").exists()  # nothing here needs the model
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.iterdir()}
    mtimes = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    run_audit(run, k=5, quiet=True)
    run_audit(run, k=5, quiet=True)  # a second audit replaces its own files and nothing else
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.iterdir()}
    assert {name: after[name] for name in before} == before
    assert {name: (run / name).stat().st_mtime_ns for name in mtimes} == mtimes
    assert set(after) - set(before) == set(FILES.values()) | {SUMMARY}  # no temp files left behind
    summary = read_json(run / SUMMARY)
    assert summary["format_version"] == FORMAT_VERSION and summary["has_checkpoint"] is False
    assert set(summary["seconds"]) >= {"knn", "hash", "duplicates", "label_issues", "outliers", "total"}
    for name in FILES.values():
        assert read_audit_table(run / name)[1]["audit_id"] == summary["audit_id"]


def test_bad_input_gives_one_message_and_exit_2(tmp_path, planted, capsys):
    run, _ = planted
    cases = {
        tmp_path / "missing": "not a complete run folder",
        tmp_path / "data": "no config.json",
    }
    (run / "embeddings.parquet").rename(tmp_path / "embeddings.parquet.bak")
    cases[run] = "no embeddings.parquet"
    for path, words in cases.items():
        assert main([str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and words in err and len(err.splitlines()) == 1
    (run / "embeddings.parquet").write_bytes(b"not parquet")
    assert main([str(run)]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "embeddings.parquet.bak").replace(run / "embeddings.parquet")
    assert main([str(run), "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (run / SUMMARY).exists()


def test_bench_on_a_few_synthetic_vectors(capsys):
    assert main(["--bench", "300"]) == 0
    out = capsys.readouterr().out
    assert "300 images" in out and "seconds:" in out


def test_cli_runs_as_a_module_and_import_stays_light(planted):
    run, _ = planted
    done = subprocess.run([sys.executable, "-m", "skinsim.audit", str(run), "--k", "5", "--dup-k", "5"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "identical bytes 2, phash 2, embedding 1" in done.stdout and "seconds:" in done.stdout
    code = ("import sys, skinsim, skinsim.audit; "
            "print(any(m in sys.modules for m in ('cleanlab', 'imagehash', 'torch')))")
    light = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert light.stdout.strip() == "False", light.stderr


def test_phash_alone_does_not_make_a_duplicate(tmp_path):
    """A brighter copy keeps its pHash (only the DC term moves) but not its pixels: such pairs need both to agree."""
    from PIL import Image

    from skinsim.audit.duplicates import PIXEL_THRESHOLD
    from skinsim.audit.images import hamming, hash_images, pixel_distance

    yy, xx = np.mgrid[:150, :200]
    blob = ((yy - 75) ** 2 + (xx - 100) ** 2) < 40 ** 2
    base = np.where(blob[..., None], [70, 40, 30], [200, 150, 140]).astype(np.uint8)
    brighter = np.clip(base.astype(int) + 40, 0, 255).astype(np.uint8)
    files = []
    for name, pixels in (("a.png", base), ("b.png", brighter), ("c.png", base)):
        Image.fromarray(pixels).save(tmp_path / name)
        files.append(tmp_path / name)
    hashes = hash_images(files)
    assert hamming(hashes.phash[:1], hashes.phash[1:2])[0] == 0
    assert pixel_distance(hashes.thumbs, np.array([0]), np.array([1]))[0] > PIXEL_THRESHOLD
    assert pixel_distance(hashes.thumbs, np.array([0]), np.array([2]))[0] == 0.0


def test_read_audit_reads_back_what_was_written_and_refuses_newer_formats(tmp_path: Path) -> None:
    from skinsim.audit import read_audit
    from skinsim.audit.core import synthetic_run

    run = synthetic_run(tmp_path / "run", 300)
    assert read_audit(run) is None
    summary = run_audit(run, images=False, quiet=True)
    stored = read_audit(run)
    assert stored.complete and stored.summary["audit_id"] == summary["audit_id"]
    assert len(stored.label_issues) == len(stored.outliers) == 300
    (run / "audit_outliers.parquet").unlink()
    assert not read_audit(run).complete and read_audit(run).outliers.empty
    (run / "audit.json").write_text(json.dumps({**summary, "format_version": 99}))
    with pytest.raises(AuditError, match="newer than this skinsim"):
        read_audit(run)


def test_the_indexed_search_finds_the_exact_neighbours_on_a_small_run() -> None:
    """Above AUTO_EXACT_LIMIT the audit searches through FAISS; with an exact index it must equal the blocked
    numpy search, and HNSW must find nearly all of it."""
    from skinsim.audit.knn import indexed_neighbours, neighbours, unit_rows

    rng = np.random.default_rng(3)
    lesions = np.repeat(np.arange(400), 3)
    vectors = unit_rows(rng.normal(size=(400, 24))[lesions] + 0.5 * rng.normal(size=(1200, 24)))
    exact = neighbours(vectors, lesions, k=5, m=8)
    flat = indexed_neighbours(vectors, lesions, k=5, m=8, spec="Flat")
    assert (flat.idx == exact.idx).mean() > 0.999 and (flat.other_idx == exact.other_idx).mean() > 0.999
    assert np.allclose(flat.dist, exact.dist, atol=1e-5)
    hnsw = indexed_neighbours(vectors, lesions, k=5, m=8, spec="HNSW32")
    recall = np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(hnsw.idx, exact.idx)])
    assert recall > 0.95
