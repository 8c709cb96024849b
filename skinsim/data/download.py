"""Fetch HAM10000 into its official folder layout: `python -m skinsim.data download`.

Sources, checked against stored copies of the public documentation (not guessed):
- dataverse (default), Harvard Dataverse doi:10.7910/DVN/DBW86T. `GET /api/datasets/:persistentId/?persistentId=DOI`
  lists `data.latestVersion.files[].dataFile` {id, filename, filesize, md5; originalFileName/originalFileSize for
  files Dataverse ingested as tables} (Dataverse native API guide; IQSS/dataverse #11315). Files come from
  `GET /api/access/datafile/{id}`, which honours one Range header (Data Access API guide); `?format=original` gives
  the uploaded CSV rather than Dataverse's .tab, and the listed md5 is the original's (IQSS/dataverse #7275).
  The whole-dataset zip (`/api/access/dataset/:persistentId/?persistentId=DOI`) is not used: it is built on the
  fly, so it has no fixed size or checksum, cannot be resumed, and installations cap its size.
- isic2018: the ISIC 2018 Task 3 training files in https://isic-challenge-data.s3.amazonaws.com/2018/ (the URLs
  of many public download scripts). They carry no age, sex or localization: those columns are left empty.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import io
import json
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

DOI = "doi:10.7910/DVN/DBW86T"
BASE_URLS = {"dataverse": "https://dataverse.harvard.edu",
             "isic2018": "https://isic-challenge-data.s3.amazonaws.com/2018"}
METADATA = "HAM10000_metadata.csv"
DATAVERSE_PARTS = ["HAM10000_images_part_1.zip", "HAM10000_images_part_2.zip", METADATA]
ISIC_IMAGES, ISIC_TRUTH, ISIC_GROUPS = ("ISIC2018_Task3_Training_Input.zip", "ISIC2018_Task3_Training_GroundTruth.zip",
                                        "ISIC2018_Task3_Training_LesionGroupings.csv")
# Only used when a listing gives no md5 (e.g. a plain mirror). The two zip values are the ones a public data card
# records as matching Dataverse's published md5s; the CSV value is the project's, not re-verified here.
KNOWN_MD5 = {"HAM10000_images_part_1.zip": "4639bfa73ab251610530a97c898e6e46",
             "HAM10000_images_part_2.zip": "da43d6cc50f6613013be07e8986b384b",
             METADATA: "70bb67f71bd23dde0bd2eda4bdcc98e5"}
# ISIC diagnosis_confirm_type -> HAM10000 dx_type (a 1:1 match on the training images)
DX_TYPES = {"histopathology": "histo", "serial imaging showing no change": "follow_up",
            "single image expert consensus": "consensus", "confocal microscopy with consensus dermoscopy": "confocal"}
CONNECT_TIMEOUT_S = 10  # short so that an offline machine fails at once
READ_TIMEOUT_S = 60  # once connected, a slow server may pause longer than that
CHUNK = 1 << 20
IMAGE_NAME = re.compile(r"ISIC_\d+\.jpg", re.IGNORECASE)


class DownloadError(Exception):
    """A download that cannot go on; the message names the file or URL, `exit_code` is what `main` returns."""
    exit_code = 1


class OfflineError(DownloadError):
    """The server could not be reached (DNS, refused, timeout, dropped connection)."""
    exit_code = 2


@dataclass
class Remote:
    """One file to fetch: its local name, URL, and the size and md5 when known in advance."""
    name: str
    url: str
    size: int | None = None
    md5: str | None = None


def default_dest() -> Path:
    """`data/ham10000` in the repository."""
    try:
        from skinsim.runs.folder import REPO_ROOT
    except ImportError:  # runs.py needs pandas/pyarrow; the download itself does not
        REPO_ROOT = Path(__file__).resolve().parents[2]
    return REPO_ROOT / "data" / "ham10000"


def is_complete(dest: Path) -> bool:
    """True when `dest` holds the metadata CSV and an ISIC_*.jpg below it for every image_id in it."""
    if not (dest / METADATA).is_file():
        return False
    with (dest / METADATA).open(newline="", encoding="utf-8-sig") as fh:
        ids = {row.get("image_id") for row in csv.DictReader(fh)}
    return bool(ids) and None not in ids and ids <= {p.stem for p in dest.rglob("ISIC_*.jpg")}


def _offline(url: str, exc: BaseException) -> OfflineError:
    reason = getattr(exc, "reason", exc)
    reason = str(reason) or type(reason).__name__  # a bare TimeoutError has no text
    return OfflineError(f"cannot download {url} ({reason}). If you already have HAM10000, point skinsim at it "
                        f"with --data-dir DIR or SKINSIM_DATA=DIR; or fetch from a mirror with --base-url URL.")


def _open(url: str, start: int = 0) -> http.client.HTTPResponse:
    headers = {"User-Agent": "skinsim-download", **({"Range": f"bytes={start}-"} if start else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=CONNECT_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the .part is already as long as the file, or longer: fetch it whole
            return _open(url)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _offline(url, exc) from None
    sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)  # urlopen's timeout also bounds every read
    if sock is not None:
        sock.settimeout(READ_TIMEOUT_S)
    return resp


def dataverse_files(base_url: str) -> list[Remote]:
    """The two image zips and the metadata CSV, resolved from the Dataverse dataset listing."""
    url = f"{base_url}/api/datasets/:persistentId/?persistentId={DOI}"
    try:
        with _open(url) as resp:
            files = [f["dataFile"] for f in json.loads(resp.read())["data"]["latestVersion"]["files"]]
    except (OSError, http.client.HTTPException) as exc:
        raise _offline(url, exc) from None
    except (ValueError, KeyError, TypeError):
        raise DownloadError(f"{url}: not a Dataverse dataset listing") from None
    remotes = []
    for name in DATAVERSE_PARTS:
        stem = Path(name).stem  # the metadata is listed as HAM10000_metadata.tab once Dataverse ingested it
        entry = next((f for f in files if Path(f.get("filename", "")).stem == stem), None)
        if entry is None:
            raise DownloadError(f"{url}: the dataset lists no file named {stem}.*")
        ingested = "originalFileFormat" in entry  # ask for the uploaded CSV, not Dataverse's .tab rendering
        query = "?format=original" if ingested else ""
        remotes.append(Remote(name, f"{base_url}/api/access/datafile/{entry['id']}{query}",
                              entry.get("originalFileSize" if ingested else "filesize"),
                              entry.get("md5") or KNOWN_MD5.get(name)))
    return remotes


def _problem(path: Path, remote: Remote) -> str | None:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"is {size} bytes, expected {remote.size}"
    if remote.md5:
        digest = hashlib.md5()
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != remote.md5.lower():
            return f"has md5 {digest.hexdigest()}, expected {remote.md5}"
    if remote.name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
        except zipfile.BadZipFile:
            return "is not a valid zip archive"
        if bad:
            return f"is a damaged zip archive (bad CRC in {bad})"
    return None


def _stream(remote: Remote, part: Path, have: int) -> None:
    resp = _open(remote.url, have)
    with resp:
        if have and resp.status != 206:  # the server ignored Range and sends the whole file: start over
            have = 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length else remote.size
        with part.open("ab" if have else "wb") as out, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                            unit_divisor=1024, desc=remote.name) as bar:
            try:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                raise _offline(remote.url, exc) from None
    got = part.stat().st_size
    if total is not None and got < total:  # keep the .part: the next run resumes it
        raise OfflineError(f"{remote.url}: connection closed after {got} of {total} bytes; run again to resume")


def fetch(remote: Remote, folder: Path, force: bool = False) -> Path:
    """Download `remote` into `folder` (resuming a `.part` file), check it, and return its path."""
    target, part = folder / remote.name, folder / f"{remote.name}.part"
    if force:
        part.unlink(missing_ok=True)
    elif target.is_file() and _problem(target, remote) is None:  # kept from an earlier run
        return target
    target.unlink(missing_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    if remote.size is not None and have > remote.size:
        have = 0
    if remote.size is None or have < remote.size:
        _stream(remote, part, have)
    problem = _problem(part, remote)
    if problem:  # resuming a wrong file can never fix it
        part.unlink()
        raise DownloadError(f"{remote.name} (from {remote.url}) {problem}; deleted it, run again to fetch it afresh")
    return part.replace(target)


def unpack_images(archive: Path, folder: Path) -> int:
    """Extract the ISIC_*.jpg files of `archive` flat into `folder`; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        # by base name: the zips differ in whether they nest a folder, and a base name cannot escape `folder`
        members = [m for m in zf.infolist() if IMAGE_NAME.fullmatch(PurePosixPath(m.filename).name)]
        for member in tqdm(members, desc=f"unpack {archive.name}", unit="file"):
            with zf.open(member) as src, (folder / PurePosixPath(member.filename).name).open("wb") as dst:
                shutil.copyfileobj(src, dst)
    if not members:
        raise DownloadError(f"{archive} holds no ISIC_*.jpg images")
    return len(members)


