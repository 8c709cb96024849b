"""Other datasets than HAM10000: each official layout and the generic CSV read into the one internal table,
detected from the files, checked by `python -m skinsim.data check`, and trained on end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinsim.runs.config import TrainConfig
from skinsim.data import CsvSpec, DataError, load_dataset, read_dataset
from skinsim.data.__main__ import main as data_cli
from skinsim.data.table import STANDARD_COLUMNS
from skinsim.runs.folder import read_vectors
from tests.conftest import TINY_ARGS

ISIC2019_CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
SHADES = [(60, 40, 30), (140, 90, 60), (210, 150, 150), (90, 130, 180)]


def write_image(path: Path, shade: int, seed: int) -> None:
    """A tiny 30x40 picture whose colour depends on the label, so training has something to learn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = np.array(SHADES[shade], dtype=float) + rng.normal(0, 20, size=(30, 40, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def make_isic2019(root: Path) -> None:
    """3 classes x (4 lesions x 3 images + 1 image without lesion_id) = 39 images."""
    truth, meta, n = [], [], 0
    for c, label in enumerate(["MEL", "NV", "BCC"]):
        for lesion in range(5):
            for _ in range(3 if lesion < 4 else 1):
                image = f"ISIC_{n:07d}"
                write_image(root / "ISIC_2019_Training_Input" / f"{image}.jpg", c, n)
                truth.append({"image": image, **{k: float(k == label) for k in ISIC2019_CLASSES}})
                meta.append({"image": image, "age_approx": 40 + 5 * lesion, "anatom_site_general": "anterior torso",
                             "lesion_id": f"BCN_{c}{lesion:04d}" if lesion < 4 else None, "sex": "female"})
                n += 1
    pd.DataFrame(truth).to_csv(root / "ISIC_2019_Training_GroundTruth.csv", index=False)
    pd.DataFrame(meta).to_csv(root / "ISIC_2019_Training_Metadata.csv", index=False)


def make_isic2020(root: Path, kaggle: bool) -> None:
    """12 patients x 3 images; patients 0-5 benign, 6-11 malignant. Kaggle's train.csv + jpeg/train, or official."""
    rows, folder = [], root / ("jpeg/train" if kaggle else "train")
    for n in range(36):
        patient = n // 3
        label = "malignant" if patient >= 6 else "benign"
        write_image(folder / f"ISIC_{n:07d}.jpg", int(patient >= 6), n)
        rows.append({"image_name": f"ISIC_{n:07d}", "patient_id": f"IP_{patient:07d}", "lesion_id": f"IL_{n:07d}",
                     "sex": "male", "age_approx": 55.0, "anatom_site_general_challenge": "torso",
                     "diagnosis": "melanoma" if patient >= 6 else "nevus", "benign_malignant": label,
                     "target": int(patient >= 6)})
    name = "train.csv" if kaggle else "ISIC_2020_Training_GroundTruth_v2.csv"
    frame = pd.DataFrame(rows)
    (frame.drop(columns="lesion_id") if kaggle else frame).to_csv(root / name, index=False)


def make_pad_ufes(root: Path) -> None:
    """3 diagnostics x 4 patients x 2 images of lesion 1 (the same lesion number in every patient), as PNGs."""
    rows, n = [], 0
    for c, label in enumerate(["NEV", "BCC", "MEL"]):
        for patient in range(4):
            for _ in range(2):
                name = f"PAT_{c}{patient}_1_{n}.png"
                write_image(root / f"imgs_part_{1 + n % 2}" / name, c, n)
                rows.append({"patient_id": f"PAT_{c}{patient}", "lesion_id": 1, "smoke": "False", "age": 60,
                             "gender": "MALE", "region": "FACE", "diagnostic": label, "img_id": name,
                             "biopsed": "True"})
                n += 1
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)


def make_generic(root: Path) -> Path:
    """A CSV of image paths (file), labels (diagnosis), groups (patient), metadata (site, a clashing 'dx')."""
    rows = []
    for n in range(30):
        label, patient = ["calm", "busy", "odd"][n % 3], f"p{n % 15}"
        write_image(root / "pics" / f"img{n}.jpg", n % 3, n)
        rows.append({"file": f"pics/img{n}.jpg", "diagnosis": label, "patient": patient, "site": "arm", "age": 33,
                     "dx": "clinical note"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


@pytest.fixture
def isic2019(tmp_path: Path) -> Path:
    make_isic2019(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------------------ readers
def test_isic2019_table(isic2019):
    data = read_dataset(isic2019)
    table = data.table
    assert data.layout == "isic2019" and len(table) == 39 and list(table.columns[:7]) == STANDARD_COLUMNS
    assert set(table["dx"]) == {"mel", "nv", "bcc"}  # learned from the data: no empty AK..UNK class
    single = table[table["image_id"] == "ISIC_0000012"].iloc[0]  # the MEL image without a lesion_id
    assert single["lesion_id"] == "ISIC_0000012" and table["lesion_id"].nunique() == 15
    assert table["path"].str.startswith("ISIC_2019_Training_Input/").all()
    assert table["age"].dtype.kind == "f" and set(table["dx_type"]) == {"unknown"}
    assert set(table["localization"]) == {"anterior torso"} and set(table["sex"]) == {"female"}


def test_isic2019_needs_exactly_one_class(isic2019):
    truth = pd.read_csv(isic2019 / "ISIC_2019_Training_GroundTruth.csv")
    truth.loc[3, "NV"] = 1.0
    truth.to_csv(isic2019 / "ISIC_2019_Training_GroundTruth.csv", index=False)
    with pytest.raises(DataError, match=r"ISIC_0000003 \(1 in all\) do not have exactly one class"):
        load_dataset(isic2019)
    (isic2019 / "ISIC_2019_Training_Metadata.csv").unlink()
    with pytest.raises(DataError, match="ISIC_2019_Training_Metadata.csv not found"):
        load_dataset(isic2019)


@pytest.mark.parametrize("kaggle", [False, True])
def test_isic2020_table(tmp_path, kaggle):
    make_isic2020(tmp_path, kaggle)
    data = read_dataset(tmp_path)
    table = data.table
    assert (data.layout, data.groups, len(table)) == ("isic2020", "patients", 36)
    assert set(table["dx"]) == {"benign", "malignant"} and table["lesion_id"].nunique() == 12
    assert table["lesion_id"][0] == "IP_0000000" and set(table["diagnosis"]) == {"melanoma", "nevus"}
    assert ("isic_lesion_id" in table) != kaggle  # the official v2 file's lesion_id is kept as metadata
    assert table["path"].str.startswith("jpeg/train/" if kaggle else "train/").all()
    assert set(table["localization"]) == {"torso"} and table["age"].eq(55.0).all()


def test_pad_ufes_table(tmp_path):
    make_pad_ufes(tmp_path)
    data = read_dataset(tmp_path)
    table = data.table
    assert data.layout == "pad-ufes-20" and len(table) == 24 and set(table["dx"]) == {"nev", "bcc", "mel"}
    assert table["lesion_id"].nunique() == 12 and table["lesion_id"][0] == "PAT_00_1"  # lesion 1 of each patient
    assert table["image_id"][0] == "PAT_00_1_0" and set(table["path"].str[:10]) == {"imgs_part_", }
    assert set(table["sex"]) == {"MALE"} and set(table["localization"]) == {"FACE"} and "smoke" in table


def test_generic_csv_with_paths_and_groups(tmp_path):
    csv = make_generic(tmp_path)
    data = read_dataset(None, "csv", CsvSpec(csv, "file", "diagnosis", "patient"))
    table = data.table
    assert data.root == tmp_path and data.layout == "csv" and len(table) == 30
    assert table["image_id"][0] == "pics/img0.jpg" and table["path"][0] == "pics/img0.jpg"
    assert table["lesion_id"].nunique() == 15 and set(table["dx"]) == {"calm", "busy", "odd"}
    assert set(table["csv_dx"]) == {"clinical note"} and set(table["site"]) == {"arm"} and table["age"].eq(33).all()


def test_generic_csv_by_id_without_group(tmp_path):
    csv = make_generic(tmp_path)
    pd.read_csv(csv).assign(file=lambda t: t["file"].str[5:-4]).to_csv(csv, index=False)  # "img0": an id
    table = load_dataset(tmp_path, csv=CsvSpec(csv, "file", "diagnosis"))
    assert table["path"][0] == "pics/img0.jpg"
    assert (table["lesion_id"] == table["image_id"]).all()  # no group column: each image is its own group


def test_generic_csv_bad_input(tmp_path):
    csv = make_generic(tmp_path)
    with pytest.raises(DataError, match="missing required column.*label"):
        load_dataset(csv=CsvSpec(csv))
    with pytest.raises(DataError, match="nope.csv not found"):
        load_dataset(csv=CsvSpec(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="--dataset csv needs --csv"):
        load_dataset(tmp_path, dataset="csv")


# ---------------------------------------------------------------------------------------- detection
def test_detection_names_what_it_found(tmp_path):
    for name, make in {"isic2019": make_isic2019, "pad": make_pad_ufes}.items():
        make(tmp_path / name)
    make_isic2020(tmp_path / "kaggle", kaggle=True)
    assert read_dataset(tmp_path / "isic2019").layout == "isic2019"
    assert read_dataset(tmp_path / "pad").layout == "pad-ufes-20"
    assert read_dataset(tmp_path / "kaggle").layout == "isic2020"
    make_pad_ufes(tmp_path / "isic2019" / "pad")  # a second dataset's label file one level below
    with pytest.raises(DataError, match=r"several datasets \(isic2019, pad-ufes-20\); choose one with --dataset"):
        read_dataset(tmp_path / "isic2019")
    assert read_dataset(tmp_path / "isic2019", "isic2019").layout == "isic2019"
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "train.csv").write_text("image,label\nx.jpg,a\n")  # a train.csv that is not ISIC 2020's
    with pytest.raises(DataError, match="no dataset found.*metadata.csv \\(pad-ufes-20\\).*--dataset csv --csv"):
        read_dataset(tmp_path / "none")


def test_old_configs_read_as_ham10000():
    assert TrainConfig.from_dict({"epochs": 3}).dataset == "ham10000"
    assert TrainConfig().dataset == "auto" and TrainConfig.from_dict({"dataset": "isic2019"}).dataset == "isic2019"


# ------------------------------------------------------------------------------------------ check CLI
def test_check_reports_each_layout(tmp_path, capsys):
    make_isic2020(tmp_path / "a", kaggle=False)
    assert data_cli(["check", "--data-dir", str(tmp_path / "a")]) == 0
    assert "(isic2020): 36 images of 12 patients, all readable (benign 18, malignant 18)" in capsys.readouterr().out
    csv = make_generic(tmp_path / "b")
    args = ["check", "--dataset", "csv", "--csv", str(csv), "--image-col", "file", "--label-col", "diagnosis"]
    assert data_cli([*args, "--group-col", "patient"]) == 0
    assert "(csv): 30 images of 15 groups" in capsys.readouterr().out


def test_check_lists_missing_and_unreadable_images(isic2019, capsys):
    images = isic2019 / "ISIC_2019_Training_Input"
    (images / "ISIC_0000001.jpg").unlink()
    (images / "ISIC_0000002.jpg").unlink()
    (images / "ISIC_0000005.jpg").write_bytes(b"not a jpeg")
    assert data_cli(["check", "--data-dir", str(isic2019)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert r"2 metadata row(s) have no image file" in err and "ISIC_0000001, ISIC_0000002 (2 in all)" in err
    assert "unreadable image file(s)" in err and "ISIC_0000005 (1 in all)" in err and "--skip-missing" in err
    assert data_cli(["check", "--data-dir", str(isic2019), "--skip-missing"]) == 0
    out = capsys.readouterr().out
    assert "skipped 3 image(s) missing or unreadable: ISIC_0000001, ISIC_0000002, ISIC_0000005" in out
    assert "36 images of 15 lesions" in out


def test_check_refuses_duplicates_and_unsplittable_labels(isic2019, capsys):
    truth = pd.read_csv(isic2019 / "ISIC_2019_Training_GroundTruth.csv")
    pd.concat([truth, truth.iloc[[4]]]).to_csv(isic2019 / "ISIC_2019_Training_GroundTruth.csv", index=False)
    assert data_cli(["check", "--data-dir", str(isic2019)]) == 2
    assert "duplicate image_id(s) ISIC_0000004 (1 in all)" in capsys.readouterr().err
    truth.loc[truth["image"].isin([f"ISIC_{n:07d}" for n in range(6)]), ["MEL", "DF"]] = [0.0, 1.0]  # lesions 0, 1
    truth.to_csv(isic2019 / "ISIC_2019_Training_GroundTruth.csv", index=False)
    assert data_cli(["check", "--data-dir", str(isic2019)]) == 2
    assert "label 'df' has 2 group(s); the grouped split needs at least 3" in capsys.readouterr().err


def test_check_bad_command_lines(tmp_path, capsys):
    assert data_cli(["check", "--dataset", "imagenet"]) == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
    assert data_cli(["check", "--data-dir", str(tmp_path), "--dataset", "pad-ufes-20"]) == 2
    assert "metadata.csv not found, so" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ training
def train(out: Path, *args: str) -> dict:
    from skinsim.train.train import main

    flags = [*TINY_ARGS, "--epochs", "1", "--max_steps", "2", "--no-audit", "--no-tta"]
    assert main(["--out", str(out), *flags, *args]) == 0
    return json.loads((out / "config.json").read_text())


def test_trains_on_isic2019(isic2019, tmp_path):
    config = train(tmp_path / "run", "--data-dir", str(isic2019))
    assert config["dataset"] == "isic2019" and config["meta"]["classes"] == ["bcc", "mel", "nv"]
    split = pd.read_parquet(tmp_path / "run" / "split.parquet")
    assert set(split["split"]) == {"train", "val", "test"}
    assert split.groupby("lesion_id")["split"].nunique().max() == 1  # a lesion never straddles the split


def test_trains_on_generic_csv(tmp_path):
    csv = make_generic(tmp_path / "data")
    config = train(tmp_path / "run", "--dataset", "csv", "--csv", str(csv), "--image-col", "file",
                   "--label-col", "diagnosis", "--group-col", "patient")
    assert config["dataset"] == "csv" and config["group_col"] == "patient"
    assert config["meta"]["classes"] == ["busy", "calm", "odd"]
    assert Path(config["meta"]["data_dir"]) == (tmp_path / "data").resolve()
    # the CSV's own columns travel with every image into the run, for the dashboard to show
    table, _ = read_vectors(tmp_path / "run" / "embeddings.parquet")
    assert set(table["site"]) == {"arm"} and set(table["csv_dx"]) == {"clinical note"}
