"""Reviewed lesion merges: a dataset's own file of verdicts on image pairs that may show one lesion under two ids.

The file belongs to the dataset, not to a run, so verdicts survive new runs and can be shared. It is a CSV with one
row per reviewed pair:

    image_a,image_b,verdict,note
    ISIC_0031362,ISIC_0029036,same,one bkl filed twice
    ISIC_0034135,ISIC_0025373,different,

`verdict` is `same` (one lesion: its two lesion ids are merged), `different` or `unsure` (kept as reviewed, changes
nothing). Merging is transitive: lesions joined by `same` verdicts form one group, named by its smallest lesion id.
The dataset's own metadata file is never modified; a reader applies the merges to its table
(`merged_lesion_ids`). Bad or stale entries get one message (`MergeError`): unknown image ids, a pair with two
verdicts, or a `different` verdict between images that `same` verdicts put in one lesion.

Where a dataset's file is (`default_file`): `lesion_merges.csv` in the dataset's folder, else
`data/<folder name>_lesion_merges.csv` in this repository, for a dataset folder that is read-only (the project
ships `data/ham10000_lesion_merges.csv`, its own review of HAM10000).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from skinsim.runs.folder import REPO_ROOT, write_atomic
from skinsim.runs.spreadsheet import to_csv_bytes

COLUMNS = ["image_a", "image_b", "verdict", "note"]
VERDICTS = ("same", "different", "unsure")
FILE_NAME = "lesion_merges.csv"  # looked for in a dataset's folder
OFF = "none"  # --lesion-merges none: no merges, not even a dataset's own file


class MergeError(ValueError):
    """A merges file that cannot be used; the message says which entries and why."""


def _some(values: list, n: int = 5) -> str:
    shown = ", ".join(map(str, values[:n]))
    return shown + (f" and {len(values) - n} more" if len(values) > n else "")


def read_merges(path: str | Path) -> pd.DataFrame:
    """The file's rows, with a verdict each; MergeError when it cannot be read or has bad rows."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise MergeError(f"no lesion merges file at {path}") from None
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise MergeError(f"cannot read the lesion merges file {path}: {err}") from None
    return check_rows(table, str(path))


def check_rows(table: pd.DataFrame, where: str = "the merges") -> pd.DataFrame:
    """The rows with the standard columns, trimmed; MergeError for missing columns, bad verdicts, a pair of one
    image with itself, or one pair given two verdicts."""
    missing = [c for c in COLUMNS[:3] if c not in table.columns]
    if missing:
        raise MergeError(f"{where} lacks the column(s) {missing}; it needs {', '.join(COLUMNS[:3])} (note optional)")
    table = table.assign(note=table["note"] if "note" in table else "")[COLUMNS].astype(str)
    table = table.apply(lambda col: col.str.strip())
    table["verdict"] = table["verdict"].str.lower()
    bad = table[~table["verdict"].isin(VERDICTS)]
    if len(bad):
        raise MergeError(f"{where}: verdicts must be {', '.join(VERDICTS)}; rows {_some(list(bad.index + 2))} "
                         f"say {_some(sorted(set(bad['verdict'])))}")
    selfish = table[table["image_a"] == table["image_b"]]
    if len(selfish):
        raise MergeError(f"{where}: rows {_some(list(selfish.index + 2))} pair an image with itself")
    key = table.apply(lambda r: tuple(sorted((r["image_a"], r["image_b"]))), axis=1)
    verdicts = table.groupby(key)["verdict"].nunique()
    torn = verdicts[verdicts > 1]
    if len(torn):
        pairs = [" & ".join(p) for p in torn.index]
        raise MergeError(f"{where}: these pairs have two different verdicts: {_some(pairs)}; keep one row per pair")
    return table.loc[~key.duplicated()].reset_index(drop=True)


def merged_lesion_ids(table: pd.DataFrame, merges: pd.DataFrame) -> pd.Series:
    """The lesion id of every row of `table` (image_id, lesion_id) after the `same` verdicts: each group of merged
    lesions takes its smallest id. MergeError for unknown image ids or a `different` verdict inside a group."""
    lesion_of = dict(zip(table["image_id"].astype(str), table["lesion_id"].astype(str)))
    unknown = sorted({i for i in pd.concat([merges["image_a"], merges["image_b"]]) if i not in lesion_of})
    if unknown:
        raise MergeError(f"the merges name {len(unknown)} image id(s) the dataset does not have: {_some(unknown)} "
                         "(a merges file of another dataset, or images left out since)")
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])  # path halving keeps the chains short
            x = parent[x]
        return x

    same = merges[merges["verdict"] == "same"]
    for a, b in zip(same["image_a"], same["image_b"]):
        ra, rb = root(lesion_of[a]), root(lesion_of[b])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    different = merges[merges["verdict"] == "different"]
    clash = [f"{a} & {b}" for a, b in zip(different["image_a"], different["image_b"])
             if root(lesion_of[a]) == root(lesion_of[b])]
    if clash:
        raise MergeError(f"these pairs are judged different lesions, yet 'same' verdicts (or one lesion id) put them "
                         f"in one lesion: {_some(clash)}; change one of the verdicts")
    return table["lesion_id"].astype(str).map(root).rename("lesion_id")


