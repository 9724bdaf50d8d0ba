"""Episode videos: the front-camera frames of chosen envs as mp4 (written atomically) or as arrays for loggers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from openarm_vla.utils.io import atomic_path


def write_mp4(path: str | os.PathLike, frames: Sequence, fps: int = 50) -> Path:
    """Write uint8 frames [H, W, 3] (numpy or torch) to an H.264 mp4 (imageio-ffmpeg; OpenCV's MPEG-4 writer
    where imageio-ffmpeg is not installed). Odd sizes are padded to even (yuv420p needs even dimensions)
    rather than rescaled, so small camera images stay sharp."""
    if len(frames) == 0:
        raise ValueError(f"{path}: no frames to write")
    arr = [np.asarray(f.cpu() if hasattr(f, "cpu") else f, dtype=np.uint8) for f in frames]
    h, w = arr[0].shape[:2]
    ph, pw = h % 2, w % 2
    if ph or pw:
        arr = [np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="edge") for a in arr]
    with atomic_path(Path(path)) as tmp:
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary)
        except ImportError:
            _write_mp4_opencv(tmp, arr, fps)
            return Path(path)
        # macro_block_size=1: no automatic resize to multiples of 16 (and no warning about it)
        with imageio.get_writer(str(tmp), format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                pixelformat="yuv420p", macro_block_size=1) as w_:
            for a in arr:
                w_.append_data(a)
    return Path(path)


def _write_mp4_opencv(path: Path, frames: list, fps: int) -> None:
    try:
        import cv2
    except ImportError as e:
        raise ImportError("writing videos needs imageio-ffmpeg (pip install imageio-ffmpeg) or OpenCV") from e
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot open an MPEG-4 writer")
    for a in frames:
        writer.write(np.ascontiguousarray(a[..., ::-1]))  # OpenCV takes BGR
    writer.release()


def pick_clips(clips: Sequence[dict], k: int) -> list[dict]:
    """Up to ``k`` clips to show: a success and a failure first where there are both, then the others in order
    (filming the first episode of env 0 alone mostly shows failures of a policy that succeeds one time in five)."""
    wins = [c for c in clips if c["success"]]
    losses = [c for c in clips if not c["success"]]
    return (wins[:1] + losses[:1] + wins[1:] + losses[1:])[:k]


def write_clips(clips: Sequence[dict], directory: str | os.PathLike, fps: int) -> list[str]:
    """Each clip as ``directory/episode_<k>_<outcome>.mp4`` (outcome: success or the failure class)."""
    return [str(write_mp4(Path(directory) / f"episode_{k}_{c['failure']}.mp4", c["frames"], fps)) for k, c in enumerate(clips)]


class EpisodeVideo:
    """A :func:`openarm_vla.rollout.step_loop` callback: the frames ``env_ids`` saw, one clip per finished
    episode, the first ``episodes`` of each env. ``clips`` holds {env_id, episode, success, failure, frames
    [T, H, W, 3] uint8} in order of finish (:func:`pick_clips` and :func:`write_clips` choose and write them)."""

    def __init__(self, env_ids: Sequence[int] = (0,), episodes: int = 1):
        self.episodes = episodes
        self._frames: dict[int, list] = {int(e): [] for e in env_ids}
        self._done: dict[int, int] = {int(e): 0 for e in env_ids}
        self.clips: list[dict] = []

    @property
    def finished(self) -> bool:
        return all(n >= self.episodes for n in self._done.values())

    def __call__(self, step, active=None) -> None:
        recording = [e for e, n in self._done.items() if n < self.episodes]
        if not recording:
            return
        frames = step.obs["policy"]["front_rgb"][recording].cpu().numpy()  # one copy from the device per step
        for e, frame in zip(recording, frames):
            self._frames[e].append(frame)
        for rec in step.episodes:
            e = rec["env_id"]
            if e in recording:
                self.clips.append({"env_id": e, "episode": self._done[e], "success": rec["success"],
                                   "failure": rec["failure"], "frames": np.stack(self._frames[e])})
                self._frames[e] = []
                self._done[e] += 1
