"""Reviewed lesion merges: reading, checking and applying a dataset's verdicts on image pairs, worked by hand."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from skinsim.data.merges import (MergeError, check_rows, default_file, merged_lesion_ids, read_merges, rows_for,
                                 save_verdict, with_own_merges)

TABLE = pd.DataFrame({"image_id": ["I1", "I2", "I3", "I4", "I5", "I6"],
                      "lesion_id": ["L3", "L3", "L1", "L2", "L4", "L5"]})


def merges(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return check_rows(pd.DataFrame(rows, columns=["image_a", "image_b", "verdict"]))


def test_same_verdicts_merge_lesions_transitively_under_the_smallest_id() -> None:
    # I1 (L3) = I3 (L1), I3 (L1) = I4 (L2): L1, L2 and L3 are one lesion, named L1; I2 follows its lesion L3
    m = merges(("I1", "I3", "same"), ("I3", "I4", "same"), ("I5", "I6", "different"), ("I2", "I5", "unsure"))
    assert merged_lesion_ids(TABLE, m).tolist() == ["L1", "L1", "L1", "L1", "L4", "L5"]


def test_no_same_verdict_changes_nothing() -> None:
    assert merged_lesion_ids(TABLE, merges(("I5", "I6", "unsure"))).tolist() == TABLE["lesion_id"].tolist()


@pytest.mark.parametrize("rows, message", [
    ([("I1", "NOPE", "same")], "does not have: NOPE"),
    ([("I1", "I3", "same"), ("I2", "I3", "different")], "judged different lesions"),  # I2 shares I1's lesion
    ([("I1", "I2", "different")], "judged different lesions"),  # one lesion id already
])
def test_contradictions_and_unknown_ids_get_one_message(rows, message) -> None:
    with pytest.raises(MergeError, match=message):
        merged_lesion_ids(TABLE, merges(*rows))


@pytest.mark.parametrize("csv, message", [
    ("image_a,image_b\nI1,I2\n", "lacks the column"),
    ("image_a,image_b,verdict\nI1,I2,maybe\n", "verdicts must be"),
    ("image_a,image_b,verdict\nI1,I1,same\n", "with itself"),
    ("image_a,image_b,verdict\nI1,I3,same\nI3,I1,different\n", "two different verdicts"),
])
def test_bad_files_get_one_message(tmp_path: Path, csv: str, message: str) -> None:
    (tmp_path / "m.csv").write_text(csv)
    with pytest.raises(MergeError, match=message):
        read_merges(tmp_path / "m.csv")


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(MergeError, match="no lesion merges file"):
        read_merges(tmp_path / "none.csv")


def test_verdicts_round_trip_and_a_new_verdict_replaces_the_old(tmp_path: Path) -> None:
    path = tmp_path / "merges.csv"
    save_verdict(path, "I1", "I3", "unsure", "=looks close")
    save_verdict(path, "I5", "I6", "different")
    rows = save_verdict(path, "I3", "I1", "SAME ")  # the same pair, either order: replaced
    assert len(rows) == 2
    back = read_merges(path)
    assert back[["image_a", "image_b", "verdict"]].values.tolist() == [["I5", "I6", "different"], ["I3", "I1", "same"]]
    assert merged_lesion_ids(TABLE, back).tolist() == ["L1", "L1", "L1", "L2", "L4", "L5"]
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left beside it


def test_a_note_that_looks_like_a_formula_is_stored_as_text(tmp_path: Path) -> None:
    save_verdict(tmp_path / "m.csv", "I1", "I3", "unsure", "=HYPERLINK(\"http://x\")")
    assert "'=HYPERLINK" in (tmp_path / "m.csv").read_text()


def test_saving_where_no_folder_is_says_so(tmp_path: Path) -> None:
    with pytest.raises(MergeError, match="does not exist"):
        save_verdict(tmp_path / "nowhere" / "m.csv", "I1", "I3", "same")


def test_a_datasets_file_is_its_folders_then_the_repositorys(tmp_path: Path, monkeypatch) -> None:
    import skinsim.data.merges as merges_module

    monkeypatch.setattr(merges_module, "REPO_ROOT", tmp_path / "repo")
    dataset = tmp_path / "ham10000"
    dataset.mkdir()
    assert default_file(dataset) is None
    (tmp_path / "repo" / "data").mkdir(parents=True)
    shipped = tmp_path / "repo" / "data" / "ham10000_lesion_merges.csv"
    shipped.write_text("image_a,image_b,verdict\n")
    assert default_file(dataset) == shipped
    (dataset / "lesion_merges.csv").write_text("image_a,image_b,verdict\n")
    assert default_file(dataset) == dataset / "lesion_merges.csv"


def test_rows_naming_images_a_copy_lacks_are_left_out_and_counted() -> None:
    m = merges(("I1", "I3", "same"), ("I2", "GONE", "same"), ("GONE", "I5", "unsure"))
    kept, left_out = rows_for(m, TABLE["image_id"])
    assert kept[["image_a", "image_b"]].values.tolist() == [["I1", "I3"]] and left_out == 2


def test_a_benchmark_table_gets_the_datasets_own_merges_as_training_does(tmp_path: Path) -> None:
    assert with_own_merges(TABLE, tmp_path) is TABLE  # none: the table as it is
    (tmp_path / "lesion_merges.csv").write_text("image_a,image_b,verdict\nI1,I3,same\nI2,GONE,same\n")
    merged = with_own_merges(TABLE, tmp_path)
    assert merged["lesion_id"].tolist() == ["L1", "L1", "L1", "L2", "L4", "L5"]
    assert merged["filed_lesion_id"].tolist() == TABLE["lesion_id"].tolist() and "filed_lesion_id" not in TABLE
