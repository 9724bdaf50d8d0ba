"""Scripted box-grasp expert: a vectorized per-env state machine over the 8-DoF action interface.

Phases (one per env, all envs advance independently)::

    APPROACH  jaw centre to (box x, box y, box z + approach_height), hand pointing down at the grasp yaw
    DESCEND   straight down to the grasp height (box centre + grasp_dz), gripper open
    CLOSE     hold the pose, gripper closed, for close_steps control steps
    LIFT      carry the box up (and back toward the base, where a top-down hand reaches highest)
    HOLD      hold the lift pose with the gripper closed (success normally ends the episode before)

Each control step the expert moves a commanded jaw pose (position + hand yaw) toward the phase goal by
at most ``speed * dt`` (and ``yaw_rate * dt``), turns it into arm joint targets with a few damped
least-squares IK iterations warm-started from the previous joint target (the measured joint angles at
the first step of an episode), limits the per-step joint change, and maps the targets to the
normalized action with :func:`joint_targets_to_action`. Only privileged observations are read (box
pose, joint angles, jaw-centre position), never the simulator itself.

The IK is :func:`openarm_vla.robots.kinematics.ik_dls` (analytic Jacobian, ~1 ms per iteration), which
matters because the expert runs it every step.

Grasp yaw: the box is grasped from the top, fingers closing across a pair of its faces; a box yaw psi
can be grasped at hand yaw ``pi + psi + k pi/2``. At the start of each episode the expert tries the
candidates k = -1, 0, 1 with a longer IK solve at the grasp and approach poses and keeps the reachable
one closest to the hand's comfortable yaw (pi, shifted toward +yaw for boxes at +y).

Reachability facts (OpenArm v10, base at the table top): a downward-pointing hand reaches jaw heights
up to about 0.16 m for x <= 0.26 m but only ~0.12 m at x = 0.34 m, hence the lift goal moves the box
back toward x = ``lift_x_max`` while raising it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from openarm_vla.action_space import joint_targets_to_action
from openarm_vla.robots import openarm_spec as spec
from openarm_vla.robots.kinematics import down_rotation, fk_jacobian, ik_dls

__all__ = ["ExpertCfg", "ScriptedExpert", "ScriptedPolicy", "PHASES", "yaw_from_quat_xyzw"]

PHASES = ("approach", "descend", "close", "lift", "hold")
APPROACH, DESCEND, CLOSE, LIFT, HOLD = range(len(PHASES))


def yaw_from_quat_xyzw(quat: torch.Tensor) -> torch.Tensor:
    """Yaw (rotation about z) of xyzw quaternions [N, 4]."""
    x, y, z, w = quat.unbind(-1)
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi


# --------------------------------------------------------------------------------------------------
# the expert
# --------------------------------------------------------------------------------------------------


@dataclass
class ExpertCfg:
    dt: float = 0.02
    """Control period [s] (the task runs at 50 Hz)."""
    approach_height: float = 0.08
    """Jaw centre above the box centre at the end of APPROACH [m]."""
    grasp_dz: float = 0.004
    """Jaw centre above the box centre when closing [m] (pads reach ~3 cm below the jaw centre). Low, so
    that the box (which creeps down a little in the soft grasp) still clears the 10 cm lift."""
    min_grasp_z: float = 0.034
    """Lowest jaw-centre height [m], keeps the fingertips off the table."""
    max_approach_z: float = 0.115
    """Cap on the approach height [m] (a down-pointing hand reaches only ~0.12 m at x = 0.34 m)."""
    lift_z: float = 0.162
    """Jaw-centre height of the lift goal [m] (near the top of the down-pointing workspace)."""
    lift_x_max: float = 0.22
    """The lift goal pulls the box back to x <= this [m], where the hand reaches higher."""
    lift_y_scale: float = 0.5
    """The lift goal's y is the grasp y times this."""
    approach_speed: float = 0.25
    descend_speed: float = 0.12
    lift_speed: float = 0.20
    """Jaw-centre speeds [m/s] of the commanded waypoint in each phase."""
    yaw_rate: float = 1.5
    """Hand yaw rate of the commanded waypoint [rad/s]."""
    close_steps: int = 20
    """Control steps the gripper closes in place before lifting (0.4 s at 50 Hz)."""
    grip_closure: float = 0.6
    """Commanded gripper closure while holding (0.5 < g <= 1; the success check needs g > 0.5). Not 1: the
    finger drives are stiff and MuJoCo contacts soft, so a fully closed command squeezes the pads deep
    into the box and can pop it out sideways; g = 0.6 (fingers driven to 17.6 mm) limits the squeeze,
    and the box also creeps down less in the grasp than with 0.7 or 0.85 (measured)."""
    close_ramp_steps: int = 10
    """Control steps over which the closure command ramps from 0 to ``grip_closure``."""
    settle_tol: float = 0.006
    """The measured jaw centre must be within this of the phase goal to leave APPROACH/DESCEND [m]."""
    phase_timeout: int = 120
    """Steps after which APPROACH/DESCEND move on even if the tolerance is not met."""
    ik_iters: int = 10
    """DLS iterations per control step (warm-started, the waypoint moves a few mm per step)."""
    plan_iters: int = 60
    """DLS iterations of the per-episode reachability check of the grasp-yaw candidates."""
    max_joint_step: float = 0.06
    """Largest change of an arm joint target per control step [rad]."""
    yaw_bias_per_m: float = 2.0
    """Preferred hand yaw = pi + this * box y [rad]: the arm reaches +y boxes better turned to +yaw."""
    reach_tol: float = 0.004
    """A grasp-yaw candidate counts as reachable when the IK position error is below this [m]."""


