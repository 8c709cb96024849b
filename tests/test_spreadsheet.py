"""CSV files for spreadsheets: cells that a spreadsheet would run as a formula are shown as text."""
from __future__ import annotations

import io

import pandas as pd

from skinsim.runs.selections import selection_table, to_csv
from skinsim.runs.spreadsheet import neutralise, to_csv_bytes


def test_formula_cells_get_a_quote_and_nothing_else_changes() -> None:
    table = pd.DataFrame({"note": ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "fine", "a=b", None],
                          "score": [-0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]})
    out = neutralise(table)
    assert out["note"].tolist()[:7] == ["'=HYPERLINK(\"x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "fine", "a=b"]
    assert pd.isna(out["note"].iloc[7])
    assert out["score"].tolist() == table["score"].tolist()  # a negative number is a number, not a formula
    assert table["note"].iloc[0] == "=HYPERLINK(\"x\")"  # the caller's table is left as it was
    back = pd.read_csv(io.BytesIO(to_csv_bytes(table)))
    assert back["note"].iloc[1] == "'+1" and back["score"].iloc[0] == -0.5


def test_a_selection_export_neutralises_its_cells() -> None:
    meta = pd.DataFrame({"image_id": ["ISIC_1", "ISIC_2"], "lesion_id": ["=cmd|' /C calc'!A0", "HAM_2"],
                         "dx": ["nv", "mel"], "split": ["test", "val"]})
    text = to_csv(selection_table(meta, ["ISIC_1", "ISIC_2"])).decode()
    assert "'=cmd" in text and "\n=cmd" not in text and ",=cmd" not in text