def build_isic_metadata(truth_zip: Path, groupings: Path, out: Path) -> int:
    """Write a HAM10000_metadata.csv-shaped table from the ISIC 2018 ground truth and lesion groupings."""
    try:
        with zipfile.ZipFile(truth_zip) as zf:
            name = next(n for n in zf.namelist() if n.endswith("GroundTruth.csv"))
            truth = list(csv.DictReader(io.TextIOWrapper(zf.open(name), encoding="utf-8-sig")))
        with groupings.open(newline="", encoding="utf-8-sig") as fh:
            groups = {row["image"]: row for row in csv.DictReader(fh)}
        rows = []
        for row in truth:
            image = row.pop("image")
            dx = max(row, key=lambda col: float(row[col] or 0)).lower()  # one-hot MEL, NV, ... -> mel, nv, ...
            group = groups[image]
            confirm = group["diagnosis_confirm_type"]
            rows.append({"lesion_id": group["lesion_id"], "image_id": image, "dx": dx,
                         "dx_type": DX_TYPES.get(confirm, confirm), "age": "", "sex": "", "localization": ""})
    except (StopIteration, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DownloadError(f"cannot build {METADATA} from {truth_zip.name} and {groupings.name}: "
                            f"unexpected content ({type(exc).__name__}: {exc})") from None
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["lesion_id", "image_id"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out)
    return len(rows)


def download(dest: Path, source: str = "dataverse", base_url: str | None = None,
             keep_archives: bool = False, force: bool = False) -> bool:
    """Fetch, check and unpack HAM10000 into `dest`; False when it was already complete."""
    if not force and is_complete(dest):
        return False
    dest.mkdir(parents=True, exist_ok=True)
    base = (base_url or BASE_URLS[source]).rstrip("/")
    if source == "dataverse":
        remotes = dataverse_files(base)
    else:
        remotes = [Remote(name, f"{base}/{name}") for name in (ISIC_IMAGES, ISIC_TRUTH, ISIC_GROUPS)]
    # everything is fetched before anything is unpacked, so a dropped connection leaves no half-unpacked folder
    got = {r.name: fetch(r, dest, force) for r in remotes}
    if source == "dataverse":
        for name in DATAVERSE_PARTS[:2]:
            unpack_images(got[name], dest / Path(name).stem)
    else:
        unpack_images(got[ISIC_IMAGES], dest / "images")
        n = build_isic_metadata(got[ISIC_TRUTH], got[ISIC_GROUPS], dest / METADATA)
        print(f"wrote {METADATA} ({n} rows) from the ISIC 2018 files; ISIC gives no age, sex or localization, "
              "so those columns are empty (use --source dataverse for the full table)")
    if not is_complete(dest):
        raise DownloadError(f"{dest}: unpacked, but images listed in {METADATA} are missing")
    if not keep_archives:
        for path in got.values():
            if path.name != METADATA:
                path.unlink()
    return True


HELP = "download HAM10000 and unpack it into the official layout"
DESCRIPTION = ("Download HAM10000 (images and metadata), check it and unpack it into the official layout. "
               "Interrupted downloads resume where they stopped.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m skinsim.data download", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The download flags, on `parser`: this module's own parser and `python -m skinsim.data`'s subcommand."""
    parser.add_argument("--dest", type=Path, help="folder to fill (default: data/ham10000 in the repository)")
    parser.add_argument("--source", choices=list(BASE_URLS), default="dataverse",
                        help="dataverse: the official Harvard Dataverse record (default); isic2018: the ISIC 2018 "
                             "Task 3 training files (no age, sex or localization)")
    defaults = ", ".join(f"{k}: {v}" for k, v in BASE_URLS.items())
    parser.add_argument("--base-url", help=f"a mirror to fetch from instead of the source's server; it must serve "
                        f"the same paths (default: {defaults})")
    parser.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives after unpacking")
    parser.add_argument("--force", action="store_true", help="download again even if the dataset is complete")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (2 when the server cannot be reached)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run(_parser().parse_args(argv[1:] if argv[:1] == ["download"] else argv))


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed download command line (see `add_arguments`); returns the exit code."""
    dest = (args.dest or default_dest()).expanduser()
    try:
        if not download(dest, args.source, args.base_url, args.keep_archives, args.force):
            print(f"{dest} already holds a complete HAM10000 ({METADATA} and all its images); "
                  "nothing to do (--force downloads it again)")
            return 0
    except (DownloadError, OSError) as exc:  # network OSErrors became DownloadError already: these are local disk
        print(f"skinsim download: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("skinsim download: interrupted; run again to resume", file=sys.stderr)
        return 130
    print(f"HAM10000 is ready in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
