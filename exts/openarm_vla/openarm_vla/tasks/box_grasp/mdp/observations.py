"""Observation terms of the box-grasp task (poses are in the env frame: the robot base sits at its origin)."""

from __future__ import annotations

import functools
import math

import torch

from isaaclab.managers import SceneEntityCfg
from isaaclab.utils.math import quat_apply

from openarm_vla.action_space import finger_pos_to_closure
from openarm_vla.robots import openarm_spec as spec

from .events import box_variant_sizes


_STATE_JOINTS = spec.ARM_JOINTS + spec.FINGER_JOINTS[:1]


@functools.lru_cache(maxsize=32)
def _joint_ids(robot, names: tuple[str, ...]) -> list[int]:
    """Joint indices by name, resolved once per robot (not every step)."""
    return list(robot.find_joints(list(names), preserve_order=True)[0])


@functools.lru_cache(maxsize=32)
def _body_id(robot, name: str) -> int:
    return robot.find_bodies(name)[0][0]


def joint_state(env, asset_cfg: SceneEntityCfg = SceneEntityCfg("robot")) -> torch.Tensor:
    """[N, 8]: the 7 arm joint angles and the gripper closure in [0, 1] (the VLA's proprio)."""
    robot = env.scene[asset_cfg.name]
    q = robot.data.joint_pos.torch[:, _joint_ids(robot, _STATE_JOINTS)]
    return torch.cat([q[:, :7], finger_pos_to_closure(q[:, 7:8])], dim=1)


def joint_vel(env, asset_cfg: SceneEntityCfg = SceneEntityCfg("robot")) -> torch.Tensor:
    robot = env.scene[asset_cfg.name]
    return robot.data.joint_vel.torch[:, _joint_ids(robot, _STATE_JOINTS)]


def box_pos(env, asset_cfg: SceneEntityCfg = SceneEntityCfg("box")) -> torch.Tensor:
    return env.scene[asset_cfg.name].data.root_pos_w.torch - env.scene.env_origins


def box_quat(env, asset_cfg: SceneEntityCfg = SceneEntityCfg("box")) -> torch.Tensor:
    """Box orientation, xyzw."""
    return env.scene[asset_cfg.name].data.root_quat_w.torch


def hand_pose_w(env, asset_cfg: SceneEntityCfg = SceneEntityCfg("robot")) -> tuple[torch.Tensor, torch.Tensor]:
    robot = env.scene[asset_cfg.name]
    idx = _body_id(robot, "openarm_hand")
    return robot.data.body_pos_w.torch[:, idx], robot.data.body_quat_w.torch[:, idx]


def tcp_pos(env, asset_cfg: SceneEntityCfg = SceneEntityCfg("robot")) -> torch.Tensor:
    """Jaw centre (between the finger pads) in the env frame."""
    pos, quat = hand_pose_w(env, asset_cfg)
    offset = torch.tensor(spec.JAW_CENTER_OFFSET, device=pos.device).expand_as(pos)
    return pos + quat_apply(quat, offset) - env.scene.env_origins


def tcp_to_box(env) -> torch.Tensor:
    return box_pos(env) - tcp_pos(env)


def box_size(env) -> torch.Tensor:
    """[N, 3] edge lengths of each env's box (its variant is fixed per env when the scene is built)."""
    return box_variant_sizes(env)


def _yaw(quat_xyzw: torch.Tensor) -> torch.Tensor:
    x, y, z, w = quat_xyzw.unbind(-1)
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def grasp_yaw_error(env) -> torch.Tensor:
    """[N, 1] hand yaw minus the nearest yaw that closes the pads across a pair of box faces, in [-pi/4, pi/4].

    A top-down grasp of a box at yaw psi wants the hand at pi + psi + k pi/2; the policy turns the hand by it.
    """
    _, hq = hand_pose_w(env)
    err = _yaw(hq) - math.pi - _yaw(box_quat(env))
    return (torch.remainder(err + math.pi / 4, math.pi / 2) - math.pi / 4).unsqueeze(1)


PAD_SENSORS = ("left_pad_contact", "right_pad_contact")
"""Scene names of the per-pad contact sensors (filtered to the box), when the scene has them."""


def pad_sensors(env) -> list:
    """The (left, right) pad contact sensors, or [] in a scene without them."""
    return [env.scene.sensors[k] for k in PAD_SENSORS if k in env.scene.sensors]


def pad_forces(env) -> torch.Tensor:
    """[N, 2] normal force from the box on the (left, right) pad [N]; zeros in a scene without the sensors."""
    sensors = pad_sensors(env)
    if not sensors:
        return torch.zeros(env.num_envs, 2, device=env.device)
    return torch.stack([s.data.normal_force_matrix_w.torch.reshape(env.num_envs, -1, 3).norm(dim=-1).sum(dim=1)
                        for s in sensors], dim=1)


def pad_contact(env, scale: float = 10.0) -> torch.Tensor:
    """[N, 2] tanh(normal force from the box / ``scale`` N) on the (left, right) pad: whether and how firmly
    each pad holds the box (zeros in a scene without the contact sensors)."""
    return torch.tanh(pad_forces(env) / scale)


def tcp_target_error(env, action_name: str = "arm") -> torch.Tensor:
    """[N, 3] the top-down action's commanded jaw centre minus the reached one (env frame): how far the arm
    lags its target (:class:`~.actions.TopDownDeltaAction`)."""
    return env.action_manager.get_term(action_name).controller.pos - tcp_pos(env)
