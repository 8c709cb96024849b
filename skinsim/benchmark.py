"""`python -m skinsim.benchmark`: the retrieval benchmark (code: skinsim.bench.retrieval)."""
import sys

from skinsim.bench.retrieval import main

if __name__ == "__main__":
    sys.exit(main())
