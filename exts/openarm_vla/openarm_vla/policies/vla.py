"""The VLA as an env policy: ``obs["policy"]`` (front camera + joint state) + each env's instruction -> actions.

    VLAEnvPolicy     adapts :class:`openarm_vla.vla.VLARunner` (chunk queues over N envs) to the env
    preset_vla       a randomly initialised model of a preset (``preset:NAME``; smoke tests, benchmarks)
    checkpoint_vla   a checkpoint directory, ours or the published OpenVLA-OFT layout (``CKPT_DIR``)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from openarm_vla.action_space import ACTION_DIM, action_stats, joint_state_to_action

from openarm_vla.errors import PolicyError


class VLAEnvPolicy:
    """The VLA over the env's observations: the model sees ``front_rgb`` and, if it takes proprio, the joint
    state in action units. Greedy unless ``temperature`` > 0. ``accepts_active``: envs outside ``active``
    are not forwarded and hold their current pose. ``instruction``: one string for every env, or a callable
    giving the current per-env list (``lambda: mdp.instructions(env)``: the DR task draws one per episode);
    :func:`for_env` builds the latter."""

    accepts_active = True

    def __init__(self, vla, instruction, temperature: float = 0.0, env_device=None, seed: int | None = None):
        self.vla, self.instruction = vla, instruction
        self.temperature = temperature if temperature and temperature > 0 else None  # None = greedy
        self.env_device = env_device
        self.generator = None
        if self.temperature is not None and seed is not None:
            self.generator = torch.Generator(device=vla.device).manual_seed(seed)
        self.last: dict | None = None  # the full VLARunner.act output of the last call

    @property
    def config(self):
        return self.vla.config

    def __call__(self, obs, active: torch.Tensor | None = None) -> torch.Tensor:
        pol = obs["policy"]
        joints = pol["joint_pos"].to(self.vla.device, torch.float32)
        instruction = self.instruction() if callable(self.instruction) else self.instruction
        out = self.vla.act({"rgb": pol["front_rgb"], "proprio": joint_state_to_action(joints)}, instruction,
                           temperature=self.temperature, generator=self.generator, active=active)
        self.last = out
        actions = out["actions"].clamp(-1.0, 1.0)
        if active is not None:  # finished envs hold still instead of replaying a stale chunk
            actions = torch.where(active.to(actions.device)[:, None], actions, joint_state_to_action(joints))
        return actions.to(self.env_device) if self.env_device is not None else actions

    def reset(self, env_ids=None) -> None:
        self.vla.reset(env_ids)

    @classmethod
    def for_env(cls, vla, env, **kwargs) -> VLAEnvPolicy:
        """The policy prompted with ``env``'s per-env instructions of the current episodes."""
        from openarm_vla.tasks.box_grasp.mdp.variation import instructions

        return cls(vla, lambda: instructions(env), **kwargs)


def preset_vla(name: str, num_envs: int, device, seed: int = 0, **overrides):
    """A VLARunner around a randomly initialised model of preset `name` (config fields in ``overrides``)."""
    from openarm_vla.vla import OpenVLAForActionPrediction, VLARunner, get_preset, make_text_tokenizer

    try:
        cfg = get_preset(name, **overrides)
    except (ValueError, TypeError) as e:
        raise PolicyError(str(e)) from None
    tok = make_text_tokenizer(cfg)  # byte-level: for the 7B a stand-in for its Llama tokenizer
    torch.manual_seed(seed)
    dev = torch.device(device)
    if dev.type == "cuda" and cfg.dtype != "float32":
        # build in bf16 directly on the GPU: a 7B model in fp32 would be 30 GB and slow to init
        with torch.device(dev):
            prev = torch.get_default_dtype()
            torch.set_default_dtype(torch.bfloat16)
            try:
                model = OpenVLAForActionPrediction(cfg)
            finally:
                torch.set_default_dtype(prev)
    else:
        model = OpenVLAForActionPrediction(cfg).to(dev)
    return VLARunner(model.eval(), tok, num_envs, action_dim=ACTION_DIM)


def check_checkpoint_dir(path: str | os.PathLike) -> dict:
    """Checks before the simulator starts: the directory and config.json exist, action_dim == 8, and the files
    match the manifest where there is one. Returns the parsed config.json."""
    d = Path(path)
    if not d.is_dir():
        raise PolicyError(f"checkpoint directory not found: {d}")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise PolicyError(f"not a checkpoint directory (no config.json): {d}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise PolicyError(f"{cfg_path}: invalid JSON ({e})") from None
    dim = (cfg.get("vla_config") or {}).get("action_dim", cfg.get("action_dim", ACTION_DIM))
    if int(dim) != ACTION_DIM:
        raise PolicyError(f"checkpoint {d} has action_dim {dim}, but the env needs {ACTION_DIM}")
    from openarm_vla.utils.manifest import verify_manifest

    if problem := verify_manifest(d):  # a damaged checkpoint is named before the simulator starts
        raise PolicyError(f"checkpoint {d}: {problem}")
    return cfg


def checkpoint_vla(path: str | os.PathLike, num_envs: int, device):
    from openarm_vla.vla import VLARunner
    from openarm_vla.vla.checkpoint import CheckpointError, load_checkpoint

    d = Path(path)
    check_checkpoint_dir(d)
    try:
        ck = load_checkpoint(d, device=device, dtype=torch.float32)  # fp32 whatever was stored (a bf16 export moves)
    except CheckpointError as e:
        raise PolicyError(f"cannot load checkpoint: {e}") from None
    unnorm = False
    if ck.norm_stats:
        try:  # OpenVLA convention: actions un-normalized with the dataset's q01/q99 when present
            unnorm = "q01" in action_stats(ck.norm_stats)
        except ValueError:
            unnorm = False
    return VLARunner(ck.model.eval(), ck.tokenizer, num_envs, action_dim=ACTION_DIM,
                     norm_stats=ck.norm_stats, unnormalize_actions=unnorm)
