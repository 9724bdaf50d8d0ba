"""Observation terms of the box-grasp task (poses are in the env frame: the robot base sits at its origin)."""

from __future__ import annotations

import functools

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