class ScriptedExpert:
    """Vectorized approach-descend-close-lift expert for OpenArm-BoxGrasp.

    Args:
        num_envs: number of envs it acts for.
        device: torch device of the observations/actions.
        cfg: :class:`ExpertCfg` (defaults tuned for the CPU Newton/MJWarp scene).
        verbose: print the FK-vs-simulator jaw-centre check once.

    Usage::

        expert = ScriptedExpert(env.num_envs, env.device)
        obs, _ = env.reset()
        while True:
            actions = expert.act(obs["privileged"])
            obs, rew, term, trunc, extras = env.step(actions)
            expert.reset((term | trunc).nonzero().flatten())  # episodes that ended restart
    """

    def __init__(self, num_envs: int, device: str | torch.device = "cpu", cfg: ExpertCfg | None = None, verbose: bool = True):
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.cfg = cfg or ExpertCfg()
        self.verbose = verbose
        n, dev, f64 = num_envs, self.device, torch.float64
        self.lower = torch.tensor(spec.ARM_LOWER, device=dev, dtype=f64)
        self.upper = torch.tensor(spec.ARM_UPPER, device=dev, dtype=f64)
        self.phase = torch.zeros(n, dtype=torch.long, device=dev)
        self.phase_steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.needs_init = torch.ones(n, dtype=torch.bool, device=dev)
        self.q_cmd = torch.zeros(n, 7, device=dev, dtype=f64)
        self.pos_cmd = torch.zeros(n, 3, device=dev, dtype=f64)
        self.yaw_cmd = torch.zeros(n, device=dev, dtype=f64)
        self.grasp_yaw = torch.full((n,), math.pi, device=dev, dtype=f64)
        self.grasp_xyz = torch.zeros(n, 3, device=dev, dtype=f64)  # box centre, frozen when closing
        self.closure = torch.zeros(n, device=dev, dtype=f64)
        self.fk_error: float | None = None
        """Max |FK(joint_pos) - tcp_pos| seen at the first call [m] (analytic kinematics vs simulator)."""

    # -- public API -------------------------------------------------------------------------------
    def reset(self, env_ids=None) -> None:
        """Restart the state machine of ``env_ids`` (all if None); it re-plans at their next :meth:`act`."""
        ids = self._ids(env_ids)
        if ids.numel() == 0:
            return
        self.phase[ids] = APPROACH
        self.phase_steps[ids] = 0
        self.needs_init[ids] = True
        self.closure[ids] = 0.0

    @property
    def phase_names(self) -> list[str]:
        return [PHASES[i] for i in self.phase.tolist()]

    @torch.no_grad()
    def act(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Actions [N, 8] in [-1, 1] from the ``privileged`` observation group (dict of [N, ...] tensors)."""
        cfg = self.cfg
        f64 = torch.float64
        joint = obs["joint_pos"].to(self.device, f64)
        box_pos = obs["box_pos"].to(self.device, f64)
        box_yaw = yaw_from_quat_xyzw(obs["box_quat"].to(self.device, f64))
        tcp = obs["tcp_pos"].to(self.device, f64)
        q_meas = joint[:, :7]

        if self.fk_error is None:
            p_fk, _, _ = fk_jacobian(q_meas)
            self.fk_error = float((p_fk - tcp).norm(dim=1).max())
            if self.verbose:
                print(f"[ScriptedExpert] analytic FK vs simulator jaw centre: max |diff| = {self.fk_error * 1000:.2f} mm")

        init = self.needs_init.nonzero().flatten()
        if init.numel():
            self._plan(init, q_meas[init], box_pos[init], box_yaw[init], tcp[init])

        # boxes are tracked until the gripper closes, then the grasp point is frozen
        self.grasp_xyz = torch.where((self.phase <= DESCEND)[:, None], box_pos, self.grasp_xyz)

        goal_pos, goal_yaw, speed = self._goals()
        # move the commanded waypoint toward the goal (rate-limited)
        delta = goal_pos - self.pos_cmd
        dist = delta.norm(dim=1, keepdim=True)
        step = (speed * cfg.dt).unsqueeze(1)
        self.pos_cmd = self.pos_cmd + delta * (step / dist.clamp(min=1e-9)).clamp(max=1.0)
        dyaw = _wrap(goal_yaw - self.yaw_cmd)
        self.yaw_cmd = self.yaw_cmd + dyaw.clamp(-cfg.yaw_rate * cfg.dt, cfg.yaw_rate * cfg.dt)

        q_new, _, _ = ik_dls(self.q_cmd, self.pos_cmd, down_rotation(self.yaw_cmd), iters=cfg.ik_iters)
        self.q_cmd = self.q_cmd + (q_new - self.q_cmd).clamp(-cfg.max_joint_step, cfg.max_joint_step)

        # phase transitions
        at_goal = ((goal_pos - self.pos_cmd).norm(dim=1) < 1e-4) & (_wrap(goal_yaw - self.yaw_cmd).abs() < 1e-3)
        settled = at_goal & ((tcp - goal_pos).norm(dim=1) < cfg.settle_tol)
        timed_out = self.phase_steps >= cfg.phase_timeout
        advance = torch.zeros_like(self.needs_init)
        advance |= (self.phase == APPROACH) & (settled | timed_out)
        advance |= (self.phase == DESCEND) & (settled | timed_out)
        advance |= (self.phase == CLOSE) & (self.phase_steps >= cfg.close_steps)
        advance |= (self.phase == LIFT) & at_goal
        ramp = cfg.grip_closure / max(cfg.close_ramp_steps, 1)
        self.closure = torch.where(
            self.phase >= CLOSE, (self.closure + ramp).clamp(max=cfg.grip_closure), torch.zeros_like(self.closure)
        )

        actions = joint_targets_to_action(self.q_cmd, self.closure, self.lower, self.upper)

        self.phase = torch.where(advance, (self.phase + 1).clamp(max=HOLD), self.phase)
        self.phase_steps = torch.where(advance, 0, self.phase_steps + 1)
        return actions.to(obs["joint_pos"].dtype)

    # -- internals --------------------------------------------------------------------------------
    def _ids(self, env_ids) -> torch.Tensor:
        if env_ids is None:
            return torch.arange(self.num_envs, device=self.device)
        if isinstance(env_ids, slice):
            return torch.arange(self.num_envs, device=self.device)[env_ids]
        return torch.as_tensor(env_ids, device=self.device, dtype=torch.long).flatten()

    def _grasp_z(self, box_z: torch.Tensor) -> torch.Tensor:
        return (box_z + self.cfg.grasp_dz).clamp(min=self.cfg.min_grasp_z)

    def _approach_z(self, box_z: torch.Tensor) -> torch.Tensor:
        return (box_z + self.cfg.approach_height).clamp(max=self.cfg.max_approach_z)

    def _plan(self, ids, q_meas, box_pos, box_yaw, tcp) -> None:
        """Start an episode: choose the reachable grasp yaw closest to the preferred one."""
        cfg = self.cfg
        n = ids.numel()
        ks = torch.tensor([-1.0, 0.0, 1.0], device=self.device, dtype=torch.float64)
        psi = _wrap(box_yaw)
        cand = math.pi + psi.unsqueeze(1) + ks.unsqueeze(0) * (math.pi / 2)  # [n, 3]
        cand = torch.remainder(cand, 2.0 * math.pi)  # [0, 2pi): the hand's usable yaws lie around pi
        m = cand.shape[1]
        # every (height, yaw) candidate of every env in one IK batch: [grasp height, approach height] x n x m
        heights = torch.stack([self._grasp_z(box_pos[:, 2]), self._approach_z(box_pos[:, 2])])  # [2, n]
        target = torch.stack([box_pos[:, 0].expand(2, n), box_pos[:, 1].expand(2, n), heights], dim=-1)
        target = target.repeat_interleave(m, dim=1).reshape(2 * n * m, 3)
        q0 = q_meas.repeat_interleave(m, dim=0).repeat(2, 1)
        _, perr, rerr = ik_dls(q0, target, down_rotation(cand.reshape(-1).repeat(2)), iters=cfg.plan_iters)
        ok = ((perr < cfg.reach_tol) & (rerr < 0.05)).reshape(2, n * m).all(dim=0)
        preferred = math.pi + cfg.yaw_bias_per_m * box_pos[:, 1]
        cost = (cand - preferred.unsqueeze(1)).abs() + 10.0 * (~ok.reshape(n, m)).double()
        best = cost.argmin(dim=1)
        self.grasp_yaw[ids] = cand[torch.arange(n, device=self.device), best]
        self.q_cmd[ids] = q_meas
        self.pos_cmd[ids] = tcp
        p, R, _ = fk_jacobian(q_meas)
        self.yaw_cmd[ids] = torch.remainder(torch.atan2(R[:, 1, 0], R[:, 0, 0]), 2.0 * math.pi)
        self.grasp_xyz[ids] = box_pos
        self.phase[ids] = APPROACH
        self.phase_steps[ids] = 0
        self.needs_init[ids] = False

    def _goals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        g = self.grasp_xyz
        approach = torch.stack([g[:, 0], g[:, 1], self._approach_z(g[:, 2])], dim=1)
        grasp = torch.stack([g[:, 0], g[:, 1], self._grasp_z(g[:, 2])], dim=1)
        lift = torch.stack(
            [g[:, 0].clamp(max=cfg.lift_x_max), g[:, 1] * cfg.lift_y_scale, torch.full_like(g[:, 0], cfg.lift_z)], dim=1
        )
        ph = self.phase.unsqueeze(1)
        goal = torch.where(ph == APPROACH, approach, torch.where(ph == LIFT, lift, torch.where(ph >= CLOSE, self.pos_cmd, grasp)))
        # CLOSE/HOLD keep the current waypoint (HOLD: the lift goal once reached)
        goal = torch.where(ph == DESCEND, grasp, goal)
        lift_yaw = torch.full_like(self.grasp_yaw, math.pi)
        yaw = torch.where(self.phase == LIFT, lift_yaw, torch.where(self.phase >= CLOSE, self.yaw_cmd, self.grasp_yaw))
        speed = torch.full_like(self.grasp_yaw, cfg.approach_speed)
        speed = torch.where(self.phase == DESCEND, torch.full_like(speed, cfg.descend_speed), speed)
        speed = torch.where(self.phase >= CLOSE, torch.full_like(speed, cfg.lift_speed), speed)
        return goal, yaw, speed


class ScriptedPolicy:
    """The policy ``expert``: :class:`ScriptedExpert` fed from the env's ``privileged`` observation group."""

    def __init__(self, num_envs: int, device, cfg: ExpertCfg | None = None, verbose: bool = True):
        self.expert = ScriptedExpert(num_envs, device, cfg, verbose=verbose)

    def __call__(self, obs) -> torch.Tensor:
        return self.expert.act(obs["privileged"])

    def reset(self, env_ids=None) -> None:
        self.expert.reset(env_ids)
