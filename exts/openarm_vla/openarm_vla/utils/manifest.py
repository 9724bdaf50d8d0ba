"""A checkpoint's manifest: the size and SHA-256 of every file in its directory, written last.

The atomic rename (:mod:`openarm_vla.utils.io`) means no half-written directory appears under its final name;
the manifest catches what happens to a directory afterwards: a copy cut short, a truncated or corrupted file, a
file removed by hand. Readers check it before trusting the files and name the first one that differs; a
directory without a manifest (a published checkpoint, or one written before manifests) is read as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST_FILE = "manifest.json"


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(directory: str | os.PathLike) -> Path:
    """Record every regular file under ``directory`` (the manifest excepted) in ``manifest.json``."""
    d = Path(directory)
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    entries = {str(p.relative_to(d)): {"bytes": p.stat().st_size, "sha256": _digest(p)} for p in files}
    path = d / MANIFEST_FILE
    path.write_text(json.dumps({"files": entries}, indent=1) + "\n")
    return path


def copy_manifest(src: str | os.PathLike, dst: str | os.PathLike, exclude: tuple[str, ...] = ()) -> Path:
    """``dst``'s manifest from ``src``'s, without the ``exclude``d files: for a directory that links or copies
    ``src``'s files (no second hashing of a 28 GB checkpoint)."""
    entries = json.loads((Path(src) / MANIFEST_FILE).read_text())["files"]
    path = Path(dst) / MANIFEST_FILE
    path.write_text(json.dumps({"files": {k: v for k, v in entries.items() if k not in exclude}}, indent=1) + "\n")
    return path


def verify_manifest(directory: str | os.PathLike) -> str | None:
    """None if every file of the manifest is there with its size and hash (or there is no manifest); else a
    short description of the first difference. Sizes are checked for all files before any hash is computed."""
    d = Path(directory)
    path = d / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        entries = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return f"{MANIFEST_FILE} is unreadable"
    for name, e in entries.items():
        f = d / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != e["bytes"]:
            return f"{name} is {f.stat().st_size} bytes, the manifest says {e['bytes']} (truncated or overwritten)"
    for name, e in entries.items():
        if _digest(d / name) != e["sha256"]:
            return f"{name} does not match its SHA-256 in the manifest (corrupt)"
    return None
