"""`python -m skinsim.data download` against a fake HAM10000 served from 127.0.0.1 (no internet needed)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from skinsim.data.download import DOI, main

REPO = Path(__file__).resolve().parents[1]
IDS = ["ISIC_0024306", "ISIC_0024307", "ISIC_0024308"]
LISTING = f"/api/datasets/:persistentId/?persistentId={DOI}"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """Keep a proxy set in the environment off the 127.0.0.1 test server (the subprocess inherits this too)."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def _jpeg(seed: int) -> bytes:
    try:
        from PIL import Image
    except ImportError:  # any bytes do: the downloader never decodes images
        return bytes([0xFF, 0xD8, seed]) * 3000
    noise = bytes((seed * 7919 + i * 104729) % 251 for i in range(48 * 48 * 3))  # noise: hardly compressible
    buf = io.BytesIO()
    Image.frombytes("RGB", (48, 48), noise).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _csv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


@pytest.fixture(scope="module")
def dist() -> dict[str, bytes]:
    """The fake distribution: image zips (one nesting a folder, one flat), metadata CSV, ISIC 2018 files."""
    jpgs = {i: _jpeg(n) for n, i in enumerate(IDS)}
    meta = [{"lesion_id": f"HAM_000000{n}", "image_id": i, "dx": "nv", "dx_type": "histo", "age": "45.0",
             "sex": "male", "localization": "back"} for n, i in enumerate(IDS)]
    truth = [{"image": i, "MEL": "0.0", "NV": "0.0", "BCC": "0.0", "AKIEC": "0.0", "BKL": "0.0", "DF": "0.0",
              "VASC": "0.0", **{dx: "1.0"}} for i, dx in zip(IDS, ["MEL", "NV", "VASC"])]
    groups = [{"image": i, "lesion_id": f"HAM_000000{n}", "diagnosis_confirm_type": t}
              for n, (i, t) in enumerate(zip(IDS, ["histopathology", "serial imaging showing no change", "other"]))]
    return {
        "part1": _zip({f"HAM10000_images_part_1/{i}.jpg": jpgs[i] for i in IDS[:2]}),
        "part2": _zip({f"{IDS[2]}.jpg": jpgs[IDS[2]], "LICENSE.txt": b"CC BY-NC-SA 4.0"}),
        "meta": _csv(meta),
        "isic_input": _zip({**{f"ISIC2018_Task3_Training_Input/{i}.jpg": jpgs[i] for i in IDS},
                            "ISIC2018_Task3_Training_Input/ATTRIBUTION.txt": b"x"}),
        "isic_truth": _zip({"ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv":
                            _csv(truth)}),
        "isic_groups": _csv(groups),
        **{f"jpg:{i}": data for i, data in jpgs.items()},
    }


def _entry(file_id: int, name: str, data: bytes, **extra) -> dict:
    return {"label": name, "dataFile": {"id": file_id, "filename": name, "filesize": len(data),
                                        "md5": hashlib.md5(data).hexdigest(), **extra}}


def _routes(dist: dict[str, bytes], part1: bytes | None = None, part1_size: int | None = None) -> dict[str, bytes]:
    """A Dataverse look-alike (the metadata listed as an ingested .tab, as on Harvard) plus the ISIC bucket."""
    part1 = dist["part1"] if part1 is None else part1
    first = _entry(11, "HAM10000_images_part_1.zip", part1)
    if part1_size is not None:  # the listing disagrees with what is served
        first["dataFile"]["filesize"] = part1_size
    meta = _entry(13, "HAM10000_metadata.tab", b"lesion_id\timage_id\n", originalFileFormat="text/csv",
                  originalFileSize=len(dist["meta"]), originalFileName="HAM10000_metadata.csv")
    meta["dataFile"]["md5"] = hashlib.md5(dist["meta"]).hexdigest()  # Dataverse lists the original's md5
    files = [first, _entry(12, "HAM10000_images_part_2.zip", dist["part2"]), meta]
    return {LISTING: json.dumps({"status": "OK", "data": {"latestVersion": {"files": files}}}).encode(),
            "/api/access/datafile/11": part1, "/api/access/datafile/12": dist["part2"],
            "/api/access/datafile/13?format=original": dist["meta"],
            "/ISIC2018_Task3_Training_Input.zip": dist["isic_input"],
            "/ISIC2018_Task3_Training_GroundTruth.zip": dist["isic_truth"],
            "/ISIC2018_Task3_Training_LesionGroupings.csv": dist["isic_groups"]}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        srv = self.server
        body, rng = srv.routes.get(self.path), self.headers.get("Range")
        srv.seen.append((self.path, rng))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if srv.drop_after is not None and self.path.startswith("/api/access/datafile/11"):
            self.wfile.write(body[start:start + srv.drop_after])  # then hang up, as a dropped connection does
            srv.drop_after = None
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(dist):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.routes, srv.seen, srv.ignore_range, srv.drop_after = _routes(dist), [], False, None
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _assert_layout(dest: Path, dist: dict[str, bytes]) -> None:
    assert (dest / "HAM10000_metadata.csv").read_bytes() == dist["meta"]
    assert sorted(p.name for p in (dest / "HAM10000_images_part_1").iterdir()) == [f"{i}.jpg" for i in IDS[:2]]
    assert sorted(p.name for p in (dest / "HAM10000_images_part_2").iterdir()) == [f"{IDS[2]}.jpg"]
    for i in IDS:
        assert next(dest.rglob(f"{i}.jpg")).read_bytes() == dist[f"jpg:{i}"]


def test_full_download_unpacks_official_layout(server, dist, tmp_path, capsys):
    dest = tmp_path / "ham"
    assert main(["download", "--dest", str(dest), "--base-url", server.url]) == 0
    _assert_layout(dest, dist)
    assert not list(dest.glob("*.zip")) and not list(dest.glob("*.part"))  # archives removed after unpacking
    assert "ready" in capsys.readouterr().out


