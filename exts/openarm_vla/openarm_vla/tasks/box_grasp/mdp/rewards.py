"""Reward terms: the binary success reward (the VLA / GRPO task) and dense shaping (the PPO teacher)."""

from __future__ import annotations

import torch

from .events import grasp_monitor
from .observations import tcp_to_box


def success_bonus(env) -> torch.Tensor:
    """1 on the step the box is held and lifted, else 0."""
    return grasp_monitor(env).success.float()


def reach_box(env, std: float = 0.1) -> torch.Tensor:
    """1 - tanh(|jaw centre - box| / std)."""
    return 1.0 - torch.tanh(tcp_to_box(env).norm(dim=1) / std)


def box_held(env) -> torch.Tensor:
    return grasp_monitor(env).grasped.float()


def box_lifted(env, height: float = 0.10) -> torch.Tensor:
    """Held and lifted, as a fraction of the success height."""
    m = grasp_monitor(env)
    return m.grasped.float() * (m.lift / height).clamp(0.0, 1.0)


def close_near_box(env, std: float = 0.02) -> torch.Tensor:
    """Gripper closure command, weighted by how close the jaw centre is to the box: teaches *when* to close.

    Without it a PPO teacher learns to reach (the reach term saturates) but seldom explores closing the
    gripper far enough from its open start to find the held / lifted terms.
    """
    closure = (env.action_manager.action[:, 7] + 1.0) * 0.5
    return closure * (1.0 - torch.tanh(tcp_to_box(env).norm(dim=1) / std))
