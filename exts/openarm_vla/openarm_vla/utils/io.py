"""Atomic file writes: write to a temporary name beside the target, then ``os.replace``.

Nothing half-written is ever visible under the final name: a crash or an exception leaves either the
previous file (if any) or nothing, plus at most a stale hidden ``.<stem>.tmp<pid><suffix>`` beside it (the
suffix is kept so that writers which pick a format by extension, such as ffmpeg, still work).
This is the project's one atomic writer: files, JSON, checkpoint directories, demo files and videos.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openarm_vla.errors import DiskFullError

__all__ = ["DiskFullError", "atomic_path", "atomic_write_json", "atomic_write_text", "ensure_free_space", "fsync_path",
           "remove_path", "remove_stale_temps", "temp_path"]

_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)(?P<pid>\d+)(?:\.[^.]*)?")


def _free_bytes(path: Path) -> int:
    for p in (path, *path.parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return 0


def ensure_free_space(path: str | os.PathLike, nbytes: int, what: str = "it") -> None:
    """Fail before a large write (a 7B checkpoint is ~28 GB in fp32) rather than after most of it."""
    free = _free_bytes(Path(path))
    if nbytes > free:
        raise DiskFullError(errno.ENOSPC, f"not enough disk space to write {what} to {path}: needs ~{nbytes / 1e9:.1f} GB, "
                                          f"{free / 1e9:.1f} GB free (remove old runs or demos, or pass another --output)")


def fsync_path(path: str | os.PathLike) -> None:
    """Best-effort fsync of a file (its content) or a directory (its entries)."""
    try:
        flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else 0)
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_path(path: str | os.PathLike) -> None:
    """Remove a file or a directory tree if it exists (no error if it does not)."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def temp_path(path: str | os.PathLike) -> Path:
    """The hidden temporary name :func:`atomic_path` writes ``path`` under."""
    final = Path(path)
    return final.with_name(f".{final.stem}.tmp{os.getpid()}{final.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Delete what killed writers left in ``directory``: :func:`atomic_path`'s hidden temporary and set-aside
    names (``.NAME.tmpPID``, ``.NAME.oldPID``) of processes no longer alive (a 7B checkpoint cut short is tens of
    GB). Returns what was removed; a live writer's (this process's included) is left alone."""
    d = Path(directory)
    removed = []
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        m = _LEFTOVER.fullmatch(p.name)
        if m and int(m.group("pid")) != os.getpid() and not _alive(int(m.group("pid"))):
            remove_path(p)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it.

    The body may create a file *or a directory* (e.g. a checkpoint folder) at the yielded path. An
    existing directory at ``path`` is replaced as a whole (moved aside, then deleted after the rename).

    Example::

        with atomic_path("ckpt/model.pt") as tmp:
            torch.save(state, tmp)
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    remove_path(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_path: nothing was written to the temporary path {tmp} for {final}")
        if tmp.is_dir():
            for root, _dirs, files in os.walk(tmp):
                for name in files:
                    fsync_path(os.path.join(root, name))
            old = None
            if final.is_dir() and not final.is_symlink():
                old = final.with_name(f".{final.name}.old{os.getpid()}")
                remove_path(old)
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                remove_path(old)
        else:
            fsync_path(tmp)
            os.replace(tmp, final)
        fsync_path(final.parent)
    except BaseException as e:
        remove_path(tmp)
        if isinstance(e, DiskFullError) or not _is_disk_full(e):
            raise
        raise DiskFullError(errno.ENOSPC, f"no space left on the device writing {final} "
                                          f"({_free_bytes(final) / 1e9:.1f} GB free after removing the partial write)") from e


def _is_disk_full(e: BaseException) -> bool:
    # some writers wrap the OSError in their own exception (safetensors' SafetensorError), keeping only its text
    return getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically. Returns the final path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Serialize ``obj`` to JSON (numpy scalars/arrays allowed) and write it atomically."""
    text = json.dumps(obj, indent=indent, default=_json_default)
    return atomic_write_text(path, text + "\n")


def _json_default(o: Any) -> Any:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):  # torch tensors
        return o.tolist()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
