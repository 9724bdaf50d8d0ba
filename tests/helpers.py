"""Test-only helpers: an independent forward kinematics (to check the analytic Jacobian against), mp4 reading, a
forced-success patch for GRPO on an untrained model, and the trainer run as a subprocess."""

from __future__ import annotations

import os

import torch

from openarm_vla.robots import openarm_spec as spec
from openarm_vla.robots.kinematics import _ARM


def _axis_angle_matrix(axis: str, q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] about a signed principal axis ("+z", "-y", ...)."""
    sign = -1.0 if axis[0] == "-" else 1.0
    i = "xyz".index(axis[1])
    c, s = torch.cos(sign * q), torch.sin(sign * q)
    j, k = (i + 1) % 3, (i + 2) % 3
    R = torch.zeros(q.shape[0], 3, 3, dtype=q.dtype, device=q.device)
    R[:, i, i] = 1.0
    R[:, j, j] = c
    R[:, k, k] = c
    R[:, j, k] = -s
    R[:, k, j] = s
    return R


def hand_pose(q: torch.Tensor, offset: tuple[float, float, float] = spec.TCP_OFFSET) -> tuple[torch.Tensor, torch.Tensor]:
    """Position [N, 3] and rotation [N, 3, 3] of ``offset`` in the hand frame, in the base frame (7 joints [N, 7])."""
    n = q.shape[0]
    R = torch.eye(3, dtype=q.dtype, device=q.device).expand(n, 3, 3)
    p = torch.zeros(n, 3, dtype=q.dtype, device=q.device)
    for idx, joint in enumerate(_ARM):
        p = p + R @ torch.tensor(joint.origin, dtype=q.dtype, device=q.device)
        R = R @ _axis_angle_matrix(joint.axis, q[:, idx])
    p = p + R @ torch.tensor(spec.HAND_IN_LINK7, dtype=q.dtype, device=q.device)
    p = p + R @ torch.tensor(offset, dtype=q.dtype, device=q.device)
    return p, R


def read_mp4_frames(path: str | os.PathLike) -> int:
    """Number of frames decodable from an mp4."""
    import imageio.v2 as imageio

    with imageio.get_reader(str(path), format="FFMPEG") as r:
        return sum(1 for _ in r)


def force_success(env_ids=(0,), at_step: int = 5) -> None:
    """Patch the task's success detector so that ``env_ids`` succeed at step ``at_step`` of every episode.

    GRPO's dynamic sampling keeps only groups with mixed outcomes, which an untrained tiny model never
    produces; with env 0 of the group (0, 1) forced, the group is mixed and the whole update path runs on the
    real env (success ends the episode, the record says success, the reward term pays 1)."""
    from openarm_vla.tasks.box_grasp.mdp.success import GraspMonitor

    import functools

    original = GraspMonitor.__call__

    @functools.wraps(original)  # the termination manager reads the term's signature
    def patched(self, env, *args, **kwargs):
        out = original(self, env, *args, **kwargs)
        if getattr(env, "episode_length_buf", None) is None:  # the manager probes the term while building
            return out
        ids = torch.tensor(env_ids, device=out.device)
        hit = ids[env.episode_length_buf[ids] >= at_step]
        self.success[hit] = True
        self.succeeded[hit] = True  # the episode record reads the sticky flag
        return self.success

    GraspMonitor.__call__ = patched


def run_train_forced(argv: list[str], env_ids=(0,), at_step: int = 5) -> None:
    """``scripts/train.py`` in this process with :func:`force_success` applied (for subprocess tests)."""
    import runpy
    import sys
    from pathlib import Path

    force_success(env_ids, at_step)
    script = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
    sys.argv = [str(script), *argv]
    runpy.run_path(str(script), run_name="__main__")


TINY_ENV = ["env.scene.front_camera.width=32", "env.scene.front_camera.height=32", "env.episode_length_s=1.0"]
"""Env overrides of the trainer tests: 32 px, one-second episodes."""


def popen_train(args: list[str], log, forced: bool = False, append: bool = False):
    """``scripts/train.py ARGS`` in a new process (``forced``: through :func:`run_train_forced`), its output to
    ``log`` (appended to with ``append``: one log across kills and resumes)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMNI_KIT_ACCEPT_EULA": "YES",
           "PYTHONPATH": os.pathsep.join([str(root / "exts" / "openarm_vla"), str(root / "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", f"import helpers; helpers.run_train_forced({args!r}, env_ids=(0,), at_step=5)"] if forced \
        else [sys.executable, "scripts/train.py", *args]
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=open(log, "a" if append else "w"), stderr=subprocess.STDOUT)
