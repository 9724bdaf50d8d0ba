"""Binary success (get_info) of the box grasp: the box is lifted and held between both pads for a while.

Each control step the box is *grasped* when the gripper is commanded closing, the box centre lies between
the finger pads, and both pads are on the box: each pad's contact sensor (Isaac Lab's ``ContactSensor``,
filtered to the box) reports a normal force of at least :attr:`SuccessCfg.min_pad_force`, or, in a scene
without those sensors, the jaw gap is about the box width (the geometric test). The box is *lifted* when it
is >= :attr:`SuccessCfg.lift_height` above its resting height. ``held_steps`` counts the consecutive steps
that are both; any step that is not resets it. Success = ``held_steps`` reaches :attr:`SuccessCfg.hold_steps`
(10 steps = 0.2 s at 50 Hz): a box flung upward or pinched for a step does not count, a grasp that slips
out before the hold is complete does not either. Success ends the episode with reward 1 (in the VLA task;
see :attr:`SuccessCfg.terminate`).

Each step ``env.extras["success"]`` holds the per-env flag; when episodes end, ``env.extras["episodes"]``
holds one record per finished episode (see :data:`FAILURE_CATEGORIES`) and ``env.extras["log"]`` their
success rate (``Metrics/success_rate``, which rsl-rl logs). In a scene with distractor boxes (the DR task) only
the target (the ``box`` asset, the one the instruction names) counts; the gripper closing on a distractor (fixed
obstacles: the geometric grasp test, :func:`distractor_grasped`) ends the episode as ``wrong_object``.

The counting is :class:`HoldTracker` (pure torch, driven by per-step facts); :class:`GraspMonitor` reads
those facts from the simulator and is the task's termination term.
"""

from __future__ import annotations

import torch

from isaaclab.managers import ManagerTermBase
from isaaclab.utils import configclass
from isaaclab.utils.math import quat_apply, quat_apply_inverse

from openarm_vla.action_space import finger_pos_to_closure
from openarm_vla.robots import openarm_spec as spec

from .actions import commanded_closure
from .events import env_id_tensor
from .observations import PAD_SENSORS, hand_pose_w, pad_forces, pad_sensors
from .variation import scene_variation

FAILURE_CATEGORIES = ("success", "miss_grasp", "wrong_position", "timeout", "dropped", "knocked_off", "wrong_object")
"""Index = code stored in the episode record's ``failure`` field."""

NEAR_DIST = 0.03  # jaw centre within this of the box centre counts as "at the box" [m]
DROP_LIFT = 0.02  # a grasp that lifted the box at least this far and did not succeed is "dropped" [m]


@configclass
class SuccessCfg:
    """What counts as a successful grasp (the env config's ``success`` field: ``env.success.hold_steps=20``)."""

    lift_height: float = 0.10
    """The box must be at least this far above its resting height [m]."""
    hold_steps: int = 10
    """Consecutive control steps the box must be grasped and lifted (10 = 0.2 s at 50 Hz)."""
    min_pad_force: float = 0.2
    """A pad is on the box when its contact sensor reports at least this normal force from the box [N]."""
    terminate: bool = True
    """Success ends the episode (the VLA task). The State task keeps going, so a PPO policy paid per step for
    holding the box is not paid to stop short of completing the hold; its episode counts as a success once
    the hold completed (the same episodes the terminating rule would have counted)."""


def jaw_frame_offset(box_pos_w, hand_pos_w, hand_quat_w) -> torch.Tensor:
    """Box centre in the hand frame, relative to the jaw centre."""
    rel = quat_apply_inverse(hand_quat_w, box_pos_w - hand_pos_w)
    return rel - torch.tensor(spec.JAW_CENTER_OFFSET, device=rel.device)


def half_extent_along(axis_w: torch.Tensor, box_quat_w: torch.Tensor, box_size: torch.Tensor) -> torch.Tensor:
    """Half the box's extent along a world direction [N, 3] (its support function): sum_i |a . e_i| s_i / 2."""
    a = quat_apply_inverse(box_quat_w, axis_w)
    return 0.5 * (a.abs() * box_size).sum(dim=1)


