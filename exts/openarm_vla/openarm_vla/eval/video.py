"""mp4 episode videos from uint8 frames, written atomically (temp file beside the target, then rename)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_mp4(path: str | os.PathLike, frames: Sequence, fps: int = 50) -> Path:
    """Write uint8 frames [H, W, 3] (numpy or torch) to an H.264 mp4. Odd sizes are padded to even
    (yuv420p needs even dimensions) rather than rescaled, so small camera images stay sharp."""
    try:
        import imageio.v2 as imageio
    except ImportError as e:  # pragma: no cover
        raise ImportError("writing videos needs imageio and imageio-ffmpeg: pip install imageio imageio-ffmpeg") from e
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to write")
    arr = [np.asarray(f.cpu() if hasattr(f, "cpu") else f, dtype=np.uint8) for f in frames]
    h, w = arr[0].shape[:2]
    ph, pw = h % 2, w % 2
    if ph or pw:
        arr = [np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="edge") for a in arr]
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.tmp.{os.getpid()}{final.suffix}")
    try:
        # macro_block_size=1: no automatic resize to multiples of 16 (and no warning about it)
        with imageio.get_writer(str(tmp), format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                pixelformat="yuv420p", macro_block_size=1) as w_:
            for a in arr:
                w_.append_data(a)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def read_mp4_frames(path: str | os.PathLike) -> int:
    """Number of frames decodable from an mp4 (for tests and sanity checks)."""
    import imageio.v2 as imageio

    with imageio.get_reader(str(path), format="FFMPEG") as r:
        return sum(1 for _ in r)
