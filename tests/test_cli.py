"""Every `python -m skinsim.X` command answers --help like its peers: exit 0, its prog name, its flags."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# module -> what its --help must list (flags, or subcommands with their one-line help)
HELP = {
    "skinsim.train": ["--preset", "--data-dir", "--out", "--resume", "--epochs", "--backbone", "--image-size",
                      "--seed", "--split-seed", "--loss", "proxy-anchor", "triplet+"],
    "skinsim.evaluate": ["run"],
    "skinsim.benchmark": ["--data-dir", "--seed-steps", "--skip-trained", "--retrain", "--train-seeds",
                          "--only-spread", "--split-seeds", "--only-splits", "--trained-only"],
    "skinsim.audit": ["run", "--k", "--dup-k", "--dup-threshold", "--phash-threshold", "--data-dir", "--no-images",
                      "--bench"],
    "skinsim.search": ["IMAGE", "--id", "--run", "-k", "--search-space", "--archive", "--index"],
    "skinsim.evaluate.projection": ["--bench", "--fit-limit"],
    "skinsim.index": ["SOURCE", "--run", "--name", "--index", "--batch-size", "--shard-size", "--workers", "--device",
                      "--rebuild-index", "torchrun"],
    "skinsim.bench.dashboard_speed": ["--run", "--loads", "--clicks", "--synthetic", "--screenshot"],
    "skinsim.bench.search_speed": ["--sizes", "--queries", "--markdown", "--threads"],
    "skinsim.bench.dashboard_load": ["--run", "--users", "--clicks"],
    "skinsim.screen": ["--data-dir", "--losses", "--seeds"],
    "skinsim.bench.ensemble": ["runs"],
    "skinsim.data": ["download", "check", "download HAM10000", "check that a HAM10000 folder"],
    "skinsim.data.download": ["--dest", "--source", "--base-url", "--keep-archives", "--force"],
}
SUBCOMMANDS = {
    "download": ["--dest", "--source", "--base-url", "--keep-archives", "--force"],
    "check": ["--data-dir"],
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_every_command_module_is_covered() -> None:
    """A module that runs as `python -m` gets a row in HELP (skinsim/data/__main__.py is `skinsim.data`)."""
    found = set()
    for path in (REPO / "skinsim").rglob("*.py"):
        if re.search(r"""^if __name__ == ["']__main__["']:""", path.read_text(), re.MULTILINE):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.add(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    assert found == set(HELP)


@pytest.mark.parametrize("module", list(HELP))
def test_help_exits_0_and_lists_the_flags(module: str) -> None:
    done = run(module, "--help")
    assert done.returncode == 0, done.stderr
    prog = "python -m " + ("skinsim.data download" if module == "skinsim.data.download" else module)
    assert done.stdout.startswith(f"usage: {prog} "), done.stdout
    for word in HELP[module]:
        assert word in done.stdout, (word, done.stdout)
    assert done.stderr == ""


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_data_subcommand_help(command: str) -> None:
    done = run("skinsim.data", command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m skinsim.data {command} ")
    for flag in SUBCOMMANDS[command]:
        assert flag in done.stdout, (flag, done.stdout)


@pytest.mark.parametrize("args", [(), ("bogus",), ("download", "--no-such-flag")],
                         ids=["no subcommand", "unknown subcommand", "unknown flag"])
def test_data_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    done = run("skinsim.data", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: python -m skinsim.data ")
    assert "python -m skinsim.data: error:" in done.stderr
    assert "Traceback" not in done.stderr


def test_download_flags_come_from_one_place(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m skinsim.data download` and `skinsim.data.download.main` share their flags and help."""
    from skinsim.data import __main__ as cli
    from skinsim.data import download

    assert cli.main(["download", "--help"]) == 0
    sub_help = capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        download.main(["--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == sub_help
    args = cli.parser().parse_args(["download", "--dest", "x", "--source", "isic2018", "--force"])
    assert args.func is download.run and args.source == "isic2018" and args.force and not args.keep_archives
