"""make_policy(spec, env, device): every policy is a callable obs -> actions [N, 8] in [-1, 1] with a
reset(env_ids) that clears per-env state (chunk queues, expert state machines).

Specs:
    random              uniform actions in [-1, 1]
    expert              the scripted expert on the privileged observations
    ppo:PATH            the PPO state teacher (ppo_policy.pt from scripts/train.py --algo ppo)
    preset:NAME         a randomly initialised VLA of preset NAME (tiny | small | openvla-oft-7b);
                        smoke tests and benchmarks only
    PATH                a checkpoint directory (ours or the published HF layout), greedy by default
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

ENV_ACTION_DIM = 8


class PolicyError(ValueError):
    """A bad policy spec or checkpoint, with a one-line message."""


class RandomPolicy:
    def __init__(self, num_envs: int, device, action_dim: int = ENV_ACTION_DIM, seed: int = 0):
        self.num_envs, self.device, self.action_dim = num_envs, torch.device(device), action_dim
        self.gen = torch.Generator(device=self.device).manual_seed(seed)

    def __call__(self, obs) -> torch.Tensor:
        return torch.rand(self.num_envs, self.action_dim, device=self.device, generator=self.gen) * 2 - 1

    def reset(self, env_ids=None) -> None:
        pass


class ExpertPolicy:
    def __init__(self, num_envs: int, device):
        try:
            from openarm_vla.data.scripted_expert import ScriptedExpert
        except ImportError as e:
            raise PolicyError(f"--policy expert needs openarm_vla.data.scripted_expert.ScriptedExpert ({e})") from None
        self.expert = ScriptedExpert(num_envs, device)

    def __call__(self, obs) -> torch.Tensor:
        return self.expert.act(obs["privileged"])

    def reset(self, env_ids=None) -> None:
        self.expert.reset(env_ids)


class VLAEnvPolicy:
    """Adapts VLAPolicy to the env: obs["policy"]["front_rgb"] + the task instruction -> actions."""

    def __init__(self, vla, instruction: str, temperature: float = 0.0, env_device=None, seed: int | None = None):
        self.vla, self.instruction = vla, instruction
        self.temperature = temperature if temperature and temperature > 0 else None  # None = greedy
        self.env_device = env_device
        self.generator = None
        if self.temperature is not None and seed is not None:
            self.generator = torch.Generator(device=vla.device).manual_seed(seed)
        self.last: dict | None = None  # the full VLAPolicy.act output of the last call

    @property
    def config(self):
        return self.vla.config

    def __call__(self, obs) -> torch.Tensor:
        pol = obs["policy"]
        out = self.vla.act({"rgb": pol["front_rgb"], "joint_pos": pol.get("joint_pos")}, self.instruction,
                           temperature=self.temperature, generator=self.generator)
        self.last = out
        actions = out["actions"].clamp(-1.0, 1.0)
        return actions.to(self.env_device) if self.env_device is not None else actions

    def reset(self, env_ids=None) -> None:
        self.vla.reset(env_ids)


class _StandInTokenizer:
    """Byte-level ids inside a larger vocabulary (e.g. Llama's 32000) for random-init presets whose
    real tokenizer needs files (openvla-oft-7b): prompt lengths match bytes, not SentencePiece pieces,
    which is fine for smoke tests and throughput benchmarks."""

    kind = "standin"

    def __init__(self, vocab_size: int, bos: int, eos: int, pad: int):
        self.vocab_size, self.bos_token_id, self.eos_token_id, self.pad_token_id = vocab_size, bos, eos, pad

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = [b + 3 for b in text.encode("utf-8")]
        return [self.bos_token_id] + ids if add_bos else ids


def preset_vla(name: str, num_envs: int, device, seed: int = 0):
    """A VLAPolicy around a randomly initialised model of preset `name`."""
    from openarm_vla.vla import OpenVLAForActionPrediction, VLAPolicy, get_preset, make_text_tokenizer

    try:
        cfg = get_preset(name)
    except ValueError as e:
        raise PolicyError(str(e)) from None
    if cfg.tokenizer == "byte":
        tok = make_text_tokenizer("byte")
    else:
        llm = cfg.llm
        tok = _StandInTokenizer(llm.vocab_size_unpadded, llm.bos_token_id, llm.eos_token_id, llm.pad_token_id)
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
    return VLAPolicy(model.eval(), tok, num_envs, action_dim=ENV_ACTION_DIM)


def check_checkpoint_dir(path: str | os.PathLike) -> None:
    """Cheap checks before the simulator starts: the directory and config.json exist, action_dim == 8."""
    import json

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
    dim = (cfg.get("vla_config") or {}).get("action_dim", cfg.get("action_dim", ENV_ACTION_DIM))
    if int(dim) != ENV_ACTION_DIM:
        raise PolicyError(f"checkpoint {d} has action_dim {dim}, but the env needs {ENV_ACTION_DIM}")


def checkpoint_vla(path: str | os.PathLike, num_envs: int, device):
    from openarm_vla.vla import VLAPolicy, action_stats
    from openarm_vla.vla.checkpoint import CheckpointError, load_checkpoint

    d = Path(path)
    check_checkpoint_dir(d)
    try:
        ck = load_checkpoint(d, device=device)
    except CheckpointError as e:
        raise PolicyError(f"cannot load checkpoint: {e}") from None
    if ck.config.action_dim != ENV_ACTION_DIM:
        raise PolicyError(f"checkpoint {d} has action_dim {ck.config.action_dim}, but the env needs {ENV_ACTION_DIM}")
    unnorm = False
    if ck.norm_stats:
        try:  # OpenVLA convention: actions un-normalized with the dataset's q01/q99 when present
            unnorm = "q01" in action_stats(ck.norm_stats)
        except ValueError:
            unnorm = False
    return VLAPolicy(ck.model.eval(), ck.tokenizer, num_envs, action_dim=ENV_ACTION_DIM,
                     norm_stats=ck.norm_stats, unnormalize_actions=unnorm)


def make_policy(spec: str, env, device=None, temperature: float = 0.0, seed: int = 0):
    """Build the policy named by `spec` for `env` (see the module docstring). `device` is where the
    model runs (default: the env's device); actions are returned on the env's device."""
    n, env_dev = env.num_envs, env.device
    device = device or env_dev
    if spec == "random":
        return RandomPolicy(n, env_dev, seed=seed)
    if spec == "expert":
        return ExpertPolicy(n, env_dev)
    if spec.startswith("ppo:"):  # the state teacher, fed from the privileged observations
        from openarm_vla.train.ppo import load_teacher

        return load_teacher(spec[4:], env)
    instruction = getattr(env.cfg, "instruction", None) or "pick up the box"
    if spec.startswith("preset:"):
        vla = preset_vla(spec.split(":", 1)[1], n, device, seed=seed)
    else:
        vla = checkpoint_vla(spec, n, device)
    return VLAEnvPolicy(vla, instruction, temperature=temperature, env_device=env_dev, seed=seed)