def box_centred_in_jaw(rel: torch.Tensor, finger_q: torch.Tensor, half_x: torch.Tensor) -> torch.Tensor:
    """Whether the box centre (``rel``, jaw frame) lies between the pads.

    ``half_x``: the box's half extent along the hand's x axis. Pads span x in [-0.01, 0.01] and about z in
    [-0.045, 0.03] around the jaw centre; the gap is 2 q - 0.0036.
    """
    half_gap = finger_q - spec.PAD_INSET + 0.006  # centre to pad inner face
    in_x = rel[:, 0].abs() < half_x + 0.01
    in_y = rel[:, 1].abs() < half_gap.clamp(min=0.0) + 0.004
    in_z = (rel[:, 2] > -0.05) & (rel[:, 2] < 0.035)
    return in_x & in_y & in_z


def pads_touch_by_gap(finger_q: torch.Tensor, half_y: torch.Tensor) -> torch.Tensor:
    """The geometric stand-in for contact sensing: the jaw gap is about as wide as the box along the finger
    axis (``half_y``: the box's half extent along it), not wide open."""
    half_gap = finger_q - spec.PAD_INSET + 0.006
    return (2.0 * half_gap) < (2.0 * half_y + 0.012)


def box_between_fingers(rel: torch.Tensor, finger_q: torch.Tensor, half_x: torch.Tensor, half_y: torch.Tensor) -> torch.Tensor:
    """The purely geometric grasp test: box centred in the jaw and the gap closed on it."""
    return box_centred_in_jaw(rel, finger_q, half_x) & pads_touch_by_gap(finger_q, half_y)


def distractor_grasped(env, hand_p: torch.Tensor, hand_q: torch.Tensor, finger_q: torch.Tensor) -> torch.Tensor:
    """[N] some distractor box lies centred in the jaw with the gap closed to its width (:func:`box_between_fingers`;
    parked ones are far below the table): the gripper is on the wrong object."""
    term = scene_variation(env)
    hit = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    if term is None:
        return hit
    axes = torch.eye(3, device=hand_p.device)
    hand_x, hand_y = (quat_apply(hand_q, axes[k].expand_as(hand_p)) for k in (0, 1))
    for i in range(term.num_slots):
        data = env.scene[f"distractor_{i}"].data
        pos, quat = data.root_pos_w.torch, data.root_quat_w.torch
        size = term.slot_size[i].expand_as(pos)
        rel = jaw_frame_offset(pos, hand_p, hand_q)
        hit |= box_between_fingers(rel, finger_q, half_extent_along(hand_x, quat, size),
                                   half_extent_along(hand_y, quat, size))
    return hit


