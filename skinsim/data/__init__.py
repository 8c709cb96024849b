"""Reading, checking and fetching the HAM10000 dataset."""
from skinsim.data.metadata import DIAGNOSES, DataError, load_dataset, resolve_data_dir

__all__ = ["DIAGNOSES", "DataError", "load_dataset", "resolve_data_dir"]
