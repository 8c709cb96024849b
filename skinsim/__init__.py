"""skinsim: lesion-similarity embeddings for HAM10000 dermatoscopic images."""

__version__ = "0.1.0"
