"""PyTorch dataset over Isaac Lab recorder HDF5 demo files: one item per (episode, step).

Only attributes and metadata are read at construction (``num_samples``, ``success``, ``instruction``,
dataset shapes). SFT reads every step at once (:meth:`DemoDataset.load_arrays`, into
:class:`~openarm_vla.data.demo_tensors.DemoTensors` on the GPU). The per-item path is kept on purpose, for a
dataset that does not fit in memory (the 7B's 224 px frames of thousands of demos): arrays are read lazily per
item, so memory stays bounded regardless of dataset size, and file handles are opened lazily per process (safe
with ``DataLoader(num_workers>0)``, fork or spawn) and kept in a small LRU. Both cut chunks the same way
(:func:`~openarm_vla.data.demo_tensors.chunk_rows`).
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

from ..action_space import DEFAULT_STATS_KEY, STATS_FILENAME, normalize
from .hdf5_format import DemoFileError, check_demo, data_group, decode_attr, demo_names, env_args_of, one_line, open_demo_file
from .demo_tensors import chunk_rows
from .statistics import load_dataset_statistics

__all__ = ["DemoDataset"]


class DemoDataset(Dataset):
    """Steps of demonstrations with action chunks for VLA training.

    Item ``i`` (a step ``t`` of episode ``d``) is a dict:

    - ``image``: uint8 tensor [H, W, C] from ``obs/<image_key>[t]``
    - ``instruction``: str (demo attr ``instruction``, else ``env_args['instruction']``, else the
      ``instruction`` argument)
    - ``proprio``: float32 tensor from ``obs/<proprio_key>[t]`` (absent if ``proprio_key=None``)
    - ``actions``: float32 tensor [K, A] = ``actions[t:t+K]``, padded past the episode end by repeating
      the last action; optionally normalized with the q01/q99 bounds of the statistics file
      (:func:`openarm_vla.action_space.normalize`)
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

        demos: list[tuple[int, str, int, str, bool]] = []  # (file index, name, length, instruction, success)
        for fi, path in enumerate(self.paths):
            with open_demo_file(path) as f:
                try:
                    demos += [(fi, *d) for d in self._index_file(f, path, success_only, instruction)]
                except OSError as e:
                    raise DemoFileError(f"{path}: not an HDF5 file or corrupt ({one_line(e)})") from None
        if not demos:
            which = "successful episodes" if success_only else "episodes"
            raise DemoFileError(f"{', '.join(self.paths)}: no {which} with at least one step")
        self._demo_file = np.asarray([d[0] for d in demos], dtype=np.int32)
        self._demo_name = [d[1] for d in demos]
        self._demo_len = np.asarray([d[2] for d in demos], dtype=np.int64)
        self._demo_instr = [d[3] for d in demos]
        self._demo_success = np.asarray([d[4] for d in demos], dtype=bool)
        self._ends = np.cumsum(self._demo_len)
        self._starts = self._ends - self._demo_len

        self.normalize = bool(normalize)
        self.stats: dict | None = None
        """The statistics entry used for normalization ({"action": {q01, q99, mask, ...}, "proprio": ...})."""
        if self.normalize:
            sp = stats_path if stats_path is not None else os.path.join(
                os.path.dirname(os.path.abspath(self.paths[0])), STATS_FILENAME)
            self.stats = load_dataset_statistics(sp, stats_key)

        self._handles: OrderedDict[int, h5py.File] = OrderedDict()
        self._pid = os.getpid()

    # -- index -------------------------------------------------------------------------------------
    def _index_file(self, f, path, success_only, instruction) -> list[tuple[str, int, str, bool]]:
        """(name, length, instruction, success) of the episodes of one file that the dataset serves."""
        data = data_group(f, path)
        file_instr = env_args_of(data, path).get("instruction")
        required = (self.image_key,) + ((self.proprio_key,) if self.proprio_key else ())
        out = []
        for name in demo_names(data):
            grp = data[name]
            if isinstance(grp, h5py.Group) and (not success_only or bool(grp.attrs.get("success", False))):
                n = check_demo(data, name, path, required, self.action_dim)
                if n <= 0:
                    continue
                instr = grp.attrs.get("instruction")
                instr = decode_attr(instr) if instr is not None else (file_instr or instruction)
                if not instr:
                    raise DemoFileError(f"{path}: data/{name}: no instruction (demo attr 'instruction' or "
                                        "env_args['instruction']); pass instruction= to DemoDataset")
                out.append((name, n, str(instr), bool(grp.attrs.get("success", False))))
            elif not isinstance(grp, h5py.Group):
                check_demo(data, name, path)  # raises: a dataset where an episode group should be
        return out

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

    # -- the whole dataset in memory ----------------------------------------------------------------
    def load_arrays(self) -> dict[str, Any]:
        """Every step of every demo at once (for training from memory, e.g. on the GPU):

        ``image`` uint8 [M, H, W, C], ``proprio`` float32 [M, P] (absent without ``proprio_key``), ``actions``
        float32 [M, A] (normalized if enabled), ``episode_end`` int64 [M] (index of the last step of the row's
        episode: chunks are rows t..t+K-1 clamped to it), ``instruction`` [M] index into ``instructions``.
        """
        # Frames are read straight into one preallocated array: per-demo arrays joined afterwards cost a second
        # copy of every frame, and slicing a per-frame-chunked dataset is several times slower than read_direct
        # (benchmarks/perf/demo_load.py).
        instructions = sorted(set(self._demo_instr))
        total = len(self)
        images = acts = props = None
        for d in range(self.num_demos):
            fi, name, n = int(self._demo_file[d]), self._demo_name[d], int(self._demo_len[d])
            rows = np.s_[int(self._starts[d]):int(self._ends[d])]
            path = self.paths[fi]
            try:
                grp = self._file(fi)["data"][name]
                img = grp["obs"][self.image_key]
                prop = grp["obs"][self.proprio_key] if self.proprio_key is not None else None
                if d == 0:  # shapes from the first demo (construction checked every demo has the keys)
                    images = np.empty((total, *img.shape[1:]), dtype=img.dtype)
                    acts = np.empty((total, *grp["actions"].shape[1:]), dtype=np.float32)
                    props = np.empty((total, *prop.shape[1:]), dtype=np.float32) if prop is not None else None
                img.read_direct(images, np.s_[:n], rows)
                acts[rows] = grp["actions"][:n]
                if prop is not None:
                    props[rows] = prop[:n]
            except (KeyError, OSError, TypeError, ValueError) as e:
                raise DemoFileError(f"{path}: data/{name}: cannot read ({one_line(e)})") from None
        demo_of_row = np.repeat(np.arange(self.num_demos), self._demo_len)
        instr_index = np.asarray([instructions.index(i) for i in self._demo_instr], dtype=np.int64)
        actions = torch.from_numpy(acts)
        if self.normalize:
            actions = normalize(actions, self.stats["action"])
        out = {"image": images, "actions": actions.numpy(), "episode_end": (self._ends - 1)[demo_of_row],
               "instruction": instr_index[demo_of_row], "instructions": instructions}
        if props is not None:
            out["proprio"] = props
        return out

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
            rows = chunk_rows(torch.tensor([t]), torch.tensor([T - 1]), self.chunk_size)[0].numpy()
            acts = np.asarray(grp["actions"][t:int(rows[-1]) + 1], dtype=np.float32)[rows - t]
            key = f"obs/{self.image_key}"
            image = np.asarray(grp["obs"][self.image_key][t])
            proprio = None
            if self.proprio_key is not None:
                key = f"obs/{self.proprio_key}"
                proprio = np.asarray(grp["obs"][self.proprio_key][t], dtype=np.float32)
        except KeyError:
            raise DemoFileError(f"{path}: data/{name}: missing '{key}'") from None
        except OSError as e:
            raise DemoFileError(f"{path}: data/{name}: cannot read '{key}' ({one_line(e)})") from None

        pad_mask = np.arange(t, t + self.chunk_size) > T - 1
        acts = torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float32))
        if self.normalize:
            acts = normalize(acts, self.stats["action"])

        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "instruction": self._demo_instr[d],
            "actions": acts,
            "action_pad_mask": torch.from_numpy(pad_mask),
            "demo_index": d,
            "t": t,
        }
        if proprio is not None:
            item["proprio"] = torch.from_numpy(proprio)
        return item
