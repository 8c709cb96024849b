"""`python -m skinsim.data download` fetches HAM10000; `python -m skinsim.data check` validates a folder."""
from __future__ import annotations

import argparse
import sys

from skinsim.data import download
from skinsim.data.metadata import DataError, load_dataset, resolve_data_dir

CHECK_HELP = "check that a HAM10000 folder is complete and readable, and say what it holds"


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The check flags, on `parser`."""
    parser.add_argument("--data-dir", help="HAM10000 folder (default: $SKINSIM_DATA, else data/ham10000)")


def run_check(args: argparse.Namespace) -> int:
    """Validate a HAM10000 folder and print what it holds; 2 when it is incomplete or unreadable."""
    root = resolve_data_dir(args.data_dir)
    try:
        table = load_dataset(root)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{dx} {n}" for dx, n in table["dx"].value_counts().sort_index().items())
    print(f"{root}: {len(table)} images of {table['lesion_id'].nunique()} lesions, all readable ({counts})")
    return 0


def check(argv: list[str]) -> int:
    """`python -m skinsim.data check ARGV`."""
    return main(["check", *argv])


def parser() -> argparse.ArgumentParser:
    """`python -m skinsim.data` and its subcommands; each subcommand's function is in `func`."""
    top = argparse.ArgumentParser(prog="python -m skinsim.data", description="Fetch and check the HAM10000 dataset.")
    commands = top.add_subparsers(title="commands", dest="command", metavar="{download,check}", required=True)
    sub = commands.add_parser("download", help=download.HELP, description=download.DESCRIPTION)
    download.add_arguments(sub)
    sub.set_defaults(func=download.run)
    sub = commands.add_parser("check", help=CHECK_HELP, description=CHECK_HELP[0].upper() + CHECK_HELP[1:] + ".")
    add_check_arguments(sub)
    sub.set_defaults(func=run_check)
    return top


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (argparse's: 0 after --help, 2 for a bad command line)."""
    try:
        args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help or a usage error: argparse has printed it
        return exc.code if isinstance(exc.code, int) else 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
