"""CSV files that people open in a spreadsheet: text cells that a spreadsheet would run as a formula are neutralised."""
from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(table: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells starting with = + - @ (or a tab or carriage return) begin with a quote instead, so a
    spreadsheet shows them as text rather than running them (CSV formula injection); numbers stay numbers."""
    out = table.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
    return out


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """The table as UTF-8 CSV bytes, neutralised, floats to 6 significant digits."""
    return neutralise(table).to_csv(index=False, float_format="%.6g").encode("utf-8")
