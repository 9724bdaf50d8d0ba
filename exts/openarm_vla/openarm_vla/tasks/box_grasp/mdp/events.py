"""Reset-time events: place the box on the table, randomize its mass; group-consistent box variants.

Box size and colour are USD-level, so they are chosen when the scene is created and stay fixed per env.
:func:`grouped_variants` gives every run of ``group_size`` consecutive envs the same variant, so that all
members of a GRPO group see the same box; poses and masses change per episode and are restored by
:func:`openarm_vla.tasks.box_grasp.group_reset.reset_group_to`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from isaaclab.utils.math import quat_from_euler_xyz


def grouped_variants(num_variants: int, num_envs: int, group_size: int, seed: int = 0) -> np.ndarray:
    """Variant index per env: constant within each block of ``group_size`` envs, shuffled across blocks."""
    num_groups = math.ceil(num_envs / group_size)
    rng = np.random.default_rng(seed)
    per_group = rng.integers(0, num_variants, size=num_groups)
    return np.repeat(per_group, group_size)[:num_envs]


class GroupedCloneStrategy:
    """An Isaac Lab ``clone_strategy`` (weights, num_clones) -> prototype per env, grouped by env id."""

    def __init__(self, group_size: int, seed: int = 0):
        self.group_size, self.seed = group_size, seed

    def __call__(self, weights: np.ndarray, num_clones: int) -> np.ndarray:
        return grouped_variants(len(weights), num_clones, self.group_size, self.seed)


def env_id_tensor(env, env_ids) -> torch.Tensor:
    """Env ids as a long tensor (managers pass a slice for "all")."""
    if env_ids is None or isinstance(env_ids, slice):
        return torch.arange(env.num_envs, device=env.device)[env_ids if isinstance(env_ids, slice) else slice(None)]
    return torch.as_tensor(env_ids, device=env.device, dtype=torch.long)


def _monitor(env):
    return env.termination_manager.get_term_cfg("success").func


def reset_box_on_table(
    env,
    env_ids: torch.Tensor,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    yaw_range: tuple[float, float],
    table_height: float,
    sizes: list[tuple[float, float, float]],
    group_size: int,
    variant_seed: int = 0,
):
    """Put the box flat on the table at a uniform position and yaw; tell the success monitor where it rests."""
    box = env.scene["box"]
    dev = env.device
    env_ids = env_id_tensor(env, env_ids)
    if not hasattr(env, "_box_sizes"):
        idx = grouped_variants(len(sizes), env.num_envs, group_size, variant_seed)
        env._box_sizes = torch.tensor(np.asarray(sizes)[idx], dtype=torch.float32, device=dev)
    n = len(env_ids)
    size = env._box_sizes[env_ids]
    u = torch.rand(n, 3, device=dev)
    x = x_range[0] + u[:, 0] * (x_range[1] - x_range[0])
    y = y_range[0] + u[:, 1] * (y_range[1] - y_range[0])
    yaw = yaw_range[0] + u[:, 2] * (yaw_range[1] - yaw_range[0])
    rest_z = table_height + size[:, 2] / 2.0
    pos = torch.stack([x, y, rest_z + 0.001], dim=1) + env.scene.env_origins[env_ids]
    zero = torch.zeros_like(yaw)
    quat = quat_from_euler_xyz(zero, zero, yaw)  # xyzw
    box.write_root_pose_to_sim_index(root_pose=torch.cat([pos, quat], dim=1), env_ids=env_ids)
    box.write_root_velocity_to_sim_index(root_velocity=torch.zeros(n, 6, device=dev), env_ids=env_ids)
    _monitor(env).set_box_geometry(env_ids, rest_z, size)
