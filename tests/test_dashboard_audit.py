"""The dashboard's audit features through its entry point (AppTest): the Data quality page (its review of pairs
possibly of one lesion into a merges file included), 'why similar' heat maps in the map panel and the query viewer,
and selections kept in the run folder and reopened on the map."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import dashboard_helpers as helpers  # noqa: E402
from skinsim.audit import run_audit  # noqa: E402
from skinsim.data.merges import FILE_NAME, read_merges  # noqa: E402
from skinsim.runs.folder import read_vectors, write_vectors  # noqa: E402

ENTRY = str(helpers.REPO / "dashboard" / "Home.py")
QUALITY, MAP, QUERY = "app_pages/data_quality.py", "app_pages/embedding_map.py", "app_pages/query_viewer.py"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A runs folder whose run 'audited' has one planted duplicate: (root, the train image, its val copy)."""
    root = tmp_path_factory.mktemp("audit_runs")
    run = helpers.make_run(root, "audited", n=300, seed=3)
    meta = read_vectors(run / "embeddings.parquet")[0]
    source = meta[meta["split"] == "train"].iloc[0]
    copy = meta[(meta["split"] == "val") & (meta["lesion_id"] != source["lesion_id"])].iloc[0]
    images = root / "audited-data" / "images"
    # the helper's images are plain blobs, many identical by chance: give every image its own texture
    rng = np.random.default_rng(3)
    for image_id in meta["image_id"]:
        Image.fromarray(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)).save(images / f"{image_id}.jpg")
    shutil.copyfile(images / f"{source['image_id']}.jpg", images / f"{copy['image_id']}.jpg")
    run_audit(run, quiet=True)
    return root, str(source["image_id"]), str(copy["image_id"])


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str]]]:
    """A runs folder whose run 'leaky' embeds the images of one lesion close together, with three planted pairs of
    two lesion ids (train / val or test, one diagnosis) embedded almost alike: (root, the planted pairs)."""
    root = tmp_path_factory.mktemp("leaky_runs")
    run = helpers.make_run(root, "leaky", n=300, seed=5)
    meta, vectors = read_vectors(run / "embeddings.parquet")
    rng = np.random.default_rng(5)
    for image_id in meta["image_id"]:
        Image.fromarray(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)).save(
            root / "leaky-data" / "images" / f"{image_id}.jpg")
    first = {lesion: vectors[i] for i, lesion in zip(meta.index[::-1], meta["lesion_id"][::-1])}
    vectors = np.stack([first[lesion] for lesion in meta["lesion_id"]]) + rng.normal(scale=0.08, size=vectors.shape)
    planted = []
    for n, (i, row) in enumerate(meta[meta["split"] == "train"].iloc[::40].head(3).iterrows()):
        j = meta[(meta["split"] != "train") & (meta["dx"] == row["dx"])].index[n]
        vectors[j] = vectors[i] + rng.normal(scale=0.005 * (n + 1), size=vectors.shape[1])
        planted.append((str(row["image_id"]), str(meta.loc[j, "image_id"])))
    write_vectors(run / "embeddings.parquet", meta, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
                  .astype(np.float32))
    run_audit(run, quiet=True)
    return root, planted


def app(runs: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None) -> AppTest:
    """The dashboard over `runs`, on `page` when given."""
    monkeypatch.setenv("SKINSIM_RUNS", str(runs))
    monkeypatch.delenv("SKINSIM_DATA", raising=False)
    at = AppTest.from_file(ENTRY, default_timeout=120).run()
    if page:
        at.switch_page(page).run()
    return at


def clean(at: AppTest, title: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title][:1] == [title]


def tile_ids(at: AppTest) -> list[str]:
    """The image ids at the end of every tile caption on the page, in order."""
    return [c.rsplit(" · ", 1)[-1] for image in at.image for c in (image.captions or []) if " · " in c]


