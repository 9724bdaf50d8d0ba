"""End-effector deltas -> the VLA's 8-DoF normalized joint action, through damped least-squares IK.

Teleop drives it (keyboard deltas, :mod:`openarm_vla.teleop`), and so does the State task's top-down action
(:class:`TopDownDeltaController`: the PPO teacher's interface). A command is a pose delta of the tool centre point (TCP, :data:`openarm_spec.TCP_OFFSET` in the
hand frame) in the robot base frame (= env frame: the base sits at the env origin, unrotated):
``(dx, dy, dz)`` in metres and ``(droll, dpitch, dyaw)`` in radians (rotation about the base x, y, z axes,
applied as Rz(dyaw) Ry(dpitch) Rx(droll) on the left of the current TCP rotation, i.e. about the TCP
point), plus a gripper closure in [0, 1].

The delta moves a commanded TCP target pose; damped least-squares IK (:func:`openarm_vla.robots.kinematics.ik_dls`,
analytic Jacobian), warm-started from the previous joint target, turns it into arm joint targets, and
:func:`joint_targets_to_action` turns those into the normalized action a in [-1, 1]^8. So the env's action
stays the VLA's 8-DoF action and a recorded teleop demo holds exactly what the VLA must learn.

Pure function: :func:`ee_delta_to_action`. Stateful, per env: :class:`EEDeltaController` (target pose,
joint target, gripper state; re-synced to the reached pose when the target leaves the arm's reach, so
holding a key against a joint limit does not wind up a phantom target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from openarm_vla.action_space import joint_limits, joint_targets_to_action
from openarm_vla.robots import openarm_spec as spec
from openarm_vla.robots.kinematics import down_rotation, fk_jacobian, ik_dls

__all__ = ["EEDeltaCfg", "EEDeltaController", "EEDeltaResult", "TopDownDeltaController", "ee_delta_to_action",
           "rpy_to_matrix"]


@dataclass
class EEDeltaCfg:
    """Teleop IK settings (all per control step, 50 Hz)."""

    offset: tuple[float, float, float] = spec.TCP_OFFSET
    """Controlled point in the hand frame [m]."""
    ik_iters: int = 8
    """Damped least-squares iterations per step (warm-started, so a few suffice)."""
    ik_damping: float = 0.02
    rot_weight: float = 0.5
    max_joint_step: float = 0.2
    """Trust region of one IK iteration [rad]."""
    workspace_lo: tuple[float, float, float] = (-0.05, -0.55, 0.005)
    """Lower corner of the box the TCP target is clamped to (base frame) [m]; z >= table top."""
    workspace_hi: tuple[float, float, float] = (0.65, 0.55, 0.70)
    resync_pos_err: float = 0.01
    """If IK misses the target by more than this [m] (or ``resync_rot_err`` rad), the target snaps to the
    reached pose."""
    resync_rot_err: float = 0.1


@dataclass
class EEDeltaResult:
    action: torch.Tensor
    """[N, 8] normalized action."""
    q: torch.Tensor
    """[N, 7] arm joint targets."""
    target_pos: torch.Tensor
    """[N, 3] commanded TCP position (after the workspace clamp)."""
    target_rot: torch.Tensor
    """[N, 3, 3] commanded TCP rotation."""
    pos_err: torch.Tensor
    """[N] IK position residual [m]."""
    rot_err: torch.Tensor
    """[N] IK rotation residual [rad]."""


def rpy_to_matrix(rpy: torch.Tensor) -> torch.Tensor:
    """[N, 3] roll, pitch, yaw -> [N, 3, 3] = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r, p, y = rpy.unbind(-1)
    cr, sr, cp, sp, cy, sy = r.cos(), r.sin(), p.cos(), p.sin(), y.cos(), y.sin()
    row0 = torch.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], dim=-1)
    row1 = torch.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], dim=-1)
    row2 = torch.stack([-sp, cp * sr, cp * cr], dim=-1)
    return torch.stack([row0, row1, row2], dim=-2)


