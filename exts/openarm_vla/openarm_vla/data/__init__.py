"""Demonstration data: Isaac Lab recorder HDF5 files, dataset statistics, the training dataset, recording
and replay."""

from .dataset import DemoDataset
from .hdf5_format import DemoFileError, DemoWriter, list_demos, read_env_args, read_episode, validate_file
from .statistics import (
    compute_action_stats,
    compute_dataset_statistics,
    load_dataset_statistics,
    write_dataset_statistics,
)