def test_resume_completes_part_file_with_range_request(server, dist, tmp_path):
    dest = tmp_path / "ham"
    dest.mkdir()
    half = len(dist["part1"]) // 2
    (dest / "HAM10000_images_part_1.zip.part").write_bytes(dist["part1"][:half])
    assert main(["--dest", str(dest), "--base-url", server.url, "--keep-archives"]) == 0
    assert ("/api/access/datafile/11", f"bytes={half}-") in server.seen
    assert (dest / "HAM10000_images_part_1.zip").read_bytes() == dist["part1"]
    _assert_layout(dest, dist)


def test_dropped_connection_keeps_part_and_next_run_resumes(server, dist, tmp_path, capsys):
    server.drop_after = 700
    dest = tmp_path / "ham"
    assert main(["--dest", str(dest), "--base-url", server.url]) == 2
    assert "run again to resume" in capsys.readouterr().err
    assert (dest / "HAM10000_images_part_1.zip.part").read_bytes() == dist["part1"][:700]
    assert main(["--dest", str(dest), "--base-url", server.url]) == 0
    assert ("/api/access/datafile/11", "bytes=700-") in server.seen
    _assert_layout(dest, dist)


def test_server_ignoring_range_restarts_from_scratch(server, dist, tmp_path):
    server.ignore_range = True
    dest = tmp_path / "ham"
    dest.mkdir()
    # wrong bytes in the .part: appending the full body to them would fail the checks
    (dest / "HAM10000_images_part_1.zip.part").write_bytes(b"\0" * 1000)
    assert main(["--dest", str(dest), "--base-url", server.url, "--keep-archives"]) == 0
    assert ("/api/access/datafile/11", "bytes=1000-") in server.seen
    assert (dest / "HAM10000_images_part_1.zip").read_bytes() == dist["part1"]
    _assert_layout(dest, dist)


@pytest.mark.parametrize("damage", ["bad_zip", "wrong_size", "bad_md5"])
def test_corrupted_archive_is_a_clear_error(server, dist, tmp_path, capsys, damage):
    if damage == "bad_zip":
        server.routes = _routes(dist, part1=b"PK\3\4" + b"not really a zip" * 100)
    elif damage == "wrong_size":
        server.routes = _routes(dist, part1=dist["part1"][:-10], part1_size=len(dist["part1"]) + 5)
    else:
        server.routes[LISTING] = server.routes[LISTING].replace(hashlib.md5(dist["part2"]).hexdigest().encode(),
                                                                b"0" * 32)
    dest = tmp_path / "ham"
    code = main(["--dest", str(dest), "--base-url", server.url])
    err = capsys.readouterr().err
    assert code == 1
    name = "HAM10000_images_part_2.zip" if damage == "bad_md5" else "HAM10000_images_part_1.zip"
    assert name in err and "Traceback" not in err
    assert {"bad_zip": "not a valid zip", "wrong_size": "bytes, expected", "bad_md5": "md5"}[damage] in err
    assert not (dest / name).exists() and not (dest / f"{name}.part").exists()  # the next run starts afresh


def test_offline_fails_at_once_with_one_line(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "skinsim.data.download", "--dest", str(tmp_path / "ham"),
                           "--base-url", f"http://127.0.0.1:{port}"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert time.monotonic() - started < 15  # most of it is Python start-up and imports
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"http://127.0.0.1:{port}/api/datasets/" in lines[0]
    assert "--data-dir" in lines[0] and "SKINSIM_DATA" in lines[0]


def test_offline_in_process_is_fast(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    code = main(["--dest", str(tmp_path / "ham"), "--source", "isic2018", "--base-url", f"http://127.0.0.1:{port}"])
    assert time.monotonic() - started < 3
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "ISIC2018_Task3_Training_Input.zip" in err and "Traceback" not in err


def test_complete_dest_exits_zero_without_downloading(server, dist, tmp_path, capsys):
    dest = tmp_path / "ham"
    (dest / "images").mkdir(parents=True)
    (dest / "HAM10000_metadata.csv").write_bytes(dist["meta"])
    for i in IDS:
        (dest / "images" / f"{i}.jpg").write_bytes(dist[f"jpg:{i}"])
    assert main(["--dest", str(dest), "--base-url", server.url]) == 0
    assert "already" in capsys.readouterr().out
    assert server.seen == []


def test_force_downloads_a_complete_dest_again(server, dist, tmp_path):
    dest = tmp_path / "ham"
    assert main(["--dest", str(dest), "--base-url", server.url]) == 0
    server.seen.clear()
    assert main(["--dest", str(dest), "--base-url", server.url, "--force"]) == 0
    assert any(path == "/api/access/datafile/11" for path, _ in server.seen)
    _assert_layout(dest, dist)


def test_isic2018_source_builds_metadata_table(server, dist, tmp_path, capsys):
    dest = tmp_path / "ham"
    assert main(["--dest", str(dest), "--source", "isic2018", "--base-url", server.url]) == 0
    assert "age, sex or localization" in capsys.readouterr().out
    with (dest / "HAM10000_metadata.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    assert [(r["image_id"], r["dx"], r["dx_type"]) for r in rows] == [
        (IDS[0], "mel", "histo"), (IDS[1], "nv", "follow_up"), (IDS[2], "vasc", "other")]
    assert all(r["age"] == r["sex"] == r["localization"] == "" for r in rows)
    assert sorted(p.name for p in (dest / "images").iterdir()) == [f"{i}.jpg" for i in IDS]
    assert sorted(p.name for p in dest.iterdir()) == ["HAM10000_metadata.csv", "images"]
