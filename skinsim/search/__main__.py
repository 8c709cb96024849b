"""`python -m skinsim.search`: search a run with any image (skinsim.search.search_index)."""
import sys

from skinsim.search.search_index import main

if __name__ == "__main__":
    sys.exit(main())
