"""Reading and checking a HAM10000 folder: each problem is one clear message naming file and ids."""
import shutil
from pathlib import Path

import pandas as pd
import pytest

from skinsim.data import DataError, load_dataset, resolve_data_dir
from skinsim.data.images import decode_all, find_image, parse_size
from tests.conftest import make_synthetic_dataset


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    make_synthetic_dataset(tmp_path, lesions_per_class=2, images_per_lesion=1)
    return tmp_path


def rewrite(folder: Path, change) -> None:
    table = pd.read_csv(folder / "HAM10000_metadata.csv")
    change(table).to_csv(folder / "HAM10000_metadata.csv", index=False)


def test_loads_a_good_folder(folder):
    table = load_dataset(folder)
    assert len(table) == 14 and table["path"].str.startswith("images/").all()


def test_official_part_folders_and_flat_layout(folder):
    (folder / "HAM10000_images_part_1").mkdir()
    for i, img in enumerate(sorted((folder / "images").iterdir())):
        shutil.move(img, folder / ("HAM10000_images_part_1" if i % 2 else ".") / img.name)
    table = load_dataset(folder)
    assert set(table["path"].str.split("/").str[0].str.startswith("HAM10000_images_part_1")) == {True, False}
    assert find_image(folder, table["image_id"][1]) is not None


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("SKINSIM_DATA", str(tmp_path))
    assert resolve_data_dir("x") == Path("x")
    assert resolve_data_dir(None) == tmp_path
    monkeypatch.delenv("SKINSIM_DATA")
    assert resolve_data_dir(None).parts[-2:] == ("data", "ham10000")


def test_missing_folder_and_csv(tmp_path):
    with pytest.raises(DataError, match="does not exist.*--data-dir"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="no dataset found.*HAM10000_metadata.csv.*--dataset csv"):
        load_dataset(tmp_path)
    with pytest.raises(DataError, match="HAM10000_metadata.csv not found.*not a HAM10000 folder"):
        load_dataset(tmp_path, dataset="ham10000")


def test_missing_column(folder):
    rewrite(folder, lambda t: t.drop(columns=["lesion_id"]))
    with pytest.raises(DataError, match="missing required column.*lesion_id"):
        load_dataset(folder)


def test_unknown_diagnosis(folder):
    rewrite(folder, lambda t: t.assign(dx=t["dx"].where(t.index > 1, "xyz")))
    with pytest.raises(DataError, match=r"unknown diagnosis code\(s\) xyz .*ISIC_9000000, ISIC_9000001 \(2 in all\)"):
        load_dataset(folder)


def test_duplicate_ids(folder):
    rewrite(folder, lambda t: pd.concat([t, t.iloc[:3]]))
    with pytest.raises(DataError, match="duplicate image_id.*ISIC_9000000.*3 in all"):
        load_dataset(folder)


def test_rows_without_image(folder):
    for i in range(7):
        (folder / "images" / f"ISIC_{9000000 + i:07d}.jpg").unlink()
    with pytest.raises(DataError, match=r"7 metadata row\(s\) have no image.*ISIC_9000000.*\.\.\. \(7 in all\)"):
        load_dataset(folder)


def test_unreadable_image(folder):
    (folder / "images" / "ISIC_9000003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="unreadable image.*ISIC_9000003"):
        load_dataset(folder)


def test_cli_reports_one_line_not_a_traceback(folder, capsys):
    from skinsim.train.train import main

    rewrite(folder, lambda t: t.drop(columns=["dx"]))
    assert main(["--data-dir", str(folder), "--out", str(folder / "run")]) == 2
    err = capsys.readouterr().err
    assert "missing required column(s) dx" in err and "Traceback" not in err


def test_decode_and_size():
    assert parse_size("224") == (224, 224) and parse_size("150x200") == (150, 200)


def test_decode_all(folder):
    table = load_dataset(folder)
    arr = decode_all(folder, list(table["path"]), (16, 20))
    assert arr.shape == (14, 16, 20, 3) and arr.dtype.name == "uint8" and arr.std() > 0


def test_check_command(folder, capsys):
    from skinsim.data.__main__ import main

    assert main(["check", "--data-dir", str(folder)]) == 2  # 2 lesions a diagnosis: too few to split
    assert "label 'akiec' has 2 group(s); the grouped split needs at least 3" in capsys.readouterr().err
    make_synthetic_dataset(folder, lesions_per_class=3, images_per_lesion=4)
    assert main(["check", "--data-dir", str(folder)]) == 0
    assert "(ham10000): 84 images of 21 lesions" in capsys.readouterr().out
    (folder / "images" / "ISIC_9000003.jpg").write_bytes(b"")
    assert main(["check", "--data-dir", str(folder)]) == 2
    assert main([]) == 2
