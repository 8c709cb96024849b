"""`python -m skinsim.evaluate RUN`: score a run again and rewrite its metrics.json (skinsim.evaluate.report)."""
import sys

from skinsim.evaluate.report import main

if __name__ == "__main__":
    sys.exit(main())
