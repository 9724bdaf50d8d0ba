"""PyTorch dataset over Isaac Lab recorder HDF5 demo files: one item per (episode, step).

Only attributes and metadata are read at construction (``num_samples``, ``success``, ``instruction``,
dataset shapes); arrays are read lazily per item, so memory stays bounded regardless of dataset
size. File handles are opened lazily per process (safe with ``DataLoader(num_workers>0)``, fork or
spawn) and kept in a small LRU.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from .hdf5_format import DemoFileError, _data_group, _decode_attr, _demo_sort_key, _env_args, _one_line, open_demo_file
from .statistics import DEFAULT_STATS_KEY, STATS_FILENAME, load_dataset_statistics

__all__ = ["DemoDataset", "normalize_actions", "unnormalize_actions"]


def normalize_actions(actions: np.ndarray, q01: np.ndarray, q99: np.ndarray, mask: np.ndarray | None = None):
    """OpenVLA bounds-q99 normalization: ``2 (a - q01) / (q99 - q01) - 1`` clipped to [-1, 1] (masked dims)."""
    out = np.clip(2.0 * (actions - q01) / (q99 - q01 + 1e-8) - 1.0, -1.0, 1.0)
    if mask is not None:
        out = np.where(mask, out, actions)
    return out.astype(np.float32)


def unnormalize_actions(actions: np.ndarray, q01: np.ndarray, q99: np.ndarray, mask: np.ndarray | None = None):
    """Inverse of :func:`normalize_actions` (on the un-clipped range): ``(a + 1) / 2 (q99 - q01) + q01``."""
    out = 0.5 * (actions + 1.0) * (q99 - q01 + 1e-8) + q01
    if mask is not None:
        out = np.where(mask, out, actions)
    return out.astype(np.float32)


class DemoDataset(Dataset):
    """Steps of demonstrations with action chunks for VLA training.

    Item ``i`` (a step ``t`` of episode ``d``) is a dict:

    - ``image``: uint8 tensor [H, W, C] from ``obs/<image_key>[t]``
    - ``instruction``: str (demo attr ``instruction``, else ``env_args['instruction']``, else the
      ``instruction`` argument)
    - ``proprio``: float32 tensor from ``obs/<proprio_key>[t]`` (absent if ``proprio_key=None``)
    - ``actions``: float32 tensor [K, A] = ``actions[t:t+K]``, padded past the episode end by repeating
      the last action; optionally normalized with the q01/q99 bounds of the statistics file
    - ``action_pad_mask``: bool tensor [K], True where the step is padding
    - ``demo_index``: int (index into :attr:`demos`), ``t``: int

    Args:
        paths: one HDF5 path or a list of them.
        image_key, proprio_key: observation terms to read.
        chunk_size: K, the number of future actions per item.
        normalize: apply OpenVLA q01/q99 normalization to actions (our actions are already in [-1, 1]).
        stats_path: ``dataset_statistics.json`` (or its directory); default: beside the first file.
        stats_key: entry of the statistics file.
        success_only: keep only episodes whose ``success`` attr is true.
        instruction: instruction for episodes that carry none (an error otherwise).
        max_open_files: LRU size for open HDF5 handles per process.
        action_dim: required action dimension (None: any).
    """

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        image_key: str = "front_rgb",
        proprio_key: str | None = "joint_pos",
        chunk_size: int = 8,
        normalize: bool = False,
        stats_path: str | os.PathLike | None = None,
        stats_key: str = DEFAULT_STATS_KEY,
        success_only: bool = False,
        instruction: str | None = None,
        max_open_files: int = 8,
        action_dim: int | None = 8,
    ):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise ValueError("DemoDataset: no files given")
        if chunk_size < 1:
            raise ValueError(f"DemoDataset: chunk_size must be >= 1, got {chunk_size}")
        if max_open_files < 1:
            raise ValueError(f"DemoDataset: max_open_files must be >= 1, got {max_open_files}")
        self.image_key = image_key
        self.proprio_key = proprio_key
        self.chunk_size = int(chunk_size)
        self.max_open_files = int(max_open_files)
        self.action_dim = action_dim

        demo_file: list[int] = []
        demo_name: list[str] = []
        demo_len: list[int] = []
        demo_instr: list[str] = []
        demo_success: list[bool] = []
        for fi, path in enumerate(self.paths):
            with open_demo_file(path) as f:
                try:
                    self._index_file(f, fi, path, success_only, instruction,
                                     demo_file, demo_name, demo_len, demo_instr, demo_success)
                except OSError as e:
                    raise DemoFileError(f"{path}: not an HDF5 file or corrupt ({_one_line(e)})") from None
        if not demo_name:
            which = "successful episodes" if success_only else "episodes"
            raise DemoFileError(f"{', '.join(self.paths)}: no {which} with at least one step")
        self._demo_file = np.asarray(demo_file, dtype=np.int32)
        self._demo_name = demo_name
        self._demo_len = np.asarray(demo_len, dtype=np.int64)
        self._demo_instr = demo_instr
        self._demo_success = np.asarray(demo_success, dtype=bool)
        self._ends = np.cumsum(self._demo_len)
        self._starts = self._ends - self._demo_len

        self.normalize = bool(normalize)
        self.q01 = self.q99 = self.mask = None
        if self.normalize:
            sp = stats_path if stats_path is not None else os.path.join(
                os.path.dirname(os.path.abspath(self.paths[0])), STATS_FILENAME)
            stats = load_dataset_statistics(sp, stats_key)["action"]
            self.q01 = np.asarray(stats["q01"], dtype=np.float32)
            self.q99 = np.asarray(stats["q99"], dtype=np.float32)
            self.mask = np.asarray(stats.get("mask", [True] * len(self.q01)), dtype=bool)

        self._handles: OrderedDict[int, h5py.File] = OrderedDict()
        self._pid = os.getpid()

    # -- index -------------------------------------------------------------------------------------
    def _index_file(self, f, fi, path, success_only, instruction, demo_file, demo_name, demo_len,
                    demo_instr, demo_success):
        data = _data_group(f, path)
        file_instr = _env_args(data, path).get("instruction")
        for name in sorted(data.keys(), key=_demo_sort_key):
            where = f"{path}: data/{name}"
            grp = data[name]
            if not isinstance(grp, h5py.Group):
                raise DemoFileError(f"{where}: expected a group, found a dataset")
            if "num_samples" not in grp.attrs:
                raise DemoFileError(f"{where}: missing attribute 'num_samples'")
            n = int(grp.attrs["num_samples"])
            success = bool(grp.attrs.get("success", False))
            if n <= 0 or (success_only and not success):
                continue
            keys = ["actions", f"obs/{self.image_key}"] + ([f"obs/{self.proprio_key}"] if self.proprio_key else [])
            for key in keys:
                ds = grp.get(key)
                if not isinstance(ds, h5py.Dataset):
                    raise DemoFileError(f"{where}: missing dataset '{key}'")
                if ds.ndim == 0 or ds.shape[0] < n:
                    raise DemoFileError(f"{where}: '{key}' has shape {ds.shape}, expected at least {n} rows")
            act_shape = grp["actions"].shape
            if len(act_shape) != 2 or (self.action_dim is not None and act_shape[1] != self.action_dim):
                raise DemoFileError(f"{where}: 'actions' has shape {act_shape}, expected [{n}, {self.action_dim}]")
            instr = grp.attrs.get("instruction")
            instr = _decode_attr(instr) if instr is not None else (file_instr or instruction)
            if not instr:
                raise DemoFileError(f"{where}: no instruction (demo attr 'instruction' or env_args['instruction']); "
                                    "pass instruction= to DemoDataset")
            demo_file.append(fi)
            demo_name.append(name)
            demo_len.append(n)
            demo_instr.append(str(instr))
            demo_success.append(success)

    # -- info --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._ends[-1])

    @property
    def num_demos(self) -> int:
        return len(self._demo_name)

    def demo_info(self, demo_index: int) -> dict[str, Any]:
        return {
            "path": self.paths[self._demo_file[demo_index]],
            "name": self._demo_name[demo_index],
            "length": int(self._demo_len[demo_index]),
            "success": bool(self._demo_success[demo_index]),
            "instruction": self._demo_instr[demo_index],
        }

    def locate(self, index: int) -> tuple[int, int]:
        """Map a flat item index to ``(demo_index, t)``."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"DemoDataset index {index} out of range for {n} items")
        d = int(np.searchsorted(self._ends, index, side="right"))
        return d, int(index - self._starts[d])

    # -- file handles ------------------------------------------------------------------------------
    def _file(self, fi: int) -> h5py.File:
        if self._pid != os.getpid():  # forked DataLoader worker: never reuse the parent's handles
            self._handles = OrderedDict()
            self._pid = os.getpid()
        f = self._handles.get(fi)
        if f is not None:
            self._handles.move_to_end(fi)
            return f
        f = open_demo_file(self.paths[fi])
        self._handles[fi] = f
        while len(self._handles) > self.max_open_files:
            _, old = self._handles.popitem(last=False)
            old.close()
        return f

    def close(self) -> None:
        """Close this process's open file handles (they are reopened on demand)."""
        if self._pid == os.getpid():
            for f in self._handles.values():
                try:
                    f.close()
                except Exception:
                    pass
        self._handles = OrderedDict()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()
        state["_pid"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    # -- items -------------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, Any]:
        d, t = self.locate(int(index))
        fi = int(self._demo_file[d])
        name = self._demo_name[d]
        T = int(self._demo_len[d])
        path = self.paths[fi]
        key = "actions"
        try:
            grp = self._file(fi)["data"][name]
            end = min(t + self.chunk_size, T)
            acts = np.asarray(grp["actions"][t:end], dtype=np.float32)
            key = f"obs/{self.image_key}"
            image = np.asarray(grp["obs"][self.image_key][t])
            proprio = None
            if self.proprio_key is not None:
                key = f"obs/{self.proprio_key}"
                proprio = np.asarray(grp["obs"][self.proprio_key][t], dtype=np.float32)
        except KeyError:
            raise DemoFileError(f"{path}: data/{name}: missing '{key}'") from None
        except OSError as e:
            raise DemoFileError(f"{path}: data/{name}: cannot read '{key}' ({_one_line(e)})") from None

        K = self.chunk_size
        n_valid = acts.shape[0]
        pad_mask = np.zeros(K, dtype=bool)
        if n_valid < K:
            acts = np.concatenate([acts, np.repeat(acts[-1:], K - n_valid, axis=0)], axis=0)
            pad_mask[n_valid:] = True
        if self.normalize:
            acts = normalize_actions(acts, self.q01, self.q99, self.mask)

        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "instruction": self._demo_instr[d],
            "actions": torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float32)),
            "action_pad_mask": torch.from_numpy(pad_mask),
            "demo_index": d,
            "t": t,
        }
        if proprio is not None:
            item["proprio"] = torch.from_numpy(proprio)
        return item
