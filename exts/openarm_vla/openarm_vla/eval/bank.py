"""Held-out evaluation banks: fixed initial states, one greedy episode from each.

A bank is drawn by the task's own reset events under a private seed (``held_out_states``): entry k is the
start env slot k gets in pass k // width, width = min(size, num_envs). Two processes with the same seed,
size, width, group size and device evaluate the very same starts (the box variant of a slot does not depend
on the number of envs), so an SFT evaluation, GRPO's validation before, during and after training and
``scripts/evaluate.py --bank_seed`` are comparable. Seeds of banks are kept apart from the training seeds
(demos: the run seed; GRPO rounds: the global RNG of the run seed), so validation never sees a training start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from openarm_vla.rollout import first_episodes
from openarm_vla.tasks.box_grasp.scene_state import held_out_states, reset_to_states

PASS_SEED_STRIDE = 7919
"""Pass p of a bank with seed s draws with seed s + p * PASS_SEED_STRIDE."""


@dataclass
class EvalBank:
    seed: int
    size: int
    width: int
    passes: list[dict]
    """Per pass: the captured states of env slots [0, width) (the last pass may be narrower)."""

    @classmethod
    def build(cls, env, size: int, seed: int) -> EvalBank:
        if size < 1:
            raise ValueError(f"an evaluation bank needs at least 1 state, got {size}")
        width = min(size, env.num_envs)
        passes = []
        for p in range(-(-size // width)):
            n = min(width, size - p * width)
            passes.append(held_out_states(env, torch.arange(n, device=env.device), seed + p * PASS_SEED_STRIDE))
        return cls(seed, size, width, passes)

    def pass_size(self, p: int) -> int:
        return min(self.width, self.size - p * self.width)


def evaluate_bank(env, policy, bank: EvalBank, on_step: Callable | None = None, progress: bool = True,
                  desc: str = "eval") -> list[dict]:
    """One episode of ``policy`` from every state of ``bank``; returns the records in bank order, each with
    ``bank_index``. ``on_step(step, active)`` sees every step (videos)."""
    records: list[dict] = []
    for p, state in enumerate(bank.passes):
        ids = torch.arange(bank.pass_size(p), device=env.device)
        obs = reset_to_states(env, state, ids)
        out = first_episodes(env, policy, obs, env_ids=ids, on_step=on_step, progress=progress, desc=desc,
                             max_steps=int(env.max_episode_length) + 1)
        for e in ids.tolist():
            rec = out.records[e] or {"env_id": e, "success": False, "steps": int(out.finish_step[e]),
                                     "failure": "timeout", "max_lift": 0.0, "gripper": None,
                                     "max_held_steps": None}
            records.append({**rec, "bank_index": p * bank.width + e})
    return records
