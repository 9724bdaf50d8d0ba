"""Policies over a vectorized env, and the one registry that builds them from a spec string.

A policy is a callable ``obs -> actions [N, 8]`` in [-1, 1] (the env's observation dict in, the 8-DoF
action of :mod:`openarm_vla.action_space` out) with ``reset(env_ids)`` that clears per-env state (chunk
queues, expert state machines); :mod:`openarm_vla.rollout` steps envs with it.

Specs (``--policy`` of evaluate.py and benchmark.py, ``--expert`` of generate_demos.py):
    random              uniform actions in [-1, 1]
    expert              the scripted expert on the privileged observations
    ppo:PATH            the PPO state teacher (ppo_policy.pt from scripts/train.py --algo ppo)
    preset:NAME         a randomly initialised VLA of preset NAME (tiny | mini | small | openvla-oft-7b);
                        smoke tests and benchmarks only
    PATH                a checkpoint directory (ours or the published HF layout), greedy by default
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from openarm_vla.errors import PolicyError

__all__ = ["Policy", "PolicyError", "check_policy_spec", "make_policy"]


class Policy(Protocol):
    def __call__(self, obs) -> torch.Tensor: ...

    def reset(self, env_ids=None) -> None: ...


def check_policy_spec(spec: str) -> None:
    """Cheap checks of a spec before the simulator starts (missing files, wrong action dim): one-line errors."""
    if spec in ("random", "expert") or spec.startswith("preset:"):
        return
    if spec.startswith("ppo:"):
        if not Path(spec[4:]).exists():
            raise PolicyError(f"PPO policy file not found: {spec[4:]} (train one with scripts/train.py --algo ppo)")
        return
    from .vla import check_checkpoint_dir

    check_checkpoint_dir(spec)


def make_policy(spec: str, env, device=None, temperature: float = 0.0, seed: int = 0):
    """Build the policy named by ``spec`` for ``env`` (see the module docstring). ``device`` is where a
    model runs (default: the env's device); actions are returned on the env's device."""
    n, env_dev = env.num_envs, env.device
    device = device or env_dev
    if spec == "random":
        from .random_actions import RandomPolicy

        return RandomPolicy(n, env_dev, seed=seed)
    if spec == "expert":
        from .scripted_expert import ScriptedPolicy

        return ScriptedPolicy(n, env_dev)
    if spec.startswith("ppo:"):
        from .ppo_teacher import PPOError, load_teacher

        try:
            return load_teacher(spec[4:], env)
        except PPOError as e:
            raise PolicyError(str(e)) from None
    from .vla import VLAEnvPolicy, checkpoint_vla, preset_vla

    if spec.startswith("preset:"):
        vla = preset_vla(spec.split(":", 1)[1], n, device, seed=seed)
    else:
        vla = checkpoint_vla(spec, n, device)
    return VLAEnvPolicy.for_env(vla, env, temperature=temperature, env_device=env_dev, seed=seed)
