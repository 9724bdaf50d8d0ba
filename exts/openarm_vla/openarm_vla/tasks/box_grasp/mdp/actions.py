"""The 8-DoF action interface shared by the VLA, the scripted expert and teleop.

a in [-1, 1]^8. Dims 1-7 are absolute arm joint targets, q = lo + (a + 1) / 2 (hi - lo) over the joint
limits; dim 8 is gripper closure g = (a + 1) / 2 in [0, 1] (0 open, 1 closed) that drives both fingers to
0.044 (1 - g). Inputs are clipped to [-1, 1], so any target lies inside the limits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from isaaclab.managers.action_manager import ActionTerm, ActionTermCfg
from isaaclab.utils import configclass

from openarm_vla.robots import openarm_spec as spec

ACTION_DIM = 8


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


class NormalizedJointAction(ActionTerm):
    """Absolute joint-position targets from normalized actions, plus the mirrored gripper."""

    cfg: NormalizedJointActionCfg

    def __init__(self, cfg: NormalizedJointActionCfg, env):
        super().__init__(cfg, env)
        ids, names = self._asset.find_joints(list(spec.ARM_JOINTS + spec.FINGER_JOINTS), preserve_order=True)
        self._joint_ids = ids.torch if hasattr(ids, "torch") else torch.as_tensor(ids, device=self.device)
        self._joint_names = names
        self._lower = torch.tensor(spec.ARM_LOWER, device=self.device)
        self._upper = torch.tensor(spec.ARM_UPPER, device=self.device)
        self._raw = torch.zeros(self.num_envs, ACTION_DIM, device=self.device)
        self._targets = torch.zeros(self.num_envs, 9, device=self.device)

    @property
    def action_dim(self) -> int:
        return ACTION_DIM

    @property
    def raw_actions(self) -> torch.Tensor:
        return self._raw

    @property
    def processed_actions(self) -> torch.Tensor:
        return self._targets

    @property
    def lower(self) -> torch.Tensor:
        return self._lower

    @property
    def upper(self) -> torch.Tensor:
        return self._upper

    def process_actions(self, actions: torch.Tensor):
        if actions.shape[-1] != ACTION_DIM:
            raise ValueError(f"action has {actions.shape[-1]} dims; OpenArm-BoxGrasp expects {ACTION_DIM} (7 joints + gripper)")
        self._raw[:] = actions.clamp(-1.0, 1.0)
        self._targets[:] = action_to_joint_targets(self._raw, self._lower, self._upper)

    def apply_actions(self):
        self._asset.set_joint_position_target_index(target=self._targets, joint_ids=self._joint_ids)

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        # hold the current pose: a zero action would command the middle of the joint ranges
        ids = slice(None) if env_ids is None else env_ids
        q = self._asset.data.joint_pos.torch[:, self._joint_ids]
        self._targets[ids] = q[ids]
        closure = finger_pos_to_closure(q[ids, 7])
        self._raw[ids] = joint_targets_to_action(q[ids, :7], closure, self._lower, self._upper)


@configclass
class NormalizedJointActionCfg(ActionTermCfg):
    """Configuration of :class:`NormalizedJointAction`."""

    class_type: type = NormalizedJointAction
    asset_name: str = "robot"
