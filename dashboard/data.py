"""Everything the dashboard reads from a run folder, behind Streamlit's caches; pages only render what this returns.

Cached functions take the run as a path string plus `version`, the mtime of its config.json, so a run that is
rewritten under the same name is read again instead of being served stale (an argument named with a leading
underscore would be left out of Streamlit's cache key, so `version` is not one).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import figures, images, map_view
from dashboard.map_view import Region
from skinsim import metrics as M
from skinsim.evaluate import majority_label
from skinsim.neighbours import nearest
from skinsim.runs import data_folders, is_run, latest_run, list_runs, load_run, runs_dir

DEMO_RUN = "demo"
SEARCH_SPACES: dict[str, tuple[str, ...]] = {"test": ("test",), "test + train": ("test", "train")}
NEIGHBOUR_COLUMNS = ["rank", "image_id", "distance", "dx", "lesion_id", "dx_type", "age", "sex", "localization",
                     "split", "path"]
AGE_BANDS = [(0, 19, "0-19"), (20, 39, "20-39"), (40, 59, "40-59"), (60, 79, "60-79"), (80, 200, "80+")]
GET_DATA = ("Images are read from `SKINSIM_DATA`, else the run's data folder (`meta.data_dir` in its config.json), "
            "else `data/ham10000`. Fetch HAM10000 with `python -m skinsim.data download` or point `SKINSIM_DATA` "
            "at your copy.")


# ---------------------------------------------------------------- runs


def available_runs() -> list[Path]:
    """Complete runs under the runs folder, the demo run first, then newest first."""
    runs = list_runs(runs_dir())
    return sorted(runs, key=lambda p: p.name != DEMO_RUN)


def default_run(runs: list[Path]) -> Path | None:
    """The demo run when it exists, else the newest (the one `runs/latest` names)."""
    for run in runs:
        if run.name == DEMO_RUN:
            return run
    latest = latest_run(runs_dir())
    return latest if latest in runs else (runs[0] if runs else None)


def stamp(run: Path) -> float:
    """The run's version for cache keys: the mtime of its config.json."""
    try:
        return (Path(run) / "config.json").stat().st_mtime
    except OSError:
        return 0.0


@dataclass(frozen=True)
class RunInfo:
    """What a run is: its name, config and stored metrics, and which optional files it has."""

    path: Path
    name: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    has_umap: bool
    has_curves: bool
    has_checkpoint: bool


def run_info(run: Path) -> RunInfo:
    """The run's config, metrics and file inventory."""
    return _run_info(str(run), stamp(run))


@st.cache_data(show_spinner=False)
def _run_info(run: str, version: float) -> RunInfo:
    loaded = load_run(Path(run))
    path = Path(run)
    return RunInfo(path=path, name=path.name, config=loaded.config, metrics=loaded.metrics,
                   has_umap=(path / "umap.parquet").is_file(), has_curves=(path / "curves.csv").is_file(),
                   has_checkpoint=(path / "checkpoint.safetensors").is_file())


def curves(run: Path) -> pd.DataFrame | None:
    """Per-epoch training curves, or None when the run has none."""
    return _curves(str(run), stamp(run)) if (Path(run) / "curves.csv").is_file() else None


@st.cache_data(show_spinner=False)
def _curves(run: str, version: float) -> pd.DataFrame:
    return load_run(Path(run)).curves()


# ---------------------------------------------------------------- embeddings and neighbours


