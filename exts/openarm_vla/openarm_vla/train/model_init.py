"""The model a trainer starts from: an ``--init`` checkpoint (checked against the env and the preset) or a
from-scratch preset, then LoRA, gradient checkpointing and compilation as the agent asks."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from openarm_vla.errors import CheckpointError, TrainError


def load_init_checkpoint(path: str, device, preset: str | None = None, what: str = "--init"):
    """A checkpoint to start from, checked before use: it exists, its action dim is the env's, and its preset is
    the one asked for (``preset`` None: any). One line names the mismatch."""
    from openarm_vla.action_space import ACTION_DIM
    from openarm_vla.vla.checkpoint import load_checkpoint

    d = Path(path)
    if not (d / "config.json").is_file():
        raise TrainError(f"{what} {d}: not a checkpoint directory (no config.json)")
    try:
        ck = load_checkpoint(d, device=device, dtype=torch.float32)  # fp32 whatever was stored (a bf16 export moves)
    except CheckpointError as e:
        raise TrainError(f"{what} {d}: {e}") from None
    if ck.config.action_dim != ACTION_DIM:
        raise TrainError(f"{what} {d}: action_dim {ck.config.action_dim}, but the env needs {ACTION_DIM}")
    if preset is not None and ck.config.name != preset:
        raise TrainError(f"{what} {d}: a '{ck.config.name}' model, but agent.preset is '{preset}' "
                         f"(pass --preset {ck.config.name} or another checkpoint)")
    return ck


def build_model(agent, device, knobs: dict[str, str] | None = None):
    """(model, text tokenizer, normalization statistics): ``agent.init``'s checkpoint, or a from-scratch
    ``agent.preset`` ("small" if None, no statistics); then LoRA, gradient checkpointing and compilation as the
    agent asks. ``knobs`` maps agent fields to model-config fields (``{"proprio": "use_proprio"}``; every trainer's
    ``prompt_template`` always): set ones override the preset, and must agree with an ``--init`` checkpoint."""
    from openarm_vla.vla import OpenVLAForActionPrediction, get_preset, make_text_tokenizer

    from .lora import enable_lora

    knobs = {"prompt_template": "prompt_template", **(knobs or {})}  # every trainer's (VLATrainerCfg)
    asked = {field: getattr(agent, knob) for knob, field in knobs.items() if getattr(agent, knob) is not None}
    if agent.init:
        ck = load_init_checkpoint(agent.init, device, preset=agent.preset)
        model, tok, norm_stats = ck.model, ck.tokenizer, ck.norm_stats
        for knob, field in knobs.items():
            if field in asked and asked[field] != getattr(model.config, field):
                raise TrainError(f"--init {agent.init}: the checkpoint has {field}={getattr(model.config, field)!r}, "
                                 f"agent.{knob}={asked[field]!r}")
    else:
        try:
            cfg = get_preset(agent.preset or "small", **asked)
        except ValueError as e:
            raise TrainError(f"agent.preset={agent.preset}: {e}") from None
        tok = make_text_tokenizer(cfg)
        if cfg.tokenizer != "byte":
            print(f"[train] a from-scratch {cfg.name}: byte-level prompts stand in for its tokenizer, which needs "
                  "files (timing and smoke runs; --init a checkpoint to train for real)", flush=True)
        with torch.device(device):  # initialized where it runs: a 7B model is 30 GB in fp32, slow to init on a CPU
            model = OpenVLAForActionPrediction(cfg)
        model, norm_stats = model.to(device), {}
    if agent.lora.enabled:
        enable_lora(model, agent.lora, agent.dtype if str(device).startswith("cuda") else None)
    if agent.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if agent.compile:
        model.compile_layers()
    return model, tok, norm_stats


def compile_model_passes(runner, instruction: str, rollout_batch: int, micro_batch: int, model=None) -> float:
    """Run ``runner.model`` once as a rollout does (eval mode, no grad, ``rollout_batch`` rows) and ``model`` (the
    module the update trains: the same one, or under FSDP the sharded one) once as an update does (train mode,
    forward and backward of ``micro_batch`` rows) on placeholder inputs (black frames, the task's prompt, zero
    proprio); return the seconds. With ``agent.compile`` torch.compile builds each of those graphs on first use
    (minutes for the 7B on a GPU): without this, iteration 1 pays for it. Draws no random numbers and leaves no
    gradients."""
    from openarm_vla.utils.timing import device_sync

    model = model if model is not None else runner.model
    sync = device_sync(runner.device)
    sync()
    t0 = time.perf_counter()
    size = runner.config.image_size
    for module, n, train in ((runner.model, rollout_batch, False), (model, micro_batch, True)):
        ids, mask = runner.prompt_ids([instruction] * n)
        batch = {"rgb": torch.zeros(n, size, size, 3, dtype=torch.uint8, device=runner.device), "input_ids": ids,
                 "attention_mask": mask, "proprio": torch.zeros(n, runner.config.proprio_dim, device=runner.device)}
        module.train(train)
        with torch.set_grad_enabled(train):
            logits = module(**runner.model_inputs(batch), dtype=runner.dtype)
            if train:
                logits.sum().backward()
        module.zero_grad(set_to_none=True)
        module.eval()
    sync()
    return time.perf_counter() - t0
