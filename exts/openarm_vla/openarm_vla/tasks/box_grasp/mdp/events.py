"""Reset-time events (place the box on the table) and the group-consistent box variants.

Box size and colour are USD-level, so they are chosen when the scene is created and stay fixed per env.
:func:`grouped_clone_strategy` gives every run of ``group_size`` consecutive envs the same variant, so that
all members of a GRPO group see the same box; poses and masses change per episode and are restored by
:func:`openarm_vla.tasks.box_grasp.scene_state.reset_to_states`.
"""

from __future__ import annotations

import functools
import math
import re
import sys

import numpy as np
import torch

from isaaclab.managers import ManagerTermBase
from isaaclab.utils.math import quat_from_euler_xyz


def grouped_variants(num_variants: int, num_envs: int, group_size: int, seed: int = 0, cycle: bool = False) -> np.ndarray:
    """Variant index per env: constant within each block of ``group_size`` envs, shuffled across blocks
    (``cycle``: block k gets variant k mod num_variants, so a few blocks cover every variant).

    Group k's variant does not depend on ``num_envs`` (a prefix of one seeded draw), so env k holds the
    same box in a 256-env evaluation as in a 4096-env training run with the same group size.
    """
    num_groups = math.ceil(num_envs / group_size)
    if cycle:
        per_group = np.arange(num_groups) % num_variants
    else:
        per_group = np.random.default_rng(seed).integers(0, num_variants, size=num_groups)
    return np.repeat(per_group, group_size)[:num_envs]


def grouped_clone_strategy(group_size: int, cycle: bool = False):
    """Isaac Lab ``clone_strategy`` (weights, num_clones) -> variant per env, grouped by ``group_size``.

    It is the module attribute ``group_<G>`` (``cycle_<G>`` with ``cycle``), made on first access, so Isaac
    Lab's config serialization, which stores a callable as ``"module:name"`` (Hydra overrides,
    ``isaaclab train``), resolves it back.
    """
    return getattr(sys.modules[__name__], f"{'cycle' if cycle else 'group'}_{int(group_size)}")


def __getattr__(name: str):
    match = re.fullmatch(r"(group|cycle)_(\d+)", name)
    if match is None or int(match.group(2)) < 1:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    group_size, cycle = int(match.group(2)), match.group(1) == "cycle"

    def strategy(weights: np.ndarray, num_clones: int) -> np.ndarray:
        return grouped_variants(len(weights), num_clones, group_size, cycle=cycle)

    strategy.__name__ = strategy.__qualname__ = name
    strategy.__module__ = __name__
    globals()[name] = strategy
    return strategy


@functools.lru_cache(maxsize=8)
def _variant_sizes(sizes: tuple, num_envs: int, group_size: int, device: str, cycle: bool) -> torch.Tensor:
    idx = grouped_variants(len(sizes), num_envs, group_size, cycle=cycle)
    return torch.tensor(np.asarray(sizes, dtype=np.float32)[idx], device=device)


def box_variant_sizes(env, sizes=None, group_size: int | None = None) -> torch.Tensor:
    """[N, 3] box edge lengths per env: the variant the clone strategy gave the env's group (the reset
    event's ``sizes``, ``group_size`` and ``cycle_variants`` unless given)."""
    params = env.cfg.events.reset_box.params
    sizes = params["sizes"] if sizes is None else sizes
    group_size = params["group_size"] if group_size is None else group_size
    cycle = bool(params.get("cycle_variants", False))
    return _variant_sizes(tuple(map(tuple, sizes)), env.num_envs, group_size, str(env.device), cycle)


def env_id_tensor(env, env_ids) -> torch.Tensor:
    """Env ids as a long tensor (managers pass a slice for "all")."""
    if env_ids is None or isinstance(env_ids, slice):
        return torch.arange(env.num_envs, device=env.device)[env_ids if isinstance(env_ids, slice) else slice(None)]
    return torch.as_tensor(env_ids, device=env.device, dtype=torch.long)


def grasp_monitor(env):
    """The task's success term (:class:`~.success.GraspMonitor`), which the other terms read."""
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
    cycle_variants: bool = False,
):
    """Put the box flat on the table at a uniform position and yaw; tell the success monitor its size and
    where it rests."""
    box = env.scene["box"]
    dev = env.device
    env_ids = env_id_tensor(env, env_ids)
    n = len(env_ids)
    size = box_variant_sizes(env, sizes, group_size)[env_ids]
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
    grasp_monitor(env).set_box_geometry(env_ids, rest_z, size)


class keep_requested_video_recorders(ManagerTermBase):
    """Drop the env's video recorders that no one gave an output directory (an event term that does nothing
    per reset; it acts once, when the managers start).

    Isaac Lab's ``--video`` flag sets ``output_dir`` on the recorders an env config declares; without the flag a
    declared recorder would still write clips (to ./videos). The -Play configs declare one on their video
    camera, so ``isaaclab play --video`` records and a plain ``isaaclab play`` writes nothing. (A prestartup
    event would act before the recorders exist, but Isaac Lab refuses those in a replicated scene.)
    """

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        env.video_recorders = [r for r in env.video_recorders if r.cfg.output_dir is not None]

    def __call__(self, env, env_ids):
        pass
