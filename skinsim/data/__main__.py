"""`python -m skinsim.data download` fetches HAM10000; `python -m skinsim.data check` validates a folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skinsim.data import download
from skinsim.data.metadata import DATASETS, CsvSpec, DataError, read_dataset
from skinsim.data.splits import split_problems
from skinsim.data.table import some

CHECK_HELP = ("check that a HAM10000 folder (or ISIC 2019, ISIC 2020, PAD-UFES-20, a described CSV) is complete "
              "and readable, and say what it holds")


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The check flags, on `parser`."""
    parser.add_argument("--data-dir", help="dataset folder (default: $SKINSIM_DATA, else data/ham10000; "
                                           "with --csv: the CSV's folder)")
    parser.add_argument("--dataset", default="auto", choices=DATASETS,
                        help="the folder's layout (default: auto, detected from its files)")
    parser.add_argument("--csv", help="generic dataset: the CSV listing images, labels, groups (see data/README.md)")
    parser.add_argument("--image-col", default="image", help="generic CSV: image path or id column (default: image)")
    parser.add_argument("--label-col", default="label", help="generic CSV: label column (default: label)")
    parser.add_argument("--group-col", help="generic CSV: lesion or patient column (default: none, each image alone)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out rows whose image is missing or unreadable (counted) instead of failing")


def csv_spec(args: argparse.Namespace) -> CsvSpec | None:
    """The generic-CSV description given on the command line, or None."""
    if not args.csv:
        return None
    return CsvSpec(Path(args.csv).expanduser(), args.image_col, args.label_col, args.group_col)


def run_check(args: argparse.Namespace) -> int:
    """Validate a dataset folder and print what it holds; 2 when it is incomplete, unreadable or unsplittable."""
    try:
        data = read_dataset(args.data_dir, args.dataset, csv_spec(args), skip_missing=args.skip_missing)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = data.table
    problems = split_problems(table)
    if problems:
        print(f"error: {data.root}: " + "; ".join(problems), file=sys.stderr)
        return 2
    if data.dropped:
        print(f"skipped {len(data.dropped)} image(s) missing or unreadable: {some(data.dropped)}")
    counts = ", ".join(f"{dx} {n}" for dx, n in table["dx"].value_counts().sort_index().items())
    print(f"{data.root} ({data.layout}): {len(table)} images of {table['lesion_id'].nunique()} {data.groups}, "
          f"all readable ({counts})")
    return 0


def check(argv: list[str]) -> int:
    """`python -m skinsim.data check ARGV`."""
    return main(["check", *argv])


def parser() -> argparse.ArgumentParser:
    """`python -m skinsim.data` and its subcommands; each subcommand's function is in `func`."""
    top = argparse.ArgumentParser(prog="python -m skinsim.data",
                                  description="Fetch HAM10000; check any supported dataset folder.")
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
