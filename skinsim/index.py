"""`python -m skinsim.index SOURCE --run RUN`: embed and index an image archive (code: skinsim.search.indexing)."""
import sys

from skinsim.search.indexing import main

if __name__ == "__main__":
    sys.exit(main())