def ee_delta_to_action(
    q_arm: torch.Tensor,
    delta: torch.Tensor,
    closure: torch.Tensor | float,
    target_pos: torch.Tensor | None = None,
    target_rot: torch.Tensor | None = None,
    cfg: EEDeltaCfg | None = None,
) -> EEDeltaResult:
    """One teleop step: apply ``delta`` [N, 6] to the TCP target and solve IK from ``q_arm`` [N, 7].

    Args:
        q_arm: current arm joint target (or measured angles) [N, 7], the IK warm start.
        delta: (dx, dy, dz, droll, dpitch, dyaw) in the base frame [N, 6] (m, rad).
        closure: gripper closure in [0, 1] (scalar or [N]); 0 open, 1 closed.
        target_pos, target_rot: the commanded TCP pose to move from; default the FK pose of ``q_arm``.
        cfg: IK settings.

    Returns:
        :class:`EEDeltaResult` with the normalized 8-DoF action.
    """
    cfg = cfg or EEDeltaCfg()
    q_arm = q_arm.to(torch.float32)
    delta = delta.to(q_arm).reshape(q_arm.shape[0], 6)
    if target_pos is None or target_rot is None:
        p0, R0, _ = fk_jacobian(q_arm, cfg.offset)
        target_pos = p0 if target_pos is None else target_pos
        target_rot = R0 if target_rot is None else target_rot
    wlo = torch.tensor(cfg.workspace_lo, dtype=q_arm.dtype, device=q_arm.device)
    whi = torch.tensor(cfg.workspace_hi, dtype=q_arm.dtype, device=q_arm.device)
    pos = torch.minimum(torch.maximum(target_pos.to(q_arm) + delta[:, :3], wlo), whi)
    rot = rpy_to_matrix(delta[:, 3:]) @ target_rot.to(q_arm)
    q, pos_err, rot_err = ik_dls(
        q_arm, pos, rot, offset=cfg.offset, iters=cfg.ik_iters, damping=cfg.ik_damping,
        rot_weight=cfg.rot_weight, max_step=cfg.max_joint_step,
    )
    lo, hi = joint_limits(q)
    closure_t = torch.as_tensor(closure, dtype=q.dtype, device=q.device).expand(q.shape[0]).clamp(0.0, 1.0)
    action = joint_targets_to_action(q, closure_t, lo, hi)
    return EEDeltaResult(action, q, pos, rot, pos_err, rot_err)


class EEDeltaController:
    """Per-env teleop state: commanded TCP pose, arm joint target and gripper closure.

    Usage::

        ctrl = EEDeltaController(num_envs, device)
        ctrl.reset(joint_pos[:, :7], closure)    # after every env reset: the pose the arm holds
        action = ctrl.step(delta)                # [N, 8], feed to env.step
    """

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu", cfg: EEDeltaCfg | None = None):
        self.cfg = cfg or EEDeltaCfg()
        self.num_envs = num_envs
        self.device = torch.device(device)
        lo, hi = joint_limits(torch.zeros(1, device=self.device))
        self.q = ((lo + hi) / 2).expand(num_envs, 7).clone()
        self.closure = torch.zeros(num_envs, device=self.device)
        self.target_pos, self.target_rot, _ = fk_jacobian(self.q, self.cfg.offset)

    def _ids(self, env_ids) -> torch.Tensor | slice:
        if env_ids is None or isinstance(env_ids, slice):  # Isaac Lab's managers pass slice(None) for all envs
            return slice(None) if env_ids is None else env_ids
        return torch.as_tensor(env_ids, device=self.device, dtype=torch.long)

    def reset(self, q_arm: torch.Tensor, closure: torch.Tensor | float = 0.0, env_ids=None) -> None:
        """Sync to joint angles ``q_arm`` [n, 7] (the pose the arm holds after a reset)."""
        ids = self._ids(env_ids)
        q_arm = q_arm.to(self.device, torch.float32)
        self.q[ids] = q_arm
        self.closure[ids] = torch.as_tensor(closure, dtype=torch.float32, device=self.device).expand(q_arm.shape[0])
        p, R, _ = fk_jacobian(q_arm, self.cfg.offset)
        self.target_pos[ids] = p
        self.target_rot[ids] = R

    def toggle_gripper(self, env_ids=None) -> None:
        ids = self._ids(env_ids)
        self.closure[ids] = torch.where(self.closure[ids] > 0.5, 0.0, 1.0)

    @property
    def gripper_closed(self) -> torch.Tensor:
        return self.closure > 0.5


    def step(self, delta: torch.Tensor | None = None) -> torch.Tensor:
        """Apply ``delta`` [N, 6] (None: hold) and return the [N, 8] action."""
        if delta is None:
            delta = torch.zeros(self.num_envs, 6, device=self.device)
        res = ee_delta_to_action(self.q, delta.to(self.device), self.closure, self.target_pos, self.target_rot, self.cfg)
        self.q = res.q
        self.target_pos, self.target_rot = res.target_pos, res.target_rot
        missed = (res.pos_err > self.cfg.resync_pos_err) | (res.rot_err > self.cfg.resync_rot_err)
        if bool(missed.any()):  # out of reach: snap the target to the reached pose
            p, R, _ = fk_jacobian(res.q, self.cfg.offset)
            self.target_pos = torch.where(missed[:, None], p, self.target_pos)
            self.target_rot = torch.where(missed[:, None, None], R, self.target_rot)
        return res.action


