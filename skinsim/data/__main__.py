"""`python -m skinsim.data download` fetches HAM10000; `python -m skinsim.data check` validates a folder."""
from __future__ import annotations

import argparse
import sys

from skinsim.data.download import main as download_main
from skinsim.data.metadata import DataError, load_dataset, resolve_data_dir


def check(argv: list[str]) -> int:
    """Validate a HAM10000 folder and print what it holds."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.data check")
    parser.add_argument("--data-dir", help="HAM10000 folder (default: $SKINSIM_DATA, else data/ham10000)")
    args = parser.parse_args(argv)
    root = resolve_data_dir(args.data_dir)
    try:
        table = load_dataset(root)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{dx} {n}" for dx, n in table["dx"].value_counts().sort_index().items())
    print(f"{root}: {len(table)} images of {table['lesion_id'].nunique()} lesions, all readable ({counts})")
    return 0


def main(argv: list[str]) -> int:
    """Dispatch to a subcommand."""
    commands = {"download": download_main, "check": check}
    if not argv or argv[0] not in commands:
        print("usage: python -m skinsim.data {download,check} [--help]", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
