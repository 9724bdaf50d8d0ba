"""The ``random`` policy: uniform actions in [-1, 1]^8 (a floor for evaluation, throughput benchmarks)."""

from __future__ import annotations

import torch

from openarm_vla.action_space import ACTION_DIM


class RandomPolicy:
    def __init__(self, num_envs: int, device, action_dim: int = ACTION_DIM, seed: int = 0):
        self.num_envs, self.device, self.action_dim = num_envs, torch.device(device), action_dim
        self.gen = torch.Generator(device=self.device).manual_seed(seed)

    def __call__(self, obs) -> torch.Tensor:
        return torch.rand(self.num_envs, self.action_dim, device=self.device, generator=self.gen) * 2 - 1

    def reset(self, env_ids=None) -> None:
        pass
