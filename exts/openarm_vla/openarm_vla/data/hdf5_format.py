"""Demonstration files in the Isaac Lab recorder HDF5 layout.

Layout (identical to :class:`isaaclab.utils.datasets.HDF5DatasetFileHandler`, so Isaac Lab can read
our files and we can read its files)::

    /                         attrs: format_version=1 (xyzw quaternions, Isaac Lab 3.0)
    data/                     attrs: total (sum of num_samples), env_args (JSON string:
                              env_name, type=2, instruction, action_space, ...)
    data/demo_N/              attrs: num_samples, seed (if known), success, instruction, extras
        actions               float32 [T, 8]
        obs/<term>            [T, ...]; images uint8 [T, H, W, C] (one frame per chunk; gzip 4 by default,
                              lzf or none when writing speed matters: gzip runs at ~50 MB/s on one core),
                              other float arrays float32
        states/...            nested groups mirroring the nested dict of arrays (e.g.
                              states/articulation/robot/joint_position [T, n])
        initial_state/...     nested groups; Isaac Lab's recorder stores them with a leading dim of 1

Files are written under a hidden temporary name beside ``<path>`` (:func:`openarm_vla.utils.io.atomic_path`)
and renamed to ``<path>`` on a clean :meth:`DemoWriter.close`; an exception inside ``with DemoWriter(...)``
deletes the temporary file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..action_space import ACTION_SPACE
from ..errors import DemoFileError
from ..utils.io import atomic_path

__all__ = [
    "ACTION_SPACE",
    "DATASET_FORMAT_VERSION",
    "DEFAULT_ENV_NAME",
    "DemoFileError",
    "DemoWriter",
    "IMAGE_COMPRESSION_LEVEL",
    "IMAGE_COMPRESSIONS",
    "list_demos",
    "open_demo_file",
    "read_env_args",
    "read_episode",
    "check_demo",
    "data_group",
    "decode_attr",
    "demo_names",
    "env_args_of",
    "one_line",
    "validate_file",
]

DATASET_FORMAT_VERSION = 1
"""Isaac Lab's dataset format version (1 = xyzw quaternions). Without it Isaac Lab assumes wxyz and
"converts" ``root_pose`` quaternions on load."""

IMAGE_COMPRESSION_LEVEL = 4
IMAGE_COMPRESSIONS = ("gzip", "lzf", "none")
"""Image dataset filters: gzip (level 4, smallest, readable everywhere), lzf (h5py's, several times faster),
none (raw frames, stored contiguous: the fastest to write and to load, ~49 KB per 128 px frame)."""
DEFAULT_ENV_NAME = "OpenArm-BoxGrasp"



# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _is_image(arr: np.ndarray) -> bool:
    return arr.dtype == np.uint8 and arr.ndim == 4


def _prepare(arr: np.ndarray) -> np.ndarray:
    """Images stay uint8; floating arrays become float32; bool/integer arrays are kept lossless."""
    if _is_image(arr):
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        return np.ascontiguousarray(arr, dtype=np.float32)
    raise TypeError(f"unsupported dtype {arr.dtype}")


def demo_sort_key(name: str) -> tuple[int, int | str]:
    m = re.fullmatch(r"demo_(\d+)", name)
    return (0, int(m.group(1))) if m else (1, name)


def _demo_name(name: str | int) -> str:
    return f"demo_{name}" if isinstance(name, (int, np.integer)) else str(name)


def _attr_value(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float, np.generic)):
        return value
    if isinstance(value, Mapping):
        return json.dumps(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return json.dumps(list(value))
    return _to_numpy(value)


def decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.generic):
        value = value.item()
    return value


def open_demo_file(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """Open an HDF5 demo file; missing or corrupt files raise :class:`DemoFileError` (one line)."""
    path = os.fspath(path)
    if mode == "r" and not os.path.exists(path):
        raise DemoFileError(f"{path}: file not found")
    if mode == "r" and os.path.isdir(path):
        raise DemoFileError(f"{path}: is a directory, expected an HDF5 file")
    try:
        return h5py.File(path, mode)
    except OSError as e:
        raise DemoFileError(f"{path}: not an HDF5 file or corrupt ({one_line(e)})") from None


def data_group(f: h5py.File, path: str) -> h5py.Group:
    grp = f.get("data")
    if not isinstance(grp, h5py.Group):
        raise DemoFileError(f"{path}: missing group 'data' (expected the Isaac Lab recorder layout data/demo_N)")
    return grp


# --------------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------------


class DemoWriter:
    """Write demonstrations to ``path`` in the Isaac Lab recorder layout, atomically.

    Example::

        with DemoWriter("demos/box.hdf5", instruction="pick up the box") as w:
            w.write_episode(obs={"front_rgb": rgb, "joint_pos": q}, actions=a, success=True, seed=3)

    Args:
        path: final file name (the data goes to :attr:`tmp_path` until :meth:`close`).
        env_name: gym id stored in ``env_args`` (what Isaac Lab's ``get_env_name`` returns).
        instruction: default language instruction for episodes that do not pass their own.
        action_space: description stored in ``env_args['action_space']`` (default: :data:`ACTION_SPACE`).
        env_args: extra entries merged into ``env_args``.
        action_dim: required size of the last action dimension (None: any, but equal across episodes).
        image_compression: filter of the image datasets, one of :data:`IMAGE_COMPRESSIONS`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        env_name: str = DEFAULT_ENV_NAME,
        instruction: str | None = None,
        action_space: Mapping[str, Any] | None = None,
        env_args: Mapping[str, Any] | None = None,
        action_dim: int | None = 8,
        image_compression: str = "gzip",
    ):
        if image_compression not in IMAGE_COMPRESSIONS:
            raise ValueError(f"image_compression {image_compression!r}: expected one of {', '.join(IMAGE_COMPRESSIONS)}")
        self.path = Path(path)
        self._image_filter = {"gzip": {"compression": "gzip", "compression_opts": IMAGE_COMPRESSION_LEVEL},
                              "lzf": {"compression": "lzf"}, "none": {}}[image_compression]
        self.instruction = instruction
        self.action_dim = action_dim
        self.env_args: dict[str, Any] = {"env_name": env_name, "type": 2}
        if instruction is not None:
            self.env_args["instruction"] = instruction
        self.env_args["action_space"] = dict(action_space if action_space is not None else ACTION_SPACE)
        if env_args:
            self.env_args.update(env_args)
        self._commit = contextlib.ExitStack()
        self.tmp_path: Path = self._commit.enter_context(atomic_path(self.path))
        self._file: h5py.File | None = h5py.File(self.tmp_path, "w")
        self._file.attrs["format_version"] = DATASET_FORMAT_VERSION
        self._data = self._file.create_group("data")
        self._data.attrs["total"] = 0
        self._data.attrs["env_args"] = json.dumps(self.env_args)
        self._count = 0
        self._total = 0
        self._closed = False

    # -- context manager -----------------------------------------------------------------------
    def __enter__(self) -> DemoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def num_demos(self) -> int:
        return len(self._data) if self._file is not None else self._count

    @property
    def total(self) -> int:
        return self._total

    def write_episode(
        self,
        obs: Mapping[str, Any],
        actions: Any,
        states: Mapping[str, Any] | None = None,
        initial_state: Mapping[str, Any] | None = None,
        success: bool = False,
        seed: int | None = None,
        instruction: str | None = None,
        demo_id: int | None = None,
        **attrs: Any,
    ) -> str:
        """Append one episode as ``data/demo_N`` and return its name.

        ``obs`` (nested dict allowed) arrays must have T = len(actions) rows. ``states`` and
        ``initial_state`` are stored as given (nested groups). Extra keyword arguments become demo
        attributes (dicts are stored as JSON strings).
        """
        if self._file is None:
            raise RuntimeError(f"{self.path}: DemoWriter is closed")
        act = _to_numpy(actions)
        if act.ndim != 2 or act.shape[0] == 0:
            raise ValueError(f"{self.path}: actions must have shape [T, action_dim] with T > 0, got {act.shape}")
        if self.action_dim is not None and act.shape[1] != self.action_dim:
            raise ValueError(f"{self.path}: actions must have {self.action_dim} dims, got shape {act.shape}")
        if self.action_dim is None:
            self.action_dim = act.shape[1]
        act = np.ascontiguousarray(act, dtype=np.float32)
        T = act.shape[0]
        instr = instruction if instruction is not None else self.instruction
        if instr is None:
            raise ValueError(f"{self.path}: no instruction (pass instruction= to DemoWriter or write_episode)")

        prepared_obs = self._prepare_tree(obs, "obs", T)
        prepared_states = self._prepare_tree(states or {}, "states", None)
        prepared_init = self._prepare_tree(initial_state or {}, "initial_state", None)

        name = f"demo_{self._count if demo_id is None else int(demo_id)}"
        if name in self._data:
            raise ValueError(f"{self.path}: episode '{name}' already exists")
        grp = self._data.create_group(name)
        try:
            grp.attrs["num_samples"] = T
            if seed is not None:
                grp.attrs["seed"] = int(seed)
            grp.attrs["success"] = bool(success)
            grp.attrs["instruction"] = str(instr)
            for k, v in attrs.items():
                if v is not None:
                    grp.attrs[k] = _attr_value(v)
            grp.create_dataset("actions", data=act)
            self._write_tree(grp, "obs", prepared_obs)
            if states is not None:
                self._write_tree(grp, "states", prepared_states)
            if initial_state is not None:
                self._write_tree(grp, "initial_state", prepared_init)
        except BaseException:
            del self._data[name]
            raise
        self._total += T
        self._data.attrs["total"] = self._total
        if demo_id is None:
            self._count += 1
        return name

    def _prepare_tree(self, tree: Mapping[str, Any], prefix: str, T: int | None) -> dict[str, Any]:
        if not isinstance(tree, Mapping):
            raise TypeError(f"{self.path}: '{prefix}' must be a dict of arrays, got {type(tree).__name__}")
        out: dict[str, Any] = {}
        for key, value in tree.items():
            key_path = f"{prefix}/{key}"
            if isinstance(value, Mapping):
                out[key] = self._prepare_tree(value, key_path, T)
                continue
            arr = _to_numpy(value)
            try:
                arr = _prepare(arr)
            except TypeError as e:
                raise TypeError(f"{self.path}: '{key_path}': {e}") from None
            if T is not None and (arr.ndim == 0 or arr.shape[0] != T):
                raise ValueError(
                    f"{self.path}: '{key_path}' has shape {arr.shape}, expected {T} rows (one per action)"
                )
            out[key] = arr
        return out

    def _write_tree(self, parent: h5py.Group, key: str, tree: dict[str, Any]) -> None:
        grp = parent.create_group(key)
        for k, v in tree.items():
            if isinstance(v, dict):
                self._write_tree(grp, k, v)
            elif _is_image(v) and self._image_filter:  # compressed a frame at a time: a frame reads alone
                grp.create_dataset(k, data=v, chunks=(1,) + v.shape[1:], **self._image_filter)
            else:
                grp.create_dataset(k, data=v)

    def close(self) -> Path:
        """Finalize attrs, flush, and rename the temporary file to ``path``. Idempotent."""
        if self._file is None:
            return self.path
        try:
            self._data.attrs["total"] = self._total
            self._data.attrs["env_args"] = json.dumps(self.env_args)
            self._file.flush()
            self._file.close()
            self._file = None
        except BaseException:
            self.abort()
            raise
        self._commit.close()  # fsync + rename into place
        return self.path

    def abort(self) -> None:
        """Close without publishing: the temporary file is deleted, ``path`` is untouched."""
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        with contextlib.suppress(_Aborted):
            self._commit.__exit__(_Aborted, _Aborted(), None)


class _Aborted(Exception):
    """Tells the pending atomic write to discard its temporary file."""


# --------------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------------


def list_demos(path: str | os.PathLike) -> list[str]:
    """Names of the episodes in ``path`` (``demo_0, demo_1, ..., demo_10`` in numeric order)."""
    path = os.fspath(path)
    with open_demo_file(path) as f:
        return demo_names(data_group(f, path))


def read_env_args(path: str | os.PathLike) -> dict[str, Any]:
    """The ``data.attrs['env_args']`` JSON of ``path`` as a dict ({} if absent)."""
    path = os.fspath(path)
    with open_demo_file(path) as f:
        return env_args_of(data_group(f, path), path)


def env_args_of(data: h5py.Group, path: str) -> dict[str, Any]:
    raw = data.attrs.get("env_args")
    if raw is None:
        return {}
    try:
        out = json.loads(decode_attr(raw))
    except (TypeError, ValueError):
        raise DemoFileError(f"{path}: data.attrs['env_args'] is not valid JSON") from None
    if not isinstance(out, dict):
        raise DemoFileError(f"{path}: data.attrs['env_args'] is not a JSON object")
    return out


def _read_tree(grp: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in grp.items():
        out[k] = _read_tree(v) if isinstance(v, h5py.Group) else v[()]
    return out


def read_episode(path: str | os.PathLike, name: str | int) -> dict[str, Any]:
    """Load one episode fully into numpy.

    Returns ``{"name", "attrs", "actions", "obs", "states", "initial_state", ...}`` where the array
    entries mirror the HDF5 groups (nested dicts of ``np.ndarray``) and ``attrs`` holds the demo attrs
    (``num_samples``, ``success``, ``seed``, ``instruction``, extras).
    """
    path = os.fspath(path)
    name = _demo_name(name)
    with open_demo_file(path) as f:
        data = data_group(f, path)
        grp = data.get(name)
        if not isinstance(grp, h5py.Group):
            raise DemoFileError(f"{path}: missing episode 'data/{name}'")
        try:
            episode: dict[str, Any] = _read_tree(grp)
        except OSError as e:
            raise DemoFileError(f"{path}: data/{name}: corrupt data ({one_line(e)})") from None
        episode["attrs"] = {k: decode_attr(v) for k, v in grp.attrs.items()}
        episode["name"] = name
        for key in ("obs", "states", "initial_state"):
            episode.setdefault(key, {})
        if "actions" not in episode:
            raise DemoFileError(f"{path}: data/{name}: missing dataset 'actions'")
        return episode


def validate_file(
    path: str | os.PathLike,
    required_obs: tuple[str, ...] | list[str] = ("front_rgb", "joint_pos"),
    action_dim: int | None = 8,
    allow_empty: bool = False,
) -> dict[str, Any]:
    """Check a demo file's layout using metadata only (no array data is read).

    Raises :class:`DemoFileError` with one line naming the file and the missing/bad key. Returns a
    summary ``{"path", "num_demos", "total", "env_args"}``.
    """
    path = os.fspath(path)
    with open_demo_file(path) as f:
        try:
            return _validate(f, path, tuple(required_obs), action_dim, allow_empty)
        except OSError as e:  # truncated files can fail while walking metadata
            raise DemoFileError(f"{path}: not an HDF5 file or corrupt ({one_line(e)})") from None


def demo_names(data: h5py.Group) -> list[str]:
    """Episode names of a ``data`` group in numeric order (demo_2 before demo_10)."""
    return sorted(data.keys(), key=demo_sort_key)


def check_demo(data: h5py.Group, name: str, path: str, required_obs: tuple[str, ...] = (), action_dim: int | None = 8) -> int:
    """Validate one episode's layout from metadata (no array data is read); returns its ``num_samples``.

    One line naming the file, the episode and the bad key is raised as :class:`DemoFileError`.
    """
    where = f"{path}: data/{name}"
    grp = data[name]
    if not isinstance(grp, h5py.Group):
        raise DemoFileError(f"{where}: expected a group, found a dataset")
    if "num_samples" not in grp.attrs:
        raise DemoFileError(f"{where}: missing attribute 'num_samples'")
    n = int(grp.attrs["num_samples"])
    act = grp.get("actions")
    if not isinstance(act, h5py.Dataset):
        raise DemoFileError(f"{where}: missing dataset 'actions'")
    if act.ndim != 2 or act.shape[0] != n:
        raise DemoFileError(f"{where}: 'actions' has shape {act.shape}, expected [{n}, action_dim]")
    if action_dim is not None and act.shape[1] != action_dim:
        raise DemoFileError(f"{where}: 'actions' has shape {act.shape}, expected [{n}, {action_dim}]")
    for key in required_obs:
        ds = grp.get(f"obs/{key}")
        if not isinstance(ds, h5py.Dataset):
            raise DemoFileError(f"{where}: missing dataset 'obs/{key}'")
        if ds.ndim == 0 or ds.shape[0] != n:
            raise DemoFileError(f"{where}: 'obs/{key}' has shape {ds.shape}, expected {n} rows")
    return n


def _validate(f: h5py.File, path: str, required_obs: tuple[str, ...], action_dim: int | None, allow_empty: bool):
    data = data_group(f, path)
    if "env_args" not in data.attrs:
        raise DemoFileError(f"{path}: missing attribute data.attrs['env_args']")
    env_args = env_args_of(data, path)
    names = demo_names(data)
    if not names and not allow_empty:
        raise DemoFileError(f"{path}: contains no episodes (data/ is empty)")
    total = sum(check_demo(data, name, path, required_obs, action_dim) for name in names)
    if "total" in data.attrs and int(data.attrs["total"]) != total:
        raise DemoFileError(
            f"{path}: data.attrs['total'] = {int(data.attrs['total'])} but the episodes' num_samples sum to {total}"
        )
    return {"path": path, "num_demos": len(names), "total": total, "env_args": env_args}
