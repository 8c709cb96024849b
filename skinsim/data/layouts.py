"""The official folder layouts skinsim reads (HAM10000, ISIC 2019, ISIC 2020, PAD-UFES-20) and telling them apart.

Each layout finds its label file in a folder and turns it into the reader rows of `skinsim.data.table`;
images are then found by id (file stem) below the folder. Official codes are lowercased (MEL -> mel) so that
the same diagnosis reads the same across datasets.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from skinsim.data.table import DataError, read_csv, some

DIAGNOSES = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesion",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
}  # HAM10000's codes: its metadata file must use exactly these


@dataclass(frozen=True)
class Layout:
    """One official dataset layout: its name for --dataset, its label file(s), and its reader."""

    name: str
    title: str
    groups: str                                      # what its group column is: "lesions" or "patients"
    label_files: tuple[str, ...]                     # names looked for, top of the folder or one level below
    image_pattern: str                               # glob of its image files' names
    read: Callable[[Path], pd.DataFrame]             # label file -> reader rows
    accepts: Callable[[Path], bool] = lambda path: True  # for a generic name (train.csv): is it this dataset's?


def _header(path: Path) -> list[str]:
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except Exception:  # an unreadable file is not this layout; the reader reports it if chosen
        return []


def read_ham10000(path: Path) -> pd.DataFrame:
    """HAM10000_metadata.csv: lesion_id, image_id, dx (one of HAM10000's 7 codes), dx_type, age, sex, localization."""
    frame = read_csv(path, ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
    unknown = frame.loc[frame["dx"].notna() & ~frame["dx"].isin(list(DIAGNOSES)), ["image_id", "dx"]]
    if len(unknown):  # the file's own codes are fixed; anything else is a corrupted or foreign file
        codes = sorted(set(unknown["dx"]))
        raise DataError(f"{path}: unknown diagnosis code(s) {', '.join(codes)} for image(s) "
                        f"{some(list(unknown['image_id']))}; known codes: {', '.join(DIAGNOSES)}")
    return frame


ISIC2019_METADATA = "ISIC_2019_Training_Metadata.csv"


def one_hot_labels(frame: pd.DataFrame, path: Path, id_col: str) -> pd.Series:
    """The lowercased name of the one column set to 1 in each row of a one-hot ground-truth table."""
    classes = [c for c in frame.columns if c != id_col]
    try:
        hot = frame[classes].astype(float) == 1.0
    except ValueError as exc:
        raise DataError(f"{path}: the class columns must hold 0 or 1 ({exc})") from None
    bad = frame.loc[hot.sum(axis=1) != 1, id_col]
    if len(bad):
        raise DataError(f"{path}: image(s) {some(list(bad))} do not have exactly one class set to 1")
    return hot.idxmax(axis=1).str.lower()


def read_isic2019(path: Path) -> pd.DataFrame:
    """ISIC 2019: one-hot ground truth (image, MEL, NV, ...) joined with the metadata file beside it."""
    truth = read_csv(path, ["image"])
    meta_path = path.with_name(ISIC2019_METADATA)
    if not meta_path.is_file():
        raise DataError(f"{meta_path} not found: ISIC 2019 needs it beside {path.name} (it holds lesion_id)")
    meta = read_csv(meta_path, ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"])
    frame = pd.DataFrame({"image_id": truth["image"], "dx": one_hot_labels(truth, path, "image")})
    meta = meta.drop_duplicates("image").set_index("image").reindex(frame["image_id"])
    # images without a lesion_id are their own group: nothing says another image shows the same lesion
    frame["lesion_id"] = meta["lesion_id"].to_numpy()
    frame["lesion_id"] = frame["lesion_id"].fillna(frame["image_id"])
    frame["age"] = meta["age_approx"].to_numpy()
    frame["sex"] = meta["sex"].to_numpy()
    frame["localization"] = meta["anatom_site_general"].to_numpy()
    return frame


def _is_isic2020(path: Path) -> bool:
    return {"image_name", "patient_id", "benign_malignant"} <= set(_header(path))


def read_isic2020(path: Path) -> pd.DataFrame:
    """ISIC 2020: label = benign_malignant (the challenge's target), group = patient_id."""
    frame = read_csv(path, ["image_name", "patient_id", "benign_malignant"])
    # the patient, not the lesion, is the group: lesion_id is missing in the first release and a patient's
    # lesions are photographed alike; the official lesion_id is kept as isic_lesion_id
    frame = frame.rename(columns={"lesion_id": "isic_lesion_id"})
    return frame.rename(columns={"image_name": "image_id", "patient_id": "lesion_id", "benign_malignant": "dx",
                                 "age_approx": "age", "anatom_site_general_challenge": "localization"})


def _is_pad_ufes(path: Path) -> bool:
    return {"patient_id", "lesion_id", "img_id", "diagnostic"} <= set(_header(path))


def read_pad_ufes(path: Path) -> pd.DataFrame:
    """PAD-UFES-20: label = diagnostic (ACK, BCC, MEL, NEV, SCC, SEK), group = the patient's lesion."""
    frame = read_csv(path, ["patient_id", "lesion_id", "img_id", "diagnostic"])
    frame = frame.rename(columns={"lesion_id": "pad_lesion_id", "gender": "sex", "region": "localization"})
    frame["image_id"] = frame["img_id"].str.rsplit(".", n=1).str[0]  # img_id is a file name: PAT_8_15_820.png
    both = frame["patient_id"].notna() & frame["pad_lesion_id"].notna()
    frame["lesion_id"] = (frame["patient_id"] + "_" + frame["pad_lesion_id"]).where(both)
    frame["dx"] = frame["diagnostic"].str.lower()
    return frame.drop(columns=["img_id", "diagnostic"])


LAYOUTS = {
    layout.name: layout for layout in (
        Layout("ham10000", "HAM10000", "lesions", ("HAM10000_metadata.csv",), "ISIC_*", read_ham10000),
        Layout("isic2019", "ISIC 2019", "lesions", ("ISIC_2019_Training_GroundTruth.csv",), "ISIC_*", read_isic2019),
        Layout("isic2020", "ISIC 2020", "patients",
               ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv", "train.csv"),
               "ISIC_*", read_isic2020, _is_isic2020),
        Layout("pad-ufes-20", "PAD-UFES-20", "lesions", ("metadata.csv",), "PAT_*", read_pad_ufes, _is_pad_ufes),
    )
}


def find_label_file(root: Path, layout: Layout) -> Path | None:
    """The layout's label file at the top of `root` or one level below, or None."""
    for name in layout.label_files:
        for path in [root / name, *sorted(root.glob(f"*/{name}"))]:
            if path.is_file() and layout.accepts(path):
                return path
    return None


def detect(root: Path) -> Layout:
    """The one official layout whose label file is in `root`; refused when none or several are."""
    found = [layout for layout in LAYOUTS.values() if find_label_file(root, layout)]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"{root} holds the files of several datasets ({', '.join(f.name for f in found)}); "
                        "choose one with --dataset")
    looked = "; ".join(f"{' or '.join(lay.label_files)} ({lay.name})" for lay in LAYOUTS.values())
    raise DataError(f"no dataset found in {root}: looked for {looked}. For any other dataset describe it in a CSV: "
                    "--dataset csv --csv FILE (see data/README.md)")
