"""Termination terms besides success (see :mod:`.success`) and Isaac Lab's time-out."""

from __future__ import annotations

import torch


def box_off_table(env, minimum_height: float = -0.05) -> torch.Tensor:
    """The box fell below the table top (knocked off)."""
    z = env.scene["box"].data.root_pos_w.torch[:, 2] - env.scene.env_origins[:, 2]
    return z < minimum_height
