"""The 8-DoF action interface of the OpenArm tasks, in one place (pure torch, no simulator).

a in [-1, 1]^8. Dims 0-6 are absolute arm joint targets, q = lo + (a + 1) / 2 (hi - lo) over the joint
limits; dim 7 is gripper closure g = (a + 1) / 2 in [0, 1] (0 open, 1 closed) that drives both fingers to
0.044 (1 - g). Inputs are clipped to [-1, 1], so any target lies inside the limits.

The env's action term, the scripted expert, teleop, the PPO teacher's initial output, the demo files'
``env_args['action_space']`` and the VLA's (un)normalization all read this module. The VLA's own
convention (OpenVLA bounds_q99) maps a dataset's q01/q99 action range to [-1, 1]; our demos are already in
[-1, 1], so the statistics file beside a dataset (:data:`STATS_FILENAME`) is optional for them.
"""

from __future__ import annotations

from typing import Any

import torch

from openarm_vla.robots import openarm_spec as spec

ACTION_DIM = 8
ACTION_NAMES = tuple(spec.ARM_JOINTS) + ("gripper",)
STATS_FILENAME = "dataset_statistics.json"
"""Dataset statistics (OpenVLA layout) beside a demo file and inside a checkpoint directory."""
DEFAULT_STATS_KEY = "openarm_box_grasp"
"""The dataset key of our statistics files."""

ACTION_SPACE: dict[str, Any] = {
    "dim": ACTION_DIM,
    "low": -1.0,
    "high": 1.0,
    "names": list(ACTION_NAMES),
    "description": (
        "dims 0-6: absolute joint-position targets, q = lo + (a + 1) / 2 * (hi - lo) with the OpenArm joint "
        "limits; dim 7: gripper closure g = (a + 1) / 2 in [0, 1] (0 open, 1 closed), both fingers driven "
        "to 0.044 * (1 - g) m"
    ),
}
"""Description stored with demonstrations (``env_args['action_space']``)."""