class HoldTracker:
    """Per-env hold counting and episode statistics, from per-step facts (no simulator).

    :meth:`update` takes this step's facts; :attr:`success` is true on the step the hold completes.
    """

    def __init__(self, num_envs: int, device: str | torch.device = "cpu"):
        n, dev = num_envs, device
        self.success = torch.zeros(n, dtype=torch.bool, device=dev)
        """This step: the hold is complete (``held_steps >= hold_steps``)."""
        self.succeeded = torch.zeros(n, dtype=torch.bool, device=dev)
        """The hold completed at some step of this episode."""
        self.grasped = torch.zeros(n, dtype=torch.bool, device=dev)
        """This step: closing, box between the pads, both pads on it."""
        self.held_steps = torch.zeros(n, dtype=torch.long, device=dev)
        """Consecutive steps grasped and lifted, up to and including this one."""
        self.max_held_steps = torch.zeros(n, dtype=torch.long, device=dev)
        self.lift = torch.zeros(n, device=dev)
        self.max_lift = torch.zeros(n, device=dev)
        self.ever_grasped = torch.zeros(n, dtype=torch.bool, device=dev)
        self.closed_near = torch.zeros(n, dtype=torch.bool, device=dev)
        self.closed_far = torch.zeros(n, dtype=torch.bool, device=dev)
        self.knocked = torch.zeros(n, dtype=torch.bool, device=dev)
        self.wrong_object = torch.zeros(n, dtype=torch.bool, device=dev)
        """The gripper closed on a distractor (not the named box): ends the episode as a failure."""

    def update(self, grasped: torch.Tensor, lift: torch.Tensor, closing: torch.Tensor, near: torch.Tensor,
               knocked: torch.Tensor, lift_height: float, hold_steps: int, wrong_object: torch.Tensor | None = None) -> torch.Tensor:
        """One control step; returns (and stores) the success flags [N]."""
        if hold_steps < 1:
            raise ValueError(f"success hold_steps must be >= 1, got {hold_steps}")
        self.grasped = grasped.clone()
        self.lift = lift.clone()
        holding = grasped & (lift >= lift_height)
        self.held_steps = torch.where(holding, self.held_steps + 1, torch.zeros_like(self.held_steps))
        self.max_held_steps = torch.maximum(self.max_held_steps, self.held_steps)
        self.success = self.held_steps >= hold_steps
        self.succeeded |= self.success
        self.max_lift = torch.maximum(self.max_lift, lift)
        self.ever_grasped |= grasped
        self.closed_near |= closing & near
        self.closed_far |= closing & ~near
        self.knocked |= knocked
        if wrong_object is not None:
            self.wrong_object |= wrong_object
        return self.success

    def failure_codes(self, env_ids: torch.Tensor) -> torch.Tensor:
        """Category (index into :data:`FAILURE_CATEGORIES`) of the episodes of ``env_ids``, ending now."""
        code = torch.full_like(env_ids, 3, dtype=torch.long)  # timeout
        code[self.closed_far[env_ids] & ~self.closed_near[env_ids]] = 2  # wrong_position
        code[self.closed_near[env_ids] & ~self.ever_grasped[env_ids]] = 1  # miss_grasp
        code[self.ever_grasped[env_ids] & (self.max_lift[env_ids] >= DROP_LIFT)] = 4  # dropped
        code[self.knocked[env_ids]] = 5  # knocked_off
        code[self.wrong_object[env_ids]] = 6  # wrong_object
        code[self.succeeded[env_ids]] = 0
        return code

    def clear(self, env_ids: torch.Tensor) -> None:
        for buf in (self.success, self.succeeded, self.grasped, self.ever_grasped, self.closed_near, self.closed_far, self.knocked,
                    self.wrong_object):
            buf[env_ids] = False
        for buf in (self.held_steps, self.max_held_steps):
            buf[env_ids] = 0
        self.max_lift[env_ids] = 0.0
        self.lift[env_ids] = 0.0


