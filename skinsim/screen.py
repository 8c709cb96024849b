"""`python -m skinsim.screen`: screen metric-learning losses on frozen features (code: skinsim.bench.screen)."""
import sys

from skinsim.bench.screen import main

if __name__ == "__main__":
    sys.exit(main())