def repository_file(data_dir: str | Path) -> Path:
    """`data/<dataset folder name>_lesion_merges.csv` in this repository: a read-only dataset's merges file."""
    return REPO_ROOT / "data" / f"{Path(data_dir).expanduser().resolve().name}_{FILE_NAME}"


def default_file(data_dir: str | Path) -> Path | None:
    """The merges file a dataset has without one being named: its folder's `lesion_merges.csv`, else the
    repository's `data/<folder name>_lesion_merges.csv`; None when neither exists."""
    for path in (Path(data_dir).expanduser() / FILE_NAME, repository_file(data_dir)):
        if path.is_file():
            return path
    return None


def merges_file(setting: str | None, data_dir: str | Path) -> Path | None:
    """The file a run applies for `--lesion-merges setting`: the named file, the dataset's own (`default_file`) when
    none is named, None for `none` or when the dataset has none."""
    if setting == OFF:
        return None
    return Path(setting).expanduser() if setting is not None else default_file(data_dir)


def rows_for(merges: pd.DataFrame, image_ids: pd.Series) -> tuple[pd.DataFrame, int]:
    """The rows whose two images are among `image_ids`, and how many were left out (a dataset copy that lacks
    some images: a subset, or --skip-missing)."""
    have = set(image_ids.astype(str))
    keep = merges["image_a"].isin(have) & merges["image_b"].isin(have)
    return merges[keep].reset_index(drop=True), int((~keep).sum())


def merge_table(table: pd.DataFrame, path: str | Path, whole: bool = True) -> dict:
    """Give `table` (image_id, lesion_id) the lesion ids after the merges file at `path`, keeping the dataset's own
    in `filed_lesion_id`; what was applied (path, sha256, lesion counts). `whole=False` leaves out the rows that
    name images the table lacks (a subset of the dataset) instead of refusing the file."""
    path = Path(path).expanduser()
    rows, left_out = read_merges(path), 0
    if not whole:
        rows, left_out = rows_for(rows, table["image_id"])
    merged = merged_lesion_ids(table, rows)
    before = table["lesion_id"].nunique()
    table["filed_lesion_id"] = table["lesion_id"]
    table["lesion_id"] = merged.to_numpy()
    return {"path": recorded_path(path), "sha256": file_digest(path), "lesions_before": int(before),
            "lesions_after": int(table["lesion_id"].nunique()), "rows_left_out": left_out}


def recorded_path(path: Path) -> str:
    """How a run records the file: relative to the repository root when it is inside it (the shipped file, so a
    clone elsewhere finds it), else absolute."""
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def applied_record(config: dict) -> dict:
    """What a run's config.json says it applied (`meta.lesion_merges`: path, sha256, lesion counts); empty when
    it applied no merges."""
    return (config.get("meta") or {}).get("lesion_merges") or {}


def applied_path(recorded: str) -> Path:
    """The file a run's config.json names (`meta.lesion_merges.path`), relative ones from the repository root."""
    path = Path(recorded).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def with_own_merges(table: pd.DataFrame, data_dir: str | Path) -> pd.DataFrame:
    """A copy of a dataset's table with its own reviewed merges applied (`default_file`), as the default training
    run applies them; the table itself when the dataset has none."""
    path = default_file(data_dir)
    if path is None:
        return table
    table = table.copy()
    merge_table(table, path, whole=False)
    return table


def file_digest(path: str | Path) -> str:
    """sha256 of the merges file, recorded by the runs that used it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_verdict(path: str | Path, image_a: str, image_b: str, verdict: str, note: str = "") -> pd.DataFrame:
    """Record one verdict in the merges file (replacing that pair's earlier one), written atomically; returns all
    rows. The folder must exist; the file is created when it does not."""
    path = Path(path)
    if not path.parent.is_dir():
        raise MergeError(f"the folder {path.parent} does not exist; choose where the merges file goes")
    rows = read_merges(path) if path.is_file() else pd.DataFrame(columns=COLUMNS)
    pair = {image_a, image_b}
    rows = rows[rows.apply(lambda r: {r["image_a"], r["image_b"]} != pair, axis=1)] if len(rows) else rows
    new = check_rows(pd.DataFrame([{"image_a": image_a, "image_b": image_b, "verdict": verdict, "note": note}]))
    rows = pd.concat([rows, new], ignore_index=True)
    try:
        write_atomic(path, lambda tmp: tmp.write_bytes(to_csv_bytes(rows)))
    except OSError as err:  # a read-only dataset folder, say
        raise MergeError(f"cannot write {path}: {err}") from None
    return rows

