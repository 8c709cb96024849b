"""Reading, checking and fetching dermatoscopy datasets (HAM10000, ISIC 2019 and 2020, PAD-UFES-20, any CSV):
their layouts and metadata, the images, the train/val/test splits, and `python -m skinsim.data check|download`.

Floor 1: may import skinsim.runs.
"""
from skinsim.data.metadata import (
                                   DATASETS,
                                   DIAGNOSES,
                                   CsvSpec,
                                   DataError,
                                   Dataset,
                                   load_dataset,
                                   read_dataset,
                                   resolve_data_dir,
)

__all__ = ["DATASETS", "DIAGNOSES", "CsvSpec", "DataError", "Dataset", "load_dataset", "read_dataset",
           "resolve_data_dir"]
