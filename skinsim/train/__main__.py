"""`python -m skinsim.train`: train an embedder and write a run folder (skinsim.train.train)."""
import sys

from skinsim.train.train import main

if __name__ == "__main__":
    sys.exit(main())
