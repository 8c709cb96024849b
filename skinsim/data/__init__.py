"""Reading, checking and fetching dermatoscopy datasets (HAM10000, ISIC 2019 and 2020, PAD-UFES-20, any CSV)."""
from skinsim.data.metadata import (DATASETS, DIAGNOSES, CsvSpec, DataError, Dataset, load_dataset, read_dataset,
                                   resolve_data_dir)

__all__ = ["DATASETS", "DIAGNOSES", "CsvSpec", "DataError", "Dataset", "load_dataset", "read_dataset",
           "resolve_data_dir"]
