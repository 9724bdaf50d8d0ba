"""Reward terms: the binary success reward (the VLA / GRPO task) and dense shaping (the PPO teacher)."""

from __future__ import annotations

import torch

from .events import grasp_monitor
from .observations import grasp_yaw_error, tcp_to_box


def success_bonus(env) -> torch.Tensor:
    """1 on the step the hold completes (where success does not end the episode, every step the hold goes on)."""
    return grasp_monitor(env).success.float()


def reach_box(env, std: float = 0.1) -> torch.Tensor:
    """1 - tanh(|jaw centre - box| / std)."""
    return 1.0 - torch.tanh(tcp_to_box(env).norm(dim=1) / std)


def box_held(env) -> torch.Tensor:
    """1 while the box is grasped: gripper closing, box between the pads, both pads on it."""
    return grasp_monitor(env).grasped.float()


def box_held_high(env) -> torch.Tensor:
    """1 while the box is grasped at or above the success lift height (the steps the hold rule counts)."""
    m = grasp_monitor(env)
    return (m.grasped & (m.lift >= env.cfg.success.lift_height)).float()


def yaw_aligned_near_box(env, std: float = 0.2, reach_std: float = 0.05) -> torch.Tensor:
    """Hand yaw matches a grasp yaw of the box (tanh kernel), weighted by how near the jaw is to the box:
    the pads can only straddle the box when the hand is turned to its faces."""
    near = 1.0 - torch.tanh(tcp_to_box(env).norm(dim=1) / reach_std)
    return near * (1.0 - torch.tanh(grasp_yaw_error(env).squeeze(1).abs() / std))


def box_lifted(env, height: float = 0.10) -> torch.Tensor:
    """Held and lifted, as a fraction of the success height."""
    m = grasp_monitor(env)
    return m.grasped.float() * (m.lift / height).clamp(0.0, 1.0)
