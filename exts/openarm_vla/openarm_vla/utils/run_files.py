"""The files of a training run's directory: the resolved config as YAML, metrics as JSON lines, and which
checkpoints are complete (no torch here: the pipeline reads runs without importing it)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .io import atomic_path
from .manifest import MANIFEST_FILE

STATE_FILE = "trainer_state.pt"
"""The trainer's state inside a checkpoint directory: its presence marks the checkpoint complete."""
_ITER_DIR = re.compile(r"iter_(\d+)")


def plain(obj: Any) -> Any:
    """A JSON/YAML-safe copy of a config tree (configclasses, tuples, callables and classes become plain data)."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    elif hasattr(obj, "__dataclass_fields__"):
        from isaaclab.utils import class_to_dict

        obj = class_to_dict(obj)
    return json.loads(json.dumps(obj, default=str))


def write_config(path: str | os.PathLike, sections: dict) -> Path:
    """``sections`` (e.g. {"task": ..., "env": env_cfg, "agent": agent_cfg}) as one YAML file, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump({k: plain(v) for k, v in sections.items()}, sort_keys=False))
    return Path(path)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl`` (none when the file does not exist)."""
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.is_file() else []


class MetricsFile:
    """``metrics.jsonl``: one JSON object per logging step, appended and flushed line by line (a killed run
    leaves whole lines). On resume from iteration ``k`` the file is cut back to what it held when checkpoint k
    was written (``keep_rows`` lines, which the checkpoint records; without that count, the lines of iterations
    up to k), so the file never holds a line twice: not even a final evaluation logged after the last checkpoint
    by a run killed before it could finish."""

    def __init__(self, path: str | os.PathLike, resume_from: int | None = None, keep_rows: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = 0
        if resume_from is None:
            self.path.write_text("")
        elif self.path.is_file():
            lines = [line for line in self.path.read_text().splitlines() if _iteration(line) is not None]
            keep = lines[:keep_rows] if keep_rows is not None else [line for line in lines if _iteration(line) <= resume_from]
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in keep))
            self.rows = len(keep)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, default=float) + "\n")
        self._f.flush()
        self.rows += 1

    def records(self) -> list[dict]:
        return read_metrics(self.path)

    def close(self) -> None:
        self._f.close()


def _iteration(line: str) -> int | None:
    try:
        return int(json.loads(line)["iteration"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line of a killed run


def checkpoint_dirs(run_dir: str | os.PathLike) -> list[Path]:
    """A run's checkpoints, oldest first: the ``iter_K`` directories with their trainer state and manifest (a
    killed write leaves only a hidden temporary name). Whether their files are intact is the reader's check
    (:func:`openarm_vla.utils.manifest.verify_manifest`)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _ITER_DIR.fullmatch(p.name)) and (p / STATE_FILE).is_file() and (p / MANIFEST_FILE).is_file()]
    return [p for _, p in sorted(found)]