class GraspMonitor(ManagerTermBase):
    """Termination term that detects success (the config is the env's ``success`` field, :class:`SuccessCfg`)
    and keeps the per-episode statistics."""

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        n, dev = env.num_envs, env.device
        self.robot = env.scene["robot"]
        self.box = env.scene["box"]
        ids, _ = self.robot.find_joints(list(spec.FINGER_JOINTS), preserve_order=True)
        self.finger_ids = list(ids)
        self.pad_sensors = pad_sensors(env)
        if len(self.pad_sensors) not in (0, len(PAD_SENSORS)):
            raise ValueError(f"the scene has only some of the pad contact sensors {PAD_SENSORS}; add both or none")
        cfg_s = env.cfg.success
        if int(cfg_s.hold_steps) < 1 or not cfg_s.lift_height > 0:
            raise ValueError(f"env.success: hold_steps must be >= 1 and lift_height > 0, got hold_steps="
                             f"{cfg_s.hold_steps}, lift_height={cfg_s.lift_height}")
        self.tracker = HoldTracker(n, dev)
        self.rest_z = torch.zeros(n, device=dev)
        self.box_size = torch.full((n, 3), 0.06, device=dev)
        self.closure = torch.zeros(n, device=dev)
        self.pads_on_box = torch.zeros(n, dtype=torch.bool, device=dev)

    # the tracker's state, read by the reward terms and tests
    success = property(lambda self: self.tracker.success)
    succeeded = property(lambda self: self.tracker.succeeded)
    grasped = property(lambda self: self.tracker.grasped)
    held_steps = property(lambda self: self.tracker.held_steps)
    lift = property(lambda self: self.tracker.lift)
    max_lift = property(lambda self: self.tracker.max_lift)

    @property
    def uses_contact_sensors(self) -> bool:
        return bool(self.pad_sensors)

    def set_box_geometry(self, env_ids, rest_z: torch.Tensor, size: torch.Tensor) -> None:
        """Called by the box reset event: where the box rests and its size [len(env_ids), 3]."""
        self.rest_z[env_ids] = rest_z
        self.box_size[env_ids] = size

    def pad_forces(self) -> torch.Tensor:
        """[N, 2] normal force from the box on the (left, right) pad [N] (the contact sensors)."""
        return pad_forces(self._env)

    def __call__(self, env, table_margin: float = 0.05) -> torch.Tensor:
        cfg: SuccessCfg = env.cfg.success
        box_w = self.box.data.root_pos_w.torch
        hand_p, hand_q = hand_pose_w(env)
        finger_q = self.robot.data.joint_pos.torch[:, self.finger_ids].mean(dim=1)
        closing = commanded_closure(env) > 0.5
        rel = jaw_frame_offset(box_w, hand_p, hand_q)
        box_q = self.box.data.root_quat_w.torch
        axes = torch.eye(3, device=rel.device)
        half_x = half_extent_along(quat_apply(hand_q, axes[0].expand_as(rel)), box_q, self.box_size)
        if self.pad_sensors:
            self.pads_on_box = (self.pad_forces() >= cfg.min_pad_force).all(dim=1)
        else:
            half_y = half_extent_along(quat_apply(hand_q, axes[1].expand_as(rel)), box_q, self.box_size)
            self.pads_on_box = pads_touch_by_gap(finger_q, half_y)
        grasped = closing & box_centred_in_jaw(rel, finger_q, half_x) & self.pads_on_box
        box_z = box_w[:, 2] - env.scene.env_origins[:, 2]
        near = rel.norm(dim=1) < NEAR_DIST
        wrong = closing & distractor_grasped(env, hand_p, hand_q, finger_q)
        self.tracker.update(grasped, box_z - self.rest_z, closing, near, box_z < -table_margin,
                            cfg.lift_height, cfg.hold_steps, wrong & ~self.tracker.succeeded)
        self.closure = finger_pos_to_closure(finger_q)
        env.extras["success"] = self.success
        env.extras["episodes"] = None  # filled by reset() for the envs that finish this step
        if not cfg.terminate:
            return torch.zeros_like(self.success)
        return self.success | self.tracker.wrong_object  # closing on a distractor ends the episode too

    def failure_codes(self, env_ids) -> torch.Tensor:
        return self.tracker.failure_codes(env_ids)

    def reset(self, env_ids=None):
        env = self._env
        env_ids = env_id_tensor(env, env_ids)
        steps = env.episode_length_buf[env_ids]
        done = env_ids[steps > 0]
        if len(done):
            t = self.tracker
            env.extras["episodes"] = {
                "env_ids": done,
                "success": t.succeeded[done].clone(),
                "steps": env.episode_length_buf[done].clone(),
                "max_lift": t.max_lift[done].clone(),
                "gripper": self.closure[done].clone(),
                "failure": t.failure_codes(done),
                "max_held_steps": t.max_held_steps[done].clone(),
            }
            # rsl-rl (and Isaac Lab's train scripts) log extras["log"]: the success curve of a PPO run
            env.extras.setdefault("log", {})["Metrics/success_rate"] = t.succeeded[done].float().mean().item()
        self.tracker.clear(env_ids)
