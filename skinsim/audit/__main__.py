"""`python -m skinsim.audit RUN`: audit a run folder; `--bench N` times the audit on N synthetic vectors."""
from __future__ import annotations

import argparse
import sys

from skinsim.audit.core import AuditError, bench, run_audit


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for input the audit cannot use)."""
    parser = argparse.ArgumentParser(prog="python -m skinsim.audit", description=__doc__)
    parser.add_argument("run", nargs="?", help="run folder, or a run name under data/runs, or 'latest'")
    parser.add_argument("--k", type=int, default=10, help="neighbours that vote for labels and score outliers")
    parser.add_argument("--dup-k", type=int, default=10, help="nearest neighbours checked as duplicate candidates")
    parser.add_argument("--dup-threshold", type=float, default=None,
                        help="cosine distance for 'almost the same embedding' (default: from the run's own spread)")
    parser.add_argument("--phash-threshold", type=int, default=4, help="pHash Hamming distance for 'same image'")
    parser.add_argument("--data-dir", default=None, help="image folder (default: SKINSIM_DATA, then the run's)")
    parser.add_argument("--no-images", action="store_true", help="skip image hashing")
    parser.add_argument("--bench", type=int, metavar="N", default=None,
                        help="time the audit on N synthetic 128-d vectors instead of auditing a run")
    args = parser.parse_args(argv)
    if args.bench is not None:
        if args.bench < 2:
            parser.error("--bench needs N >= 2")
        bench(args.bench, k=args.k)
        return 0
    if args.run is None:
        parser.error("give a run folder (or --bench N)")
    try:
        run_audit(args.run, k=args.k, dup_k=args.dup_k, dup_threshold=args.dup_threshold,
                  phash_threshold=args.phash_threshold, images=not args.no_images, data_dir=args.data_dir)
    except AuditError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