class TopDownDeltaController(EEDeltaController):
    """Top-down end-effector deltas -> arm joint targets and gripper closure (pure torch, per env state).

    The commanded jaw centre (:data:`openarm_spec.JAW_CENTER_OFFSET`, env frame) moves by ``pos_scale * a[:3]``
    per control step and the hand yaw by ``yaw_scale * a[3]`` (the hand always points straight down); damped
    least-squares IK warm-started from the previous joint target turns the pose into arm joint targets. The
    gripper is binary: ``a[4] > 0`` closes it to ``close_closure``, else it opens. The target is clamped to a
    workspace box and to hand yaws in [pi/2, 3pi/2] (the arm's comfortable range pointing down), and snaps
    back to the reached pose when the IK misses it (no wind-up against a joint limit).

    A restriction of :class:`EEDeltaController`: the target rotation is ``down_rotation(yaw)``, not a
    composed delta, and only a position miss re-syncs it. The State task's action term runs it; the PPO teacher runs its own copy to act on the 8-DoF VLA task
    (:meth:`normalized_action`), so the same policy drives either env.
    """

    ACTION_DIM = 5

    def __init__(self, num_envs: int, device, pos_scale: float = 0.01, yaw_scale: float = 0.05,
                 close_closure: float = 0.6, ik_iters: int = 2,
                 workspace_lo=(0.10, -0.30, 0.03), workspace_hi=(0.45, 0.30, 0.25), resync_error: float = 0.02):
        super().__init__(num_envs, device, EEDeltaCfg(
            offset=spec.JAW_CENTER_OFFSET, ik_iters=ik_iters, workspace_lo=tuple(workspace_lo),
            workspace_hi=tuple(workspace_hi), resync_pos_err=resync_error, resync_rot_err=math.inf))
        self.pos_scale, self.yaw_scale, self.close_closure = pos_scale, yaw_scale, close_closure
        self.lower, self.upper = joint_limits(torch.zeros(1, device=self.device))
        self.yaw = torch.full((num_envs,), math.pi, device=self.device)

    @property
    def pos(self) -> torch.Tensor:
        """[N, 3] the commanded jaw centre (env frame)."""
        return self.target_pos

    def reset(self, q_arm: torch.Tensor, closure: torch.Tensor, env_ids=None) -> None:
        """Sync ``env_ids`` to the arm joint angles ``q_arm`` [n, 7] and gripper closure [n] it holds."""
        grip = (torch.as_tensor(closure, device=self.device, dtype=torch.float32) > 0.5).float() * self.close_closure
        super().reset(q_arm, grip, env_ids)
        ids = self._ids(env_ids)
        R = self.target_rot[ids]
        self.yaw[ids] = torch.remainder(torch.atan2(R[:, 1, 0], R[:, 0, 0]), 2.0 * math.pi)
        self.target_rot[ids] = down_rotation(self.yaw[ids])

    def step(self, actions: torch.Tensor) -> torch.Tensor:
        """Apply one control step's actions [N, 5] in [-1, 1]; returns the [N, 8] normalized action."""
        a = actions.to(self.device, torch.float32).clamp(-1.0, 1.0)
        self.yaw = (self.yaw + self.yaw_scale * a[:, 3]).clamp(0.5 * math.pi, 1.5 * math.pi)
        self.target_rot = down_rotation(self.yaw)
        self.closure = (a[:, 4] > 0.0).float() * self.close_closure
        return super().step(torch.cat([self.pos_scale * a[:, :3], torch.zeros_like(a[:, :3])], dim=1))

    def joint_targets(self) -> torch.Tensor:
        """[N, 9] joint position targets (7 arm joints, 2 fingers)."""
        finger = (spec.GRIPPER_OPEN * (1.0 - self.closure)).unsqueeze(1)
        return torch.cat([self.q, finger, finger], dim=1)

    def normalized_action(self) -> torch.Tensor:
        """The same command as the VLA task's 8-DoF normalized action [N, 8]."""
        return joint_targets_to_action(self.q, self.closure, self.lower, self.upper)
