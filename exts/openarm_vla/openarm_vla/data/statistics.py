"""Dataset statistics (OpenVLA ``dataset_statistics.json`` layout).

File layout, written beside the HDF5 file::

    {"openarm_box_grasp": {
        "action":  {"mean": [...], "std": [...], "max": [...], "min": [...], "q01": [...], "q99": [...],
                    "mask": [true, ...]},
        "proprio": {"mean": ..., "std": ..., "max": ..., "min": ..., "q01": ..., "q99": ...},
        "num_transitions": N, "num_trajectories": M}}

``std`` is the population std (ddof=0, like ``np.std``); ``q01``/``q99`` are ``np.quantile`` with its
default linear interpolation, computed exactly over all transitions. ``mask`` (OpenVLA convention)
marks the action dims that (un)normalization applies to.
Only ``actions`` and ``obs/<proprio_key>`` are read (a few floats per step), one episode at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..action_space import DEFAULT_STATS_KEY, STATS_FILENAME
from ..errors import StatisticsKeyError
from ..utils.io import atomic_write_json
from .hdf5_format import DemoFileError, data_group, demo_names, one_line, open_demo_file

__all__ = [
    "DEFAULT_STATS_KEY",
    "StatisticsKeyError",
    "STATS_FILENAME",
    "compute_action_stats",
    "compute_dataset_statistics",
    "load_dataset_statistics",
    "write_dataset_statistics",
]





def compute_action_stats(arrays: Iterable[Any]) -> dict[str, Any]:
    """Per-dimension statistics over trajectories.

    Args:
        arrays: iterable of ``[T_i, D]`` arrays (one per trajectory; numpy or torch).

    Returns:
        ``{"mean", "std", "min", "max", "q01", "q99"}`` as float lists of length D, plus
        ``num_transitions`` (sum of T_i) and ``num_trajectories``.
    """
    chunks = []
    for a in arrays:
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"compute_action_stats: expected [T, D] arrays, got shape {a.shape}")
        if chunks and a.shape[1] != chunks[0].shape[1]:
            raise ValueError(f"compute_action_stats: dim mismatch {a.shape[1]} vs {chunks[0].shape[1]}")
        chunks.append(a)
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise ValueError("compute_action_stats: no transitions")
    x = np.concatenate(chunks, axis=0)
    return {
        "mean": x.mean(axis=0).tolist(),
        "std": x.std(axis=0).tolist(),
        "max": x.max(axis=0).tolist(),
        "min": x.min(axis=0).tolist(),
        "q01": np.quantile(x, 0.01, axis=0).tolist(),
        "q99": np.quantile(x, 0.99, axis=0).tolist(),
        "num_transitions": int(x.shape[0]),
        "num_trajectories": len(chunks),
    }


def _iter_arrays(paths: Sequence[str], key: str, success_only: bool):
    for path in paths:
        with open_demo_file(path) as f:
            data = data_group(f, path)
            for name in demo_names(data):
                grp = data[name]
                if success_only and not bool(grp.attrs.get("success", False)):
                    continue
                ds = grp.get(key)
                if not isinstance(ds, h5py.Dataset):
                    raise DemoFileError(f"{path}: data/{name}: missing dataset '{key}'")
                try:
                    yield ds[()]
                except OSError as e:
                    raise DemoFileError(f"{path}: data/{name}: corrupt dataset '{key}' ({one_line(e)})") from None


def compute_dataset_statistics(
    hdf5_paths: str | os.PathLike | Sequence[str | os.PathLike],
    proprio_key: str | None = "joint_pos",
    success_only: bool = False,
) -> dict[str, Any]:
    """Statistics of ``actions`` (and ``obs/<proprio_key>``) over all episodes of one or more files.

    Returns the inner OpenVLA entry ``{"action", "proprio", "num_transitions", "num_trajectories"}``.
    With ``proprio_key=None`` the proprio entry holds empty lists.
    """
    if isinstance(hdf5_paths, (str, os.PathLike)):
        hdf5_paths = [hdf5_paths]
    paths = [os.fspath(p) for p in hdf5_paths]
    try:
        action = compute_action_stats(_iter_arrays(paths, "actions", success_only))
    except ValueError as e:
        if "no transitions" in str(e):
            which = "successful episodes" if success_only else "episodes"
            raise DemoFileError(f"{', '.join(paths)}: no {which} to compute statistics from") from None
        raise
    n, m = action.pop("num_transitions"), action.pop("num_trajectories")
    action["mask"] = [True] * len(action["mean"])
    if proprio_key is not None:
        proprio = compute_action_stats(_iter_arrays(paths, f"obs/{proprio_key}", success_only))
        proprio.pop("num_transitions")
        proprio.pop("num_trajectories")
    else:
        proprio = {k: [] for k in ("mean", "std", "max", "min", "q01", "q99")}
    return {"action": action, "proprio": proprio, "num_transitions": n, "num_trajectories": m}


def write_dataset_statistics(
    hdf5_path: str | os.PathLike,
    key: str = DEFAULT_STATS_KEY,
    proprio_key: str | None = "joint_pos",
    out_path: str | os.PathLike | None = None,
    success_only: bool = False,
) -> Path:
    """Compute statistics of ``hdf5_path`` and write ``{key: stats}`` atomically.

    The default output is ``dataset_statistics.json`` in the HDF5 file's directory. Returns its path.
    """
    stats = compute_dataset_statistics(hdf5_path, proprio_key=proprio_key, success_only=success_only)
    out = Path(out_path) if out_path is not None else Path(hdf5_path).resolve().parent / STATS_FILENAME
    return atomic_write_json(out, {key: stats})


def load_dataset_statistics(path: str | os.PathLike, key: str | None = DEFAULT_STATS_KEY) -> dict[str, Any]:
    """Load one entry of a ``dataset_statistics.json``.

    ``path`` may be the JSON file or a directory containing it. With ``key=None`` the file must hold
    exactly one entry. Missing file/key or malformed content raise :class:`FileNotFoundError` /
    :class:`StatisticsKeyError` (a KeyError) / :class:`ValueError` with a one-line message.
    """
    p = Path(path)
    if p.is_dir():
        p = p / STATS_FILENAME
    if not p.is_file():
        raise FileNotFoundError(f"{p}: dataset statistics file not found (run write_dataset_statistics first)")
    try:
        with open(p, encoding="utf-8") as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({one_line(e)})") from None
    if not isinstance(content, dict) or not content:
        raise ValueError(f"{p}: expected a JSON object {{dataset_key: statistics}}")
    if key is None:
        if len(content) != 1:
            raise StatisticsKeyError(f"{p}: holds several datasets {sorted(content)}; pass key=")
        key = next(iter(content))
    if key not in content:
        available = ", ".join(sorted(content))
        raise StatisticsKeyError(f"{p}: no statistics for dataset key '{key}' (available: {available})")
    entry = content[key]
    if not isinstance(entry, dict) or "action" not in entry:
        raise ValueError(f"{p}: entry '{key}' has no 'action' statistics")
    for q in ("q01", "q99"):
        if q not in entry["action"]:
            raise ValueError(f"{p}: entry '{key}' lacks action '{q}'")
    return entry
