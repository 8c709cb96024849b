"""Named selections kept in a run folder: round trip, names, refusals, and that nothing else in the run changes."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from skinsim.runs.selections import (SelectionError, list_selections, load_selection, read_selection, save_selection,
                                selection_table, to_csv)

META = pd.DataFrame({"image_id": ["I1", "I2", "I3", "I4"], "lesion_id": ["L1", "L1", "L2", "L3"],
                     "dx": ["nv", "nv", "mel", "bkl"], "split": ["train", "train", "val", "test"],
                     "age": [40.0, 40.0, 70.0, None]})


@pytest.fixture
def run(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "metrics.json").write_text('{"p_at_1": 0.5}')
    return folder


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "selections" not in p.parts}


def test_selection_table_keeps_the_given_order_and_the_scores() -> None:
    scores = pd.DataFrame({"distance": [0.1, 0.3]}, index=pd.Index(["I3", "I1"], name="image_id"))
    table = selection_table(META, ["I3", "I1", "nope", "I3"], scores)
    assert table.columns.tolist() == ["image_id", "lesion_id", "dx", "split", "distance"]
    assert table["image_id"].tolist() == ["I3", "I1"]
    assert table["distance"].tolist() == [0.1, 0.3]
    assert table["lesion_id"].tolist() == ["L2", "L1"]


def test_save_list_load_round_trip_and_nothing_else_changes(run: Path) -> None:
    before = fingerprint(run)
    table = selection_table(META, ["I1", "I4"], pd.DataFrame({"label_quality": [0.25, 0.5]},
                                                            index=pd.Index(["I1", "I4"], name="image_id")))
    path = save_selection(run, "suspect nevi", table)
    assert path == run / "selections" / "suspect nevi.csv"
    save_selection(run, "a-2", selection_table(META, ["I2"]))
    assert list_selections(run) == ["a-2", "suspect nevi"]
    back = load_selection(run, "suspect nevi")
    pd.testing.assert_frame_equal(back, table)
    assert fingerprint(run) == before
    assert not list(run.glob("selections/.*.tmp"))


def test_a_saved_selection_is_not_replaced_unless_asked(run: Path) -> None:
    save_selection(run, "mine", selection_table(META, ["I1"]))
    with pytest.raises(SelectionError, match="already exists"):
        save_selection(run, "mine", selection_table(META, ["I2"]))
    assert load_selection(run, "mine")["image_id"].tolist() == ["I1"]
    save_selection(run, "mine", selection_table(META, ["I2"]), overwrite=True)
    assert load_selection(run, "mine")["image_id"].tolist() == ["I2"]


@pytest.mark.parametrize("name", ["", "  ", "../escape", "a/b", ".hidden", "x" * 81, "trailing.", "semi;colon"])
def test_names_that_cannot_be_files_are_refused(run: Path, name: str) -> None:
    with pytest.raises(SelectionError, match="cannot name a selection"):
        save_selection(run, name, selection_table(META, ["I1"]))
    assert not (run / "selections").exists() or not any((run / "selections").iterdir())
    assert not (run.parent / "escape.csv").exists()


def test_an_empty_selection_or_a_folder_that_is_not_a_run_is_refused(run: Path, tmp_path: Path) -> None:
    with pytest.raises(SelectionError, match="at least one image"):
        save_selection(run, "empty", selection_table(META, []))
    with pytest.raises(SelectionError, match="not a run folder"):
        save_selection(tmp_path, "x", selection_table(META, ["I1"]))


def test_damaged_or_foreign_files_get_one_clear_message(run: Path) -> None:
    with pytest.raises(SelectionError, match="no selection named"):
        load_selection(run, "missing")
    (run / "selections").mkdir()
    (run / "selections" / "no ids.csv").write_text("name,score\nx,1\n")
    with pytest.raises(SelectionError, match="has no image_id column"):
        load_selection(run, "no ids")
    (run / "selections" / "empty.csv").write_text("")
    with pytest.raises(SelectionError, match="not a readable CSV"):
        load_selection(run, "empty")
    with pytest.raises(SelectionError, match="not a readable CSV"):
        read_selection(b"\xff\xfe\x00bad", "upload.csv")


def test_csv_bytes_read_back_as_text_ids() -> None:
    table = selection_table(pd.DataFrame({"image_id": ["007"], "lesion_id": ["010"], "dx": ["nv"],
                                          "split": ["val"]}), ["007"])
    back = read_selection(to_csv(table))
    assert back["image_id"].tolist() == ["007"] and back["lesion_id"].tolist() == ["010"]
