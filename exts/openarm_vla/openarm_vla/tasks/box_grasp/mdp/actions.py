"""The action term of the box-grasp task: the 8-DoF interface of :mod:`openarm_vla.action_space` applied
to the OpenArm's joint position targets."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from isaaclab.managers.action_manager import ActionTerm, ActionTermCfg
from isaaclab.utils import configclass

from openarm_vla.action_space import (
    ACTION_DIM,
    action_to_joint_targets,
    finger_pos_to_closure,
    joint_limits,
    joint_targets_to_action,
)
from openarm_vla.robots import openarm_spec as spec

class NormalizedJointAction(ActionTerm):
    """Absolute joint-position targets from normalized actions, plus the mirrored gripper."""

    cfg: NormalizedJointActionCfg

    def __init__(self, cfg: NormalizedJointActionCfg, env):
        super().__init__(cfg, env)
        ids, names = self._asset.find_joints(list(spec.ARM_JOINTS + spec.FINGER_JOINTS), preserve_order=True)
        self._joint_ids = ids.torch if hasattr(ids, "torch") else torch.as_tensor(ids, device=self.device)
        self._joint_names = names
        self._lower, self._upper = joint_limits(torch.zeros(1, device=self.device))
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
