"""Action terms of the box-grasp task: the VLA's 8-DoF interface of :mod:`openarm_vla.action_space` applied to
the OpenArm's joint position targets, and the State task's top-down end-effector deltas (for PPO)."""

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
from openarm_vla.robots.ee_delta import TopDownDeltaController


class _ArmGripperTargets(ActionTerm):
    """What both action terms share: the 7 arm and 2 finger joints, driven by position targets [N, 9] computed
    from an action of ``action_dim`` dims (the raw action and the targets kept for the managers)."""

    def __init__(self, cfg, env, action_dim: int):
        super().__init__(cfg, env)
        ids, names = self._asset.find_joints(list(spec.ARM_JOINTS + spec.FINGER_JOINTS), preserve_order=True)
        self._joint_ids = ids.torch if hasattr(ids, "torch") else torch.as_tensor(ids, device=self.device)
        self._joint_names = names
        self._raw = torch.zeros(self.num_envs, action_dim, device=self.device)
        self._targets = torch.zeros(self.num_envs, 9, device=self.device)

    @property
    def action_dim(self) -> int:
        return self._raw.shape[1]

    @property
    def raw_actions(self) -> torch.Tensor:
        return self._raw

    @property
    def processed_actions(self) -> torch.Tensor:
        return self._targets

    def apply_actions(self):
        self._asset.set_joint_position_target_index(target=self._targets, joint_ids=self._joint_ids)


class NormalizedJointAction(_ArmGripperTargets):
    """Absolute joint-position targets from normalized actions, plus the mirrored gripper."""

    cfg: NormalizedJointActionCfg

    def __init__(self, cfg: NormalizedJointActionCfg, env):
        super().__init__(cfg, env, ACTION_DIM)
        self._lower, self._upper = joint_limits(torch.zeros(1, device=self.device))

    @property
    def lower(self) -> torch.Tensor:
        return self._lower

    @property
    def commanded_closure(self) -> torch.Tensor:
        """[N] gripper closure commanded by the last action (0 open, 1 closed)."""
        return (self._raw[:, 7] + 1.0) * 0.5

    @property
    def upper(self) -> torch.Tensor:
        return self._upper

    def process_actions(self, actions: torch.Tensor):
        if actions.shape[-1] != ACTION_DIM:
            raise ValueError(f"action has {actions.shape[-1]} dims; OpenArm-BoxGrasp expects {ACTION_DIM} (7 joints + gripper)")
        self._raw[:] = actions.clamp(-1.0, 1.0)
        self._targets[:] = action_to_joint_targets(self._raw, self._lower, self._upper)

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


class TopDownDeltaAction(_ArmGripperTargets):
    """The State task's action: top-down jaw-centre deltas, hand yaw delta and a binary gripper (5 dims).

    Why not the VLA's absolute joint targets: exploring 7 absolute joint angles, a Gaussian policy swings the
    hand away from pointing down and rarely finds the box; Isaac Lab's lift tasks act relative (joint or IK
    deltas) with a binary gripper for the same reason. See :class:`TopDownDeltaController`.
    """

    cfg: TopDownDeltaActionCfg

    def __init__(self, cfg: TopDownDeltaActionCfg, env):
        super().__init__(cfg, env, TopDownDeltaController.ACTION_DIM)
        self.controller = TopDownDeltaController(
            self.num_envs, self.device, cfg.pos_scale, cfg.yaw_scale, cfg.close_closure, cfg.ik_iters,
            cfg.workspace_lo, cfg.workspace_hi)

    @property
    def commanded_closure(self) -> torch.Tensor:
        """[N] gripper closure commanded by the last action (0 open, 1 closed)."""
        return self.controller.closure

    def process_actions(self, actions: torch.Tensor):
        if actions.shape[-1] != TopDownDeltaController.ACTION_DIM:
            raise ValueError(f"action has {actions.shape[-1]} dims; OpenArm-BoxGrasp-State expects 5 "
                             "(dx, dy, dz, dyaw, gripper)")
        self._raw[:] = actions.clamp(-1.0, 1.0)
        self.controller.step(self._raw)
        self._targets[:] = self.controller.joint_targets()

    def reset(self, env_ids: Sequence[int] | None = None) -> None:
        # hold the current pose, gripper as it is
        ids = slice(None) if env_ids is None else env_ids
        q = self._asset.data.joint_pos.torch[:, self._joint_ids]
        self.controller.reset(q[ids, :7], finger_pos_to_closure(q[ids, 7]), env_ids)
        self._targets[ids] = self.controller.joint_targets()[ids]
        self._raw[ids] = 0.0


@configclass
class TopDownDeltaActionCfg(ActionTermCfg):
    """Configuration of :class:`TopDownDeltaAction`."""

    class_type: type = TopDownDeltaAction
    asset_name: str = "robot"
    pos_scale: float = 0.01
    """Jaw-centre target motion per unit action per control step [m] (0.5 m/s at 50 Hz)."""
    yaw_scale: float = 0.05
    """Hand yaw target change per unit action per control step [rad]."""
    close_closure: float = 0.6
    """Closure commanded when the gripper action is > 0 (the scripted expert's grip)."""
    ik_iters: int = 2
    """Damped least-squares iterations per step (warm-started; the target moves <= 1 cm a step)."""
    workspace_lo: tuple[float, float, float] = (0.10, -0.30, 0.03)
    """Lower corner of the box the jaw-centre target stays in (env frame) [m]."""
    workspace_hi: tuple[float, float, float] = (0.45, 0.30, 0.25)


def commanded_closure(env) -> torch.Tensor:
    """[N] gripper closure commanded by the task's action term, whichever interface it has (0 open, 1 closed)."""
    for name in env.action_manager.active_terms:
        term = env.action_manager.get_term(name)
        if hasattr(term, "commanded_closure"):
            return term.commanded_closure
    raise ValueError(f"no action term of this task commands the gripper (terms: {env.action_manager.active_terms})")