def embeddings(run: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """(metadata of every image, L2-normalised float32 embeddings), row-aligned."""
    return _embeddings(str(run), stamp(run))


# A resource cache, not a data cache: one copy for every session and rerun, never pickled again (a data cache
# copies its value on each read, which at a million embeddings costs seconds). Callers treat the tables as read-only.
@st.cache_resource(show_spinner=False, max_entries=4)
def _embeddings(run: str, version: float) -> tuple[pd.DataFrame, np.ndarray]:
    meta, vectors = load_run(Path(run)).embeddings()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # stored vectors are normalised already; normalising again guards against runs written by other tools
    vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    meta = meta.reset_index(drop=True)
    meta["age_band"] = age_bands(meta["age"])
    return meta, vectors


def age_bands(age: pd.Series) -> pd.Series:
    """Age in years -> a band label ('unknown' when missing)."""
    out = pd.Series("unknown", index=age.index, dtype=object)
    for lo, hi, label in AGE_BANDS:
        out[(age >= lo) & (age <= hi)] = label
    return out


def _search_rows(meta: pd.DataFrame, splits: tuple[str, ...]) -> np.ndarray:
    return np.nonzero(meta["split"].isin(splits).to_numpy())[0]


def neighbours(run: Path, image_id: str, k: int, splits: tuple[str, ...] = ("test",)) -> pd.DataFrame:
    """The k nearest images to a stored image in the search space (itself excluded), nearest first."""
    return _neighbours(str(run), stamp(run), image_id, int(k), tuple(splits))


@st.cache_data(show_spinner=False, max_entries=512)
def _neighbours(run: str, version: float, image_id: str, k: int, splits: tuple[str, ...]) -> pd.DataFrame:
    meta, vectors = _embeddings(run, version)
    hits = _id_rows(run, version).reindex([image_id]).dropna().to_numpy(dtype=np.int64)
    if len(hits) == 0:
        return pd.DataFrame(columns=NEIGHBOUR_COLUMNS)
    rows, index = _gallery(run, version, splits)
    inside = np.flatnonzero(rows == hits[0])
    k = min(k, len(rows) - len(inside))
    if k <= 0:
        return pd.DataFrame(columns=NEIGHBOUR_COLUMNS)
    idx, dist = index.search(vectors[hits[:1]], k,
                             exclude=np.array([inside[0] if len(inside) else -1]))
    return neighbour_table(meta, rows[idx[0]], dist[0])


@st.cache_resource(show_spinner=False, max_entries=4)
def _id_rows(run: str, version: float) -> pd.Series:
    """The embedding row of each image id (the first, should an id repeat): a hash lookup instead of a scan of a
    million ids on every click."""
    meta, _ = _embeddings(run, version)
    ids = pd.Index(meta["image_id"].astype(str))
    return pd.Series(np.arange(len(meta)), index=ids)[~ids.duplicated()]


@st.cache_resource(show_spinner=False, max_entries=8)
def _gallery(run: str, version: float, splits: tuple[str, ...]) -> tuple[np.ndarray, Any]:
    """(rows of the search space, an exact FAISS index of their embeddings), built once per run and space."""
    from skinsim.vector_index import VectorIndex

    meta, vectors = _embeddings(run, version)
    rows = _search_rows(meta, splits)
    # the same exact search as skinsim.neighbours.nearest, without copying the gallery again for every click
    return rows, VectorIndex(vectors[rows], "Flat", metric="l2")


def neighbour_table(meta: pd.DataFrame, rows: np.ndarray, distances: np.ndarray) -> pd.DataFrame:
    """Rows of `meta` as a neighbour table with rank and distance."""
    table = meta.iloc[rows].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(rows) + 1))
    table.insert(2, "distance", np.asarray(distances, dtype=float))
    return table[[c for c in NEIGHBOUR_COLUMNS if c in table.columns] + extra_columns(table)]


def extra_columns(table: pd.DataFrame) -> list[str]:
    """A dataset's own metadata columns, beyond the ones every run has (shown after them)."""
    internal = set(NEIGHBOUR_COLUMNS) | {"age_band", "row", "x", "y", "embedding"}
    return [c for c in table.columns if c not in internal]


def top1_outcome(run: Path, splits: tuple[str, ...] = ("test",)) -> np.ndarray:
    """Per image: 'right' when its nearest neighbour in the search space has its diagnosis, else 'wrong'."""
    return _top1_outcome(str(run), stamp(run), tuple(splits))


@st.cache_data(show_spinner=False)
def _top1_outcome(run: str, version: float, splits: tuple[str, ...]) -> np.ndarray:
    meta, vectors = _embeddings(run, version)
    gallery = _search_rows(meta, splits)
    position = np.full(len(meta), -1)
    position[gallery] = np.arange(len(gallery))
    idx, _ = nearest(vectors, vectors[gallery], 1, exclude=position)
    dx = meta["dx"].to_numpy()
    return np.where(dx[gallery][idx[:, 0]] == dx, "right", "wrong")


# ---------------------------------------------------------------- retrieval accuracy