def fingerprint(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


def test_data_quality_shows_the_planted_duplicate_as_a_leak(audited: tuple[Path, str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root, source, copy = audited
    at = app(root, monkeypatch, QUALITY)
    clean(at, "Data quality")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Near-duplicate pairs"]) >= 1 and int(metrics["Pairs across splits"]) >= 1
    assert {source, copy} <= {c.split(" · ")[0] for image in at.image for c in (image.captions or [])}
    facts = " ".join(m.value for m in at.markdown)
    assert "identical bytes" in facts and "crosses splits" in facts and "different lesion ids" in facts
    at.checkbox(key="dq_cross").check().run()
    at.checkbox(key="dq_other").check().run()
    clean(at, "Data quality")
    pairs = [m.value for m in at.markdown if "**rule**" in m.value]
    assert pairs and all("crosses splits" in p and "different lesion ids" in p for p in pairs)


def test_data_quality_filters_label_issues_and_outliers(audited: tuple[Path, str, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, _, _ = audited
    meta = read_vectors(root / "audited" / "embeddings.parquet")[0].set_index("image_id")
    at = app(root, monkeypatch, QUALITY)
    at.checkbox(key="dq_flagged").uncheck().run()
    at.multiselect(key="dq_split").set_value(["val"]).run()
    at.multiselect(key="dq_dx_type").set_value(["histo"]).run()
    clean(at, "Data quality")
    label_tiles = [c for image in at.image for c in (image.captions or []) if "quality" in c]
    outlier_tiles = [c for image in at.image for c in (image.captions or []) if c.startswith("#")]
    assert label_tiles and outlier_tiles
    for caption in label_tiles + outlier_tiles:
        image_id = caption.rsplit(" · ", 1)[-1]
        assert meta.loc[image_id, "split"] == "val" and meta.loc[image_id, "dx_type"] == "histo"
    qualities = [float(c.split("quality ")[1].split(" ")[0]) for c in label_tiles]
    assert qualities == sorted(qualities)  # most doubtful label first


def test_show_on_map_opens_the_image_with_its_neighbours(audited: tuple[Path, str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, source, copy = audited
    at = app(root, monkeypatch, QUALITY)
    first = at.image[0].captions[0].split(" · ")[0]  # image a of the first pair
    next(b for b in at.button if (b.key or "").startswith("dq_map_") and b.key.endswith("_a")).click().run()
    clean(at, "Embedding map")
    assert at.session_state["map_focus"] == ("audited", first)
    assert any(f"`{first}`" in m.value for m in at.markdown)  # the panel's image card


def test_a_run_without_an_audit_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helpers.make_run(tmp_path, "fresh", n=120, images=False)
    at = app(tmp_path, monkeypatch, QUALITY)
    clean(at, "Data quality")
    assert any("has not been audited" in i.value for i in at.info)
    assert any(c.value.startswith("python -m skinsim.audit ") for c in at.code)


def test_a_damaged_or_mixed_audit_gets_one_message(audited: tuple[Path, str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root, _, _ = audited
    shutil.copytree(root / "audited", tmp_path / "audited")
    run = tmp_path / "audited"
    (run / "audit_outliers.parquet").unlink()
    at = app(tmp_path, monkeypatch, QUALITY)
    clean(at, "Data quality")
    assert any("do not all come from" in w.value for w in at.warning)
    (run / "audit_label_issues.parquet").write_bytes(b"PAR1 not really parquet")
    at = app(tmp_path, monkeypatch, QUALITY)
    clean(at, "Data quality")
    assert any("cannot be read" in e.value and "audit_label_issues.parquet" in e.value for e in at.error)


def test_without_a_checkpoint_the_audit_shows_and_the_heat_maps_say_why_not(
        audited: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root, source, _ = audited
    assert not (root / "audited" / "checkpoint.safetensors").exists()
    at = app(root, monkeypatch, MAP)
    at.session_state["map_focus"] = ("audited", source)
    at.run()
    clean(at, "Embedding map")
    assert any("no checkpoint.safetensors" in i.value and "heat maps" in i.value for i in at.info)


def test_why_similar_on_the_map_and_for_an_upload(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = pd.read_parquet(tiny_run / "embeddings.parquet", columns=["image_id", "path", "split"])
    data_dir = Path(json.loads((tiny_run / "config.json").read_text())["meta"]["data_dir"])
    before = fingerprint(tiny_run)
    probe = meta[meta["split"] == "test"].iloc[0]
    at = app(tiny_run.parent, monkeypatch, MAP)
    at.session_state["map_focus"] = (tiny_run.name, probe["image_id"])
    at.run()
    pick = at.selectbox(key="map_why_pick")
    pick.select(pick.options[1]).run()
    clean(at, "Embedding map")
    maps = next(i for i in at.image if i.captions and i.captions[0].startswith("query · "))
    assert maps.captions[0] == f"query · {probe['image_id']}"
    assert maps.captions[1].startswith(pick.options[1]) and "cosine similarity" in maps.captions[1]
    assert any("Grad-CAM" in c.value for c in at.caption)

    at.switch_page(QUERY).run()
    at.radio(key="query_mode").set_value("Upload an image").run()
    content = (data_dir / probe["path"]).read_bytes()
    at.file_uploader(key="query_upload").set_value(("probe.jpg", content, "image/jpeg")).run()
    pick = at.selectbox(key="query_why_pick")
    pick.select(pick.options[2]).run()
    clean(at, "Query viewer")
    maps = next(i for i in at.image if i.captions and i.captions[0].startswith("query · "))
    assert maps.captions[0] == "query · uploaded image" and maps.captions[1].startswith(pick.options[2])
    assert fingerprint(tiny_run) == before  # explaining never writes into the run


def test_a_map_selection_is_kept_in_the_run_and_reopened_as_a_filter(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run = helpers.make_run(tmp_path, "sel", n=200, images=False)
    before = fingerprint(run)
    chosen = read_vectors(run / "embeddings.parquet")[0]["image_id"].iloc[:45].tolist()
    at = app(tmp_path, monkeypatch, MAP)
    at.session_state["map_selected"] = ("sel", chosen)
    at.run()
    at.text_input(key="map_sel_name").input("../bad").run()
    at.button(key="map_sel_save").click().run()
    assert any("cannot name a selection" in e.value for e in at.error)
    at.text_input(key="map_sel_name").input("first 45").run()
    at.button(key="map_sel_save").click().run()
    clean(at, "Embedding map")
    assert any("Saved 45 images as `first 45`" in s.value for s in at.success)
    saved = pd.read_csv(run / "selections" / "first 45.csv")
    assert saved["image_id"].tolist() == chosen
    assert saved.columns.tolist()[:4] == ["image_id", "lesion_id", "dx", "split"]
    # saving again under the same name is refused unless asked to replace
    at.button(key="map_sel_save").click().run()
    assert any("already exists" in e.value for e in at.error)

    at.button(key="map_clear").click().run()
    at.selectbox(key="f_selection").select("first 45").run()
    clean(at, "Embedding map")
    assert any(c.value.startswith("45 of 200 images shown") for c in at.caption)
    assert fingerprint(run) == before  # the run's own files are untouched


def test_a_data_quality_list_is_saved_as_a_selection(audited: tuple[Path, str, str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root, _, _ = audited
    shutil.copytree(root / "audited", tmp_path / "audited")
    run = tmp_path / "audited"
    at = app(tmp_path, monkeypatch, QUALITY)
    at.text_input(key="dq_lab_name").input("doubtful").run()
    at.button(key="dq_lab_save").click().run()
    clean(at, "Data quality")
    saved = pd.read_csv(run / "selections" / "doubtful.csv")
    flagged = pd.read_parquet(run / "audit_label_issues.parquet")
    assert set(saved["image_id"]) == set(flagged.loc[flagged["is_label_issue"], "image_id"])
    assert {"suggested_dx", "label_quality"} <= set(saved.columns)


DEMO = helpers.REPO / "data" / "runs" / "demo"


@pytest.mark.skipif(not (DEMO / "audit.json").is_file(), reason="the demo run has no committed audit")
def test_the_demo_audit_shows_ham10000s_two_byte_identical_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(DEMO.parent, monkeypatch, QUALITY)
    at.multiselect(key="dq_rule").set_value(["identical bytes"]).run()
    clean(at, "Data quality")
    shown = [image.captions[0].split(" · ")[0] for image in at.image  # pair tiles: 'ISIC_... · dx'
             if image.captions and image.captions[0].startswith("ISIC_")]
    pairs = {frozenset(shown[i:i + 2]) for i in range(0, len(shown), 2)}
    assert pairs == {frozenset({"ISIC_0029861", "ISIC_0024366"}), frozenset({"ISIC_0029938", "ISIC_0024777"})}


def same_lesion_pairs(at: AppTest) -> list[tuple[str, str]]:
    """The image ids of the pairs listed under 'Possibly the same lesion', in order (captions 'a · ... · id')."""
    tiles = [c.rsplit(" · ", 1)[-1] for image in at.image for c in (image.captions or [])
             if c.startswith(("a · ", "b · "))]
    return list(zip(tiles[::2], tiles[1::2]))


def pair_facts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "probability of one lesion" in m.value]


def verdict_keys(at: AppTest, a: str, b: str) -> tuple[str, str, str]:
    """The keys of the pair's verdict radio, note and Save button (they end in a digest of the merges path)."""
    radio = next(r.key for r in at.radio if r.key.startswith(f"dq_sl_{a}_{b}_") and r.key.endswith("_verdict"))
    stem = radio.removesuffix("_verdict")
    return radio, f"{stem}_note", f"{stem}_save"


def test_possibly_the_same_lesion_lists_the_planted_pairs_best_first(leaky: tuple[Path, list[tuple[str, str]]],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root, planted = leaky
    summary = json.loads((root / "leaky" / "audit.json").read_text())
    table = pd.read_parquet(root / "leaky" / "audit_same_lesion.parquet")
    at = app(root, monkeypatch, QUALITY)
    clean(at, "Data quality")
    shown = same_lesion_pairs(at)
    assert {frozenset(p) for p in shown[:3]} == {frozenset(p) for p in planted}
    assert len(shown) == 6  # one page
    probabilities = [float(f.split("probability of one lesion: ")[1].split("*")[0]) for f in pair_facts(at)]
    assert probabilities == sorted(probabilities, reverse=True) and min(probabilities) >= 0.5
    assert all("a leak" in f and "current verdict: not reviewed yet" in f for f in pair_facts(at)[:3])
    # the headline: every likely pair across splits counted once with the near-duplicates across splits
    metrics = {m.label: m.value for m in at.metric}
    dups = pd.read_parquet(root / "leaky" / "audit_duplicates.parquet")
    likely = table[(table["probability"] >= 0.5) & table["crosses_split"]]
    crossing = dups[dups["crosses_split"]]
    leaks = ({frozenset(p) for p in zip(likely["image_a"], likely["image_b"])}
             | {frozenset(p) for p in zip(crossing["image_a"], crossing["image_b"])})
    assert int(metrics["Pairs across splits"]) == len(leaks) > summary["counts"]["duplicates_crossing_split"]
    assert int(metrics["Possibly one lesion, two ids"]) == summary["counts"]["same_lesion_likely"]
    assert any(summary["same_lesion"]["how"] in c.value for c in at.caption)

    at.checkbox(key="dq_sl_cross").check().run()
    at.slider(key="dq_sl_p").set_value(0.9).run()
    clean(at, "Data quality")
    expected = table[(table["probability"] >= 0.9) & table["crosses_split"]]
    assert same_lesion_pairs(at) == list(zip(expected["image_a"], expected["image_b"]))[:6]
    assert all("crosses splits" in f for f in pair_facts(at))
    dx = str(expected["dx_a"].iloc[-1])  # the diagnosis filter keeps a pair when either image passes
    at.multiselect(key="dq_dx").set_value([dx]).run()
    keep = expected[(expected["dx_a"] == dx) | (expected["dx_b"] == dx)]
    assert same_lesion_pairs(at) == list(zip(keep["image_a"], keep["image_b"]))[:6]


def test_a_verdict_saved_on_the_page_lands_in_the_merges_file_and_stays(leaky: tuple[Path, list[tuple[str, str]]],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = leaky
    path = root / "leaky-data" / FILE_NAME  # the default: the dataset folder is writable
    try:
        at = app(root, monkeypatch, QUALITY)
        assert at.text_input(key="dq_merges_leaky").value == str(path)
        assert any("No verdicts yet" in c.value for c in at.caption)
        a, b = same_lesion_pairs(at)[0]
        radio, note, save = verdict_keys(at, a, b)
        at.button(key=save).click().run()
        assert any("Choose a verdict first" in e.value for e in at.error) and not path.exists()
        at.radio(key=radio).set_value("same").run()
        at.text_input(key=note).input("one nevus, two ids").run()
        at.button(key=save).click().run()
        clean(at, "Data quality")
        assert any(s.value.startswith("Saved: same lesion") for s in at.success)
        assert read_merges(path)[["image_a", "image_b", "verdict", "note"]].values.tolist() == [
            [a, b, "same", "one nevus, two ids"]]
        assert "current verdict: **same lesion** (one nevus, two ids)" in pair_facts(at)[0]
        assert any(c.value.startswith(f"1 pair reviewed in `{path}`: 1 same lesion") for c in at.caption)

        at = app(root, monkeypatch, QUALITY)  # a page reload: the verdict comes back from the file
        radio, note, save = verdict_keys(at, a, b)
        assert at.radio(key=radio).value == "same" and at.text_input(key=note).value == "one nevus, two ids"
        assert "current verdict: **same lesion**" in pair_facts(at)[0]
        at.radio(key=radio).set_value("different").run()
        at.button(key=save).click().run()
        assert read_merges(path)["verdict"].tolist() == ["different"]  # replaced, not added
        assert "current verdict: **different lesions**" in pair_facts(at)[0]
    finally:
        path.unlink(missing_ok=True)


def test_a_bad_merges_file_gets_one_message_and_loses_nothing(leaky: tuple[Path, list[tuple[str, str]]],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = leaky
    bad = tmp_path / "bad.csv"
    bad.write_text("image_a,image_b,verdict\nISIC_9000001,ISIC_9000002,maybe\n")
    at = app(root, monkeypatch, QUALITY)
    at.text_input(key="dq_merges_leaky").input(str(bad)).run()
    clean(at, "Data quality")
    assert len(at.error) == 1 and "verdicts must be same, different, unsure" in at.error[0].value
    assert len(same_lesion_pairs(at)) == 6 and at.tabs  # the page still renders
    a, b = same_lesion_pairs(at)[0]
    assert at.button(key=verdict_keys(at, a, b)[2]).disabled
    assert bad.read_text() == "image_a,image_b,verdict\nISIC_9000001,ISIC_9000002,maybe\n"

    stale = tmp_path / "stale.csv"  # readable, but of another dataset: its rows are kept when saving
    stale.write_text("image_a,image_b,verdict,note\nISIC_0000001,ISIC_0000002,same,elsewhere\n")
    at.text_input(key="dq_merges_leaky").input(str(stale)).run()
    assert len(at.error) == 1 and "does not have" in at.error[0].value
    radio, _, save = verdict_keys(at, a, b)
    at.radio(key=radio).set_value("unsure").run()
    at.button(key=save).click().run()
    assert read_merges(stale)["verdict"].tolist() == ["same", "unsure"]

    nowhere = tmp_path / "nowhere" / "merges.csv"
    at.text_input(key="dq_merges_leaky").input(str(nowhere)).run()
    radio, _, save = verdict_keys(at, a, b)
    at.radio(key=radio).set_value("same").run()
    at.button(key=save).click().run()
    clean(at, "Data quality")
    assert len(at.error) == 1 and "does not exist" in at.error[0].value and not nowhere.parent.exists()


def test_why_similar_is_one_click_away_for_a_candidate_pair(tiny_run: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(tiny_run, tmp_path / tiny_run.name)  # the session's run stays as it was
    run_audit(tmp_path / tiny_run.name, quiet=True)
    at = app(tmp_path, monkeypatch, QUALITY)
    at.slider(key="dq_sl_p").set_value(0.0).run()  # a model trained for two epochs is sure of no pair
    a, b = same_lesion_pairs(at)[0]
    at.toggle(key="dq_sl_why_0_on").set_value(True).run()
    clean(at, "Data quality")
    maps = next(i for i in at.image if i.captions and i.captions[0].startswith("heat map · "))
    assert maps.captions[0] == f"heat map · {a}"
    assert maps.captions[1].startswith(f"heat map · {b} · cosine similarity")


def test_an_audit_from_before_the_same_lesion_table_asks_for_a_rerun(leaky: tuple[Path, list[tuple[str, str]]],
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = leaky
    shutil.copytree(root / "leaky", tmp_path / "leaky")
    run = tmp_path / "leaky"
    (run / "audit_same_lesion.parquet").unlink()
    summary = json.loads((run / "audit.json").read_text())
    summary["format_version"] = 1
    del summary["same_lesion"]
    summary["counts"] = {k: v for k, v in summary["counts"].items() if not k.startswith("same_lesion")}
    (run / "audit.json").write_text(json.dumps(summary))
    at = app(tmp_path, monkeypatch, QUALITY)
    clean(at, "Data quality")
    assert not at.warning  # an older audit is whole without the table
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Possibly one lesion, two ids"] == "–"
    assert int(metrics["Pairs across splits"]) == summary["counts"]["duplicates_crossing_split"]
    assert sum("re-run the audit to look for one lesion filed under two ids" in i.value for i in at.info) == 2
    assert not same_lesion_pairs(at)


@pytest.mark.skipif(not (DEMO / "audit.json").is_file(), reason="the demo run has no committed audit")
def test_the_demo_shows_its_leak_and_keeps_verdicts_out_of_the_shared_dataset(
        monkeypatch: pytest.MonkeyPatch) -> None:
    summary = json.loads((DEMO / "audit.json").read_text())
    if "same_lesion" not in summary:
        pytest.skip("the demo audit predates the same-lesion table")
    at = app(DEMO.parent, monkeypatch, QUALITY)
    clean(at, "Data quality")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Possibly one lesion, two ids"].replace(",", "")) == summary["counts"]["same_lesion_likely"]
    crossing = summary["counts"]["same_lesion_likely_crossing_split"]
    assert int(metrics["Pairs across splits"].replace(",", "")) >= crossing
    if "leak_check" in summary:
        after = summary["leak_check"]["after_merges"]
        assert after["crossing"] == crossing and after["by_verdict"]["same"] == 0  # no known leak left
        assert any(c.value.startswith("Leak check: ") and f"{after['crossing']} cross the run's split" in c.value
                   for c in at.caption)
    default = Path(at.text_input(key="dq_merges_demo").value)
    assert default.name == f"ham10000_{FILE_NAME}" and default.parent.resolve() == helpers.REPO / "data"
    assert len(same_lesion_pairs(at)) == 6
