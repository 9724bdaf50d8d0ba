"""Binary success (get_info) of the box grasp: the box is held between the fingers and lifted.

Success = the gripper is closing, the box centre lies between the finger pads (and the fingers have not
shut past it), AND the box is >= ``lift_height`` above its resting height. It ends the episode with reward 1.
Each step ``env.extras["success"]`` holds the per-env flag; when episodes end, ``env.extras["episodes"]``
holds one record per finished episode (see :data:`FAILURE_CATEGORIES`).
"""

from __future__ import annotations

import torch

from isaaclab.managers import ManagerTermBase
from isaaclab.utils.math import quat_apply, quat_apply_inverse

from openarm_vla.action_space import finger_pos_to_closure
from openarm_vla.robots import openarm_spec as spec

from .events import env_id_tensor
from .observations import hand_pose_w

FAILURE_CATEGORIES = ("success", "miss_grasp", "wrong_position", "timeout", "dropped", "knocked_off")
"""Index = code stored in the episode record's ``failure`` field."""

NEAR_DIST = 0.03  # jaw centre within this of the box centre counts as "at the box" [m]


def jaw_frame_offset(box_pos_w, hand_pos_w, hand_quat_w) -> torch.Tensor:
    """Box centre in the hand frame, relative to the jaw centre."""
    rel = quat_apply_inverse(hand_quat_w, box_pos_w - hand_pos_w)
    return rel - torch.tensor(spec.JAW_CENTER_OFFSET, device=rel.device)


def half_extent_along(axis_w: torch.Tensor, box_quat_w: torch.Tensor, box_size: torch.Tensor) -> torch.Tensor:
    """Half the box's extent along a world direction [N, 3] (its support function): sum_i |a . e_i| s_i / 2."""
    a = quat_apply_inverse(box_quat_w, axis_w)
    return 0.5 * (a.abs() * box_size).sum(dim=1)


def box_between_fingers(rel: torch.Tensor, finger_q: torch.Tensor, half_x: torch.Tensor, half_y: torch.Tensor) -> torch.Tensor:
    """Whether the box centre (``rel``, jaw frame) lies between the pads, with the pads on the box.

    ``half_x`` / ``half_y``: the box's half extents along the hand's x axis and along the finger axis (y).
    Pads span x in [-0.01, 0.01] and about z in [-0.045, 0.03] around the jaw centre; the gap is 2 q - 0.0036.
    """
    half_gap = finger_q - spec.PAD_INSET + 0.006  # centre to pad inner face
    in_x = rel[:, 0].abs() < half_x + 0.01
    in_y = rel[:, 1].abs() < half_gap.clamp(min=0.0) + 0.004
    in_z = (rel[:, 2] > -0.05) & (rel[:, 2] < 0.035)
    # the pads touch the box: the gap is about as wide as the box along the finger axis, not wide open
    touching = (2.0 * half_gap) < (2.0 * half_y + 0.012)
    return in_x & in_y & in_z & touching


class GraspMonitor(ManagerTermBase):
    """Termination term that detects success and keeps the per-episode statistics."""

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        n, dev = env.num_envs, env.device
        self.robot = env.scene["robot"]
        self.box = env.scene["box"]
        ids, _ = self.robot.find_joints(list(spec.FINGER_JOINTS), preserve_order=True)
        self.finger_ids = list(ids)
        self.rest_z = torch.zeros(n, device=dev)
        self.box_size = torch.full((n, 3), 0.06, device=dev)
        self.success = torch.zeros(n, dtype=torch.bool, device=dev)
        self.held = torch.zeros(n, dtype=torch.bool, device=dev)
        self.lift = torch.zeros(n, device=dev)
        self.max_lift = torch.zeros(n, device=dev)
        self.ever_held = torch.zeros(n, dtype=torch.bool, device=dev)
        self.closed_near = torch.zeros(n, dtype=torch.bool, device=dev)
        self.closed_far = torch.zeros(n, dtype=torch.bool, device=dev)
        self.knocked = torch.zeros(n, dtype=torch.bool, device=dev)
        self.closure = torch.zeros(n, device=dev)
        self.start_xy = torch.zeros(n, 2, device=dev)

    def set_box_geometry(self, env_ids, rest_z: torch.Tensor, size: torch.Tensor) -> None:
        """Called by the box reset event: where the box rests and its size [len(env_ids), 3]."""
        self.rest_z[env_ids] = rest_z
        self.box_size[env_ids] = size

    def __call__(self, env, lift_height: float = 0.10, table_margin: float = 0.05) -> torch.Tensor:
        box_w = self.box.data.root_pos_w.torch
        hand_p, hand_q = hand_pose_w(env)
        finger_q = self.robot.data.joint_pos.torch[:, self.finger_ids].mean(dim=1)
        command = env.action_manager.action[:, 7]
        closing = command > 0.0  # closure > 0.5
        rel = jaw_frame_offset(box_w, hand_p, hand_q)
        box_q = self.box.data.root_quat_w.torch
        axes = torch.eye(3, device=rel.device)
        half_x = half_extent_along(quat_apply(hand_q, axes[0].expand_as(rel)), box_q, self.box_size)
        half_y = half_extent_along(quat_apply(hand_q, axes[1].expand_as(rel)), box_q, self.box_size)
        between = box_between_fingers(rel, finger_q, half_x, half_y)
        self.held = closing & between
        box_z = box_w[:, 2] - env.scene.env_origins[:, 2]
        self.lift = box_z - self.rest_z
        self.success = self.held & (self.lift >= lift_height)

        near = rel.norm(dim=1) < NEAR_DIST
        self.max_lift = torch.maximum(self.max_lift, self.lift)
        self.ever_held |= self.held
        self.closed_near |= closing & near
        self.closed_far |= closing & ~near
        self.knocked |= box_z < -table_margin
        self.closure = finger_pos_to_closure(finger_q)
        env.extras["success"] = self.success
        env.extras["episodes"] = None  # filled by reset() for the envs that finish this step
        return self.success

    def failure_codes(self, env_ids) -> torch.Tensor:
        code = torch.full_like(env_ids, 3, dtype=torch.long)  # timeout
        code[self.closed_far[env_ids] & ~self.closed_near[env_ids]] = 2  # wrong_position
        code[self.closed_near[env_ids] & ~self.ever_held[env_ids]] = 1  # miss_grasp
        code[self.ever_held[env_ids] & (self.max_lift[env_ids] >= 0.02)] = 4  # dropped
        code[self.knocked[env_ids]] = 5  # knocked_off
        code[self.success[env_ids]] = 0
        return code

    def reset(self, env_ids=None):
        env = self._env
        env_ids = env_id_tensor(env, env_ids)
        steps = env.episode_length_buf[env_ids]
        done = env_ids[steps > 0]
        if len(done):
            env.extras["episodes"] = {
                "env_ids": done,
                "success": self.success[done].clone(),
                "steps": env.episode_length_buf[done].clone(),
                "max_lift": self.max_lift[done].clone(),
                "gripper": self.closure[done].clone(),
                "failure": self.failure_codes(done),
            }
        for buf in (self.success, self.held, self.ever_held, self.closed_near, self.closed_far, self.knocked):
            buf[env_ids] = False
        self.max_lift[env_ids] = 0.0
        self.lift[env_ids] = 0.0