@dataclass(frozen=True)
class Retrieval:
    """Retrieval quality at one k, recomputed from stored embeddings (queries = val, search = test)."""

    k: int
    n_queries: int
    n_search: int
    per_class: pd.DataFrame  # index dx; p_at_1, p_at_k, recall_at_k with _lo/_hi 95% bounds; baseline columns
    overall: pd.DataFrame  # index metric; columns micro, macro, majority_micro, ..., random_macro
    confusion: pd.DataFrame  # rows: query dx, columns: top-1 neighbour dx, counts
    majority: str  # the label the majority baseline always answers (the commonest in the train split)


def retrieval(run: Path, k: int) -> Retrieval | None:
    """Per-class and overall P@1, P@k and recall@k at `k`, or None when the run lacks val or test images."""
    return retrieval_at_k(str(run), stamp(run), int(k))


@st.cache_data(show_spinner="Computing neighbours ...", max_entries=64)
def retrieval_at_k(run: str, version: float, k: int) -> Retrieval | None:
    """The one place the accuracy page's numbers are computed: queries = val, search space = test."""
    meta, vectors = _embeddings(run, version)
    queries = np.nonzero(meta["split"].to_numpy() == "val")[0]
    gallery = _search_rows(meta, ("test",))
    if len(queries) == 0 or len(gallery) == 0:
        return None
    k = max(1, min(k, len(gallery)))
    idx, _ = nearest(vectors[queries], vectors[gallery], k)
    dx = meta["dx"].to_numpy().astype(str)
    train = dx[meta["split"].to_numpy() == "train"]
    majority = majority_label(train if len(train) else dx[gallery])
    return _score(dx[queries], dx[gallery][idx], dx[gallery], k, majority)


def _score(query_dx: np.ndarray, labels: np.ndarray, search_dx: np.ndarray, k: int, majority: str) -> Retrieval:
    # labels: (n_queries, k) diagnoses of each query's neighbours, nearest first
    per_query = {"p_at_1": M.precision_at_k(query_dx, labels, 1), "p_at_k": M.precision_at_k(query_dx, labels, k),
                 "recall_at_k": M.hit_at_k(query_dx, labels, k)}
    random_p = M.random_retrieval_precision(query_dx, search_dx)
    baselines = {"random_p_at_1": random_p, "random_p_at_k": random_p,
                 # chance that at least one of k random picks has the query's diagnosis
                 "random_recall_at_k": 1 - (1 - random_p) ** k}
    always = (query_dx == majority).astype(float)
    baselines.update({f"majority_{m}": always for m in per_query})
    classes = classes_all(query_dx)
    rows = []
    for c in classes:
        mask = query_dx == c
        n = int(mask.sum())
        row: dict[str, Any] = {"dx": c, "n_queries": n, "n_search": int((search_dx == c).sum())}
        for metric, values in per_query.items():
            row[metric] = float(values[mask].mean())
            if metric == "p_at_k":
                row[f"{metric}_lo"], row[f"{metric}_hi"] = mean_interval(values[mask])
            else:
                row[f"{metric}_lo"], row[f"{metric}_hi"] = M.wilson_interval(values[mask].sum(), n)
        row.update({name: float(values[mask].mean()) for name, values in baselines.items()})
        rows.append(row)
    per_class = pd.DataFrame(rows).set_index("dx")
    overall = {}
    for metric, values in per_query.items():
        lo, hi = mean_interval(values) if metric == "p_at_k" else M.wilson_interval(values.sum(), len(values))
        overall[metric] = {"micro": float(values.mean()), "micro_lo": lo, "micro_hi": hi,
                           "macro": float(per_class[metric].mean())}
        for base in ("random", "majority"):
            overall[metric][f"{base}_micro"] = float(baselines[f"{base}_{metric}"].mean())
            overall[metric][f"{base}_macro"] = float(per_class[f"{base}_{metric}"].mean())
    everything = classes_all(query_dx, labels[:, 0])
    confusion = pd.DataFrame(M.confusion(query_dx, labels[:, 0], everything), index=pd.Index(everything,
                             name="query diagnosis"), columns=pd.Index(everything, name="top-1 neighbour diagnosis"))
    return Retrieval(k=k, n_queries=len(query_dx), n_search=len(search_dx), per_class=per_class,
                     overall=pd.DataFrame(overall).T, confusion=confusion, majority=majority)


def run_labels(run: Path) -> list[str]:
    """Every diagnosis label of the run, sorted: what fixes each label's colour on every page."""
    return classes_all(embeddings(run)[0]["dx"])


def classes_all(*columns: Any) -> list[str]:
    """The labels present in any of `columns`, sorted (HAM10000's codes sort into their usual order)."""
    return sorted(set().union(*(set(map(str, c)) for c in columns)))