def joint_limits(like: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Arm joint limits (lower, upper) [7], on the dtype/device of ``like``."""
    kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
    return torch.tensor(spec.ARM_LOWER, **kw), torch.tensor(spec.ARM_UPPER, **kw)


def action_to_joint_targets(actions: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Map [N, 8] actions to [N, 9] joint targets (7 arm joints, 2 fingers)."""
    a = actions.clamp(-1.0, 1.0)
    arm = lower + (a[:, :7] + 1.0) * 0.5 * (upper - lower)
    closure = (a[:, 7:8] + 1.0) * 0.5
    finger = spec.GRIPPER_OPEN * (1.0 - closure)
    return torch.cat([arm, finger, finger], dim=1)


def joint_targets_to_action(arm_q: torch.Tensor, closure: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`action_to_joint_targets`: arm joint angles [N, 7] and closure [N] in [0, 1] -> [N, 8]."""
    arm = 2.0 * (arm_q - lower) / (upper - lower) - 1.0
    grip = 2.0 * closure.reshape(-1, 1) - 1.0
    return torch.cat([arm, grip], dim=1).clamp(-1.0, 1.0)


def finger_pos_to_closure(finger_q: torch.Tensor) -> torch.Tensor:
    """Finger joint position [m] -> closure in [0, 1] (0 open)."""
    return (1.0 - finger_q / spec.GRIPPER_OPEN).clamp(0.0, 1.0)


def joint_state_to_action(joint_state: torch.Tensor) -> torch.Tensor:
    """The policy's joint state [N, 8] (7 angles + closure) in action units [N, 8]: the action that holds it.

    Also the proprio input of the VLA: joint angles scaled by the same limits as the actions.
    """
    lo, hi = joint_limits(joint_state)
    return joint_targets_to_action(joint_state[:, :7], joint_state[:, 7], lo, hi)


def home_action(device="cpu") -> torch.Tensor:
    """The normalized action [8] that holds the home pose with the gripper open."""
    q = torch.tensor([[spec.HOME_JOINT_POS[n] for n in spec.ARM_JOINTS]], device=device)
    lo, hi = joint_limits(q)
    return joint_targets_to_action(q, torch.zeros(1, device=device), lo, hi)[0]


# ------------------------------------------------------------------------------------------------
# OpenVLA bounds_q99 (un)normalization with a dataset's statistics
# ------------------------------------------------------------------------------------------------


def action_stats(norm_stats: dict, unnorm_key: str | None = None) -> dict:
    """The action statistics in ``norm_stats``: accepts {key: {"action": {...}}}, {"action": {...}} or
    the bare {"q01": ..., "q99": ...}; ``unnorm_key`` picks the dataset when there are several."""
    if "q01" in norm_stats:
        return norm_stats
    if "action" in norm_stats:
        return norm_stats["action"]
    if unnorm_key is None:
        if len(norm_stats) != 1:
            raise ValueError(f"norm_stats has datasets {sorted(norm_stats)}; pass unnorm_key to pick one")
        unnorm_key = next(iter(norm_stats))
    if unnorm_key not in norm_stats or "action" not in norm_stats[unnorm_key]:
        raise ValueError(f"norm_stats has no action statistics for unnorm_key {unnorm_key!r} (has {sorted(norm_stats)})")
    return norm_stats[unnorm_key]["action"]


def _bounds(stats: dict, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q01 = torch.as_tensor(stats["q01"], dtype=like.dtype, device=like.device)
    q99 = torch.as_tensor(stats["q99"], dtype=like.dtype, device=like.device)
    if q01.shape[-1] != like.shape[-1]:
        raise ValueError(f"action stats have {q01.shape[-1]} dims, actions have {like.shape[-1]}")
    mask = torch.as_tensor(stats.get("mask", [True] * q01.shape[-1]), dtype=torch.bool, device=like.device)
    return q01, q99, mask


def normalize(actions: torch.Tensor, stats: dict) -> torch.Tensor:
    """OpenVLA bounds_q99 normalization: ``2 (a - q01) / (q99 - q01) - 1`` clipped to [-1, 1] where mask, else a."""
    q01, q99, mask = _bounds(stats, actions)
    return torch.where(mask, (2.0 * (actions - q01) / (q99 - q01 + 1e-8) - 1.0).clamp(-1.0, 1.0), actions)


def unnormalize(actions: torch.Tensor, stats: dict) -> torch.Tensor:
    """Inverse of :func:`normalize` (on the unclipped range): ``0.5 (a + 1) (q99 - q01) + q01`` where mask, else a."""
    q01, q99, mask = _bounds(stats, actions)
    return torch.where(mask, 0.5 * (actions + 1.0) * (q99 - q01) + q01, actions)


# ------------------------------------------------------------------------------------------------
# the frame action tokens are expressed in (VLAConfig.action_frame)
# ------------------------------------------------------------------------------------------------

ARM_DIMS = 7
"""Action dims 0-6 are arm joints (offset in the "delta" frame); dim 7 (gripper) is always absolute."""


def to_token_frame(actions: torch.Tensor, joint_action: torch.Tensor, frame: str) -> torch.Tensor:
    """Absolute actions [B, C, 8] -> what the tokens encode: themselves ("absolute") or, for the arm dims, the
    offset from ``joint_action`` [B, 8] (the joint state at the chunk's start in action units, "delta")."""
    if frame == "absolute":
        return actions
    out = actions.clone()
    out[..., :ARM_DIMS] -= joint_action[:, None, :ARM_DIMS]
    return out


def from_token_frame(values: torch.Tensor, joint_action: torch.Tensor, frame: str) -> torch.Tensor:
    """Inverse of :func:`to_token_frame`: decoded token values [B, C, 8] -> absolute actions, clipped to [-1, 1]."""
    if frame == "absolute":
        return values
    out = values.clone()
    out[..., :ARM_DIMS] += joint_action[:, None, :ARM_DIMS]
    return out.clamp(-1.0, 1.0)