def mean_interval(values: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean of per-query values in [0, 1]."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / np.sqrt(n) if n > 1 else 1.0
    return (max(0.0, mean - half), min(1.0, mean + half))


# ---------------------------------------------------------------- the embedding map


def map_table(run: Path) -> pd.DataFrame | None:
    """One row per image: UMAP x, y, metadata, age band and `row` (its index in `embeddings`); None without a map."""
    if not (Path(run) / "umap.parquet").is_file():
        return None
    return _map_table(str(run), stamp(run))


@st.cache_resource(show_spinner=False, max_entries=4)
def _map_table(run: str, version: float) -> pd.DataFrame:
    meta, _ = _embeddings(run, version)
    coords = load_run(Path(run)).umap()[["image_id", "x", "y"]]
    table = meta.assign(row=np.arange(len(meta))).merge(coords, on="image_id", how="inner")
    return table.sort_values("row").reset_index(drop=True)


@dataclass(frozen=True)
class MapIndex:
    """Lookups into a run's map table that stay fast at a million images: the table by embedding row, the row of
    each image id, and each filter column's sorted values."""

    by_row: pd.DataFrame
    row_of: pd.Series
    choices: dict[str, list[str]]


def map_index(run: Path) -> MapIndex:
    """The run's map lookups (built once per run, shared by every session)."""
    return _map_index(str(run), stamp(run))


@st.cache_resource(show_spinner=False, max_entries=4)
def _map_index(run: str, version: float) -> MapIndex:
    table = _map_table(run, version)
    choices = {c: sorted(table[c].astype(str).unique()) for c in ("dx", "localization", "sex")}
    rows = _id_rows(run, version)  # the embeddings' lookup, narrowed to the images the map has
    return MapIndex(by_row=table.set_index("row", drop=False), row_of=rows[rows.isin(table["row"])], choices=choices)


def map_made(run: Path) -> str:
    """How the run's map was made, in words (from umap.parquet's metadata)."""
    from skinsim.runs import map_method

    method = map_method(Path(run) / "umap.parquet")
    if not method:
        return "fitted when the run was made"
    if method.get("placed_by_transform"):
        return (f"fitted on a seeded sample of {method['fitted_on']:,} of the {method['n_points']:,} images, the "
                "rest placed by the fitted model")
    return f"fitted on all {method.get('n_points', 0):,} images when the run was made"


@dataclass(frozen=True)
class MapFilter:
    """Which images the map shows; empty tuples mean 'all'."""

    dx: tuple[str, ...] = ()
    localization: tuple[str, ...] = ()
    sex: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    age: tuple[float, float] | None = None  # inclusive; images of unknown age are kept only when this is None
    ids: tuple[str, ...] | None = None  # a saved selection's images; None means no selection

    def mask(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of `table` that pass."""
        keep = np.ones(len(table), dtype=bool)
        for column, allowed in (("dx", self.dx), ("localization", self.localization), ("sex", self.sex),
                                ("split", self.splits)):
            if allowed:
                keep &= table[column].isin(allowed).to_numpy()
        if self.age is not None:
            keep &= table["age"].between(self.age[0], self.age[1]).to_numpy()
        if self.ids is not None:
            keep &= table["image_id"].isin(self.ids).to_numpy()
        return keep


@dataclass(frozen=True)
class MapChart:
    """The map as drawn: its ECharts option, the embedding row of each point of its clickable series (in the order
    of the series' data) and how many images are in view (the points are a sample of them when `sampled`)."""

    spec: dict[str, Any]
    rows: np.ndarray
    in_view: int
    sampled: bool


def map_chart(run: Path, colour_by: str, flt: MapFilter, splits: tuple[str, ...] = ("test",),
              region: Region | None = None) -> MapChart:
    """The map of the images that pass `flt`, within `region` when given (cached; the page adds the marks)."""
    return _map_chart(str(run), stamp(run), colour_by, flt, tuple(splits), region, map_view.max_points())


@st.cache_data(show_spinner=False, max_entries=32)
def _map_chart(run: str, version: float, colour_by: str, flt: MapFilter, splits: tuple[str, ...],
               region: Region | None, cap: int) -> MapChart:
    table = _coloured(run, version, colour_by, splits)
    plan = map_view.plan(table[flt.mask(table)], colour_by, region, cap)
    spec = figures.map_spec(plan, colour_by, labels=classes_all(table["dx"]))
    return MapChart(spec=spec, rows=plan.points["row"].to_numpy(), in_view=plan.in_view, sampled=plan.sampled)


def _coloured(run: str, version: float, colour_by: str, splits: tuple[str, ...]) -> pd.DataFrame:
    table = _map_table(run, version)
    if colour_by == "top1":
        table = table.assign(top1=_top1_outcome(run, version, splits)[table["row"].to_numpy()])
    return table


def ids_in_areas(run: Path, flt: MapFilter, region: Region | None, areas: list[dict[str, Any]]) -> list[str]:
    """The ids of every image in view (passing `flt`, within `region`) inside any of the drawn brush areas, whether
    or not a sampled map draws it."""
    table = map_table(run)
    keep = flt.mask(table)
    x, y = table["x"].to_numpy(), table["y"].to_numpy()
    if region is not None:
        keep &= region.contains(x, y)
    inside = np.zeros(len(table), dtype=bool)
    for area in areas:
        inside |= map_view.in_area(x, y, area)
    return table.loc[keep & inside, "image_id"].tolist()


# ---------------------------------------------------------------- images


def data_dirs(run: Path) -> list[Path]:
    """Folders that may hold the run's images, in the order they are tried."""
    return data_folders(run_info(run).config)


def image_paths(run: Path) -> dict[str, str]:
    """image_id -> image file for every image of the run that exists on this machine."""
    dirs = tuple(str(p) for p in data_dirs(run))
    return _image_paths(str(run), stamp(run), dirs)


@st.cache_data(show_spinner="Looking for the images ...", max_entries=8)
def _image_paths(run: str, version: float, dirs: tuple[str, ...]) -> dict[str, str]:
    from skinsim.data.images import find_image

    meta, _ = _embeddings(run, version)
    found: dict[str, str] = {}
    for folder in map(Path, dirs):
        todo = meta[~meta["image_id"].isin(found.keys())]
        for image_id, rel in zip(todo["image_id"], todo["path"].fillna("")):
            if rel and (folder / rel).is_file():
                found[image_id] = str(folder / rel)
        # only search a folder exhaustively when the stored relative paths do not fit it at all
        if len(found) == 0 and len(todo) > 0:
            for image_id in todo["image_id"]:
                hit = find_image(folder, image_id)
                if hit is None:
                    break  # the first miss means this folder is not the dataset; keep the cost bounded
                found[image_id] = str(hit)
    return found


def image_coverage(run: Path) -> tuple[int, int]:
    """(images found on this machine, images in the run)."""
    meta, _ = embeddings(run)
    return len(image_paths(run)), len(meta)


def image_bytes(run: Path, image_id: str) -> tuple[bytes, bool]:
    """(displayable bytes, found): the image's thumbnail, or a placeholder tile when the file is missing."""
    path = image_paths(run).get(image_id)
    if path is not None:
        try:
            return _thumbnail(path), True
        except OSError:
            pass  # unreadable file: fall through to the placeholder like a missing one
    return _placeholder(), False


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumbnail(path: str) -> bytes:
    return images.thumbnail(Path(path))


@st.cache_data(show_spinner=False)
def _placeholder() -> bytes:
    return images.placeholder()


# ---------------------------------------------------------------- the model, for uploads


class SearchUnavailable(RuntimeError):
    """The run cannot embed new images here (no checkpoint, or torch / skinsim.search missing)."""


def search_index(run: Path, splits: tuple[str, ...] = ("test",)) -> Any:
    """The run's model and search space, loaded once per run (raises SearchUnavailable with a reason)."""
    if not (Path(run) / "checkpoint.safetensors").is_file():
        raise SearchUnavailable(f"run {Path(run).name} has no checkpoint.safetensors, so uploads cannot be "
                                "embedded; choose a run trained with `python -m skinsim.train`.")
    return _search_index(str(run), stamp(run), tuple(splits))


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def _search_index(run: str, version: float, splits: tuple[str, ...]) -> Any:
    try:
        from skinsim.search import SearchIndex
    except ImportError as exc:
        raise SearchUnavailable(f"uploads need skinsim.search and torch ({exc}).") from None
    return SearchIndex.from_run(Path(run), search_space=splits, device="cpu")


def query_upload(run: Path, image: Any, k: int, splits: tuple[str, ...] = ("test",)) -> pd.DataFrame:
    """The k nearest images of the search space to an uploaded image, embedded with the run's checkpoint."""
    table = search_index(run, splits).query_image(image, k=int(k))
    return table[[c for c in NEIGHBOUR_COLUMNS if c in table.columns] + extra_columns(table)]


def is_complete_run(path: Path) -> bool:
    """True when `path` is a complete run folder."""
    return is_run(Path(path))


# ---------------------------------------------------------------- the dataset audit


class AuditUnreadable(RuntimeError):
    """The run's audit files exist but cannot be read; the message says why."""


def audit(run: Path) -> Any:
    """The run's stored audit (skinsim.audit.AuditTables), or None when `python -m skinsim.audit` has not run."""
    summary = Path(run) / "audit.json"
    if not summary.is_file():
        return None
    versions = tuple((Path(run) / name).stat().st_mtime if (Path(run) / name).is_file() else 0.0
                     for name in ("audit.json", "audit_duplicates.parquet", "audit_label_issues.parquet",
                                  "audit_outliers.parquet"))
    return _audit(str(run), stamp(run), versions)


@st.cache_data(show_spinner="Reading the audit ...", max_entries=8)
def _audit(run: str, version: float, audit_versions: tuple[float, ...]) -> Any:
    from skinsim.audit import AuditError, read_audit

    try:
        found = read_audit(run)
    except AuditError as err:
        raise AuditUnreadable(str(err)) from None
    meta, _ = _embeddings(run, version)
    extra = meta.drop_duplicates("image_id").set_index("image_id")[["dx_type"]] if "dx_type" in meta else None
    # the page filters every list by dx_type, which the duplicate and outlier tables do not store
    if extra is not None:
        dups = found.duplicates
        dups = dups.assign(dx_type_a=dups["image_a"].map(extra["dx_type"]),
                           dx_type_b=dups["image_b"].map(extra["dx_type"]))
        outs = found.outliers.join(extra, on="image_id") if "dx_type" not in found.outliers else found.outliers
        found = type(found)(summary=found.summary, duplicates=dups, label_issues=found.label_issues, outliers=outs,
                            complete=found.complete)
    return found


# ---------------------------------------------------------------- saved selections


def selections(run: Path) -> list[str]:
    """Names of the run's saved selections (read on every call: saving one must show at once)."""
    from skinsim.selections import list_selections

    return list_selections(run)


def selection_ids(run: Path, name: str) -> tuple[str, ...]:
    """The image ids of a saved selection (raises skinsim.selections.SelectionError with a reason)."""
    from skinsim.selections import selection_path

    path = selection_path(run, name)
    return _selection_ids(str(run), name, path.stat().st_mtime if path.is_file() else 0.0)


@st.cache_data(show_spinner=False, max_entries=32)
def _selection_ids(run: str, name: str, version: float) -> tuple[str, ...]:
    from skinsim.selections import load_selection

    return tuple(load_selection(run, name)["image_id"].astype(str))


def selection_table(run: Path, image_ids: list[str], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """The run's metadata for `image_ids` as a selection table (standard columns, then `scores`)."""
    from skinsim.selections import selection_table as make

    meta, _ = embeddings(run)
    rows = _id_rows(str(run), stamp(run)).reindex(list(map(str, image_ids))).dropna().to_numpy(dtype=np.int64)
    return make(meta.iloc[rows], image_ids, scores)


def save_selection(run: Path, name: str, table: pd.DataFrame, overwrite: bool = False) -> Path:
    """Keep a selection in the run's selections/ folder (the one thing the dashboard writes; see skinsim.selections)."""
    from skinsim.selections import save_selection as save

    return save(run, name, table, overwrite=overwrite)


# ---------------------------------------------------------------- why similar


@dataclass(frozen=True)
class WhySimilar:
    """Two heat-map overlays (PNG bytes) and the cosine similarity they explain."""

    query: bytes
    neighbour: bytes
    cosine: float
    method: str


def why_similar(run: Path, query: str | bytes, neighbour_id: str) -> WhySimilar:
    """Heat maps of why `query` (an image id of the run, or an uploaded image's bytes) and a neighbour are close.

    Raises SearchUnavailable when the run has no checkpoint or an image file is missing.
    """
    search_index(run)  # the checkpoint check, with its message
    paths = image_paths(run)
    missing = [i for i in ([query] if isinstance(query, str) else []) + [neighbour_id] if i not in paths]
    if missing:
        raise SearchUnavailable(f"the image file of {', '.join(missing)} is not on this machine, so its heat map "
                                f"cannot be computed. {GET_DATA}")
    source = paths[query] if isinstance(query, str) else query
    return _why_similar(str(run), stamp(run), source, paths[neighbour_id])


@st.cache_data(show_spinner="Computing the heat maps ...", max_entries=256)
def _why_similar(run: str, version: float, query: str | bytes, neighbour: str) -> WhySimilar:
    import io

    from PIL import Image

    index = _search_index(run, version, ("test",))
    with Image.open(io.BytesIO(query) if isinstance(query, bytes) else query) as img:
        picture_q = img.convert("RGB")
    with Image.open(neighbour) as img:
        picture_n = img.convert("RGB")
    maps = index.explain(picture_q, picture_n)
    size = (maps.query.shape[1], maps.query.shape[0])
    return WhySimilar(query=images.heat_overlay(picture_q.resize(size, Image.BILINEAR), maps.query),
                      neighbour=images.heat_overlay(picture_n.resize(size, Image.BILINEAR), maps.neighbour),
                      cosine=maps.cosine, method=maps.method)


# ---------------------------------------------------------------- archives (python -m skinsim.index)

ARCHIVE_SPACE = "archive: "  # search-space label prefix: "archive: NAME"


def search_space_choices(run: Path) -> list[str]:
    """The query viewer's search spaces: the run's splits, then its complete archives as 'archive: NAME'."""
    from skinsim.archive import list_archives

    return list(SEARCH_SPACES) + [f"{ARCHIVE_SPACE}{name}" for name in list_archives(Path(run))]


def archive_choice(space: str) -> str | None:
    """The archive name of an 'archive: NAME' search space, else None."""
    return space[len(ARCHIVE_SPACE):] if space.startswith(ARCHIVE_SPACE) else None


def _archive_stamp(run: Path, name: str) -> float:
    try:
        return (Path(run) / "archives" / name / "manifest.json").stat().st_mtime
    except OSError:
        return 0.0


def archive(run: Path, name: str) -> Any:
    """The run's archive `name` (skinsim.archive.Archive), opened once per version; SearchUnavailable with a reason."""
    return _archive(str(run), stamp(run), name, _archive_stamp(run, name))


@st.cache_resource(show_spinner="Opening the archive ...", max_entries=4)
def _archive(run: str, version: float, name: str, archive_version: float) -> Any:
    from skinsim.archive import ArchiveError, open_archive
    from skinsim.vector_index import IndexMismatch

    try:
        return open_archive(Path(run), name)
    except (ArchiveError, IndexMismatch, ImportError, OSError) as err:
        raise SearchUnavailable(f"archive {name} cannot be searched: {err}") from None


def archive_neighbours(run: Path, name: str, image_id: str, k: int) -> pd.DataFrame:
    """The k nearest archive images to a stored image of the run, by its stored vector."""
    return _archive_neighbours(str(run), stamp(run), name, _archive_stamp(run, name), image_id, int(k))


@st.cache_data(show_spinner=False, max_entries=256)
def _archive_neighbours(run: str, version: float, name: str, archive_version: float, image_id: str,
                        k: int) -> pd.DataFrame:
    found = _archive(run, version, name, archive_version)
    meta, vectors = _embeddings(run, version)
    rows = np.flatnonzero(meta["image_id"].to_numpy() == image_id)
    if len(rows) == 0:
        return pd.DataFrame(columns=["rank", "id", "path", "distance", *found.metadata_columns])
    return found.neighbours(vectors[rows[:1]], k)[0]


def archive_query_upload(run: Path, name: str, image: Any, k: int) -> pd.DataFrame:
    """The k nearest archive images to an uploaded image, embedded with the run's checkpoint."""
    found = archive(run, name)
    return found.neighbours(search_index(run).embed_images([image]), int(k))[0]


def archive_image_bytes(run: Path, name: str, path: str) -> tuple[bytes, bool]:
    """(displayable bytes, found) for an archive image by its stored path; a placeholder tile when it is missing."""
    file = archive(run, name).image_path(path)
    if file.is_file():
        try:
            return _thumbnail(str(file)), True
        except OSError:
            pass  # unreadable now: shown like a missing one
    return _placeholder(), False
