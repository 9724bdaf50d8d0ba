"""The optimizer both trainers use: AdamW with nanoGPT's weight-decay groups, and its LR schedule (linear
warm-up, then constant or cosine)."""

from __future__ import annotations

import math

import torch

from openarm_vla.errors import TrainError


def decay_param_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups as nanoGPT's: weight decay on matrices (dim >= 2), none on biases, norms, embeddings' scales."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(warmup: int, total: int, schedule: str = "constant", min_ratio: float = 0.0):
    """The LR multiplier of optimizer step ``s`` (a ``LambdaLR`` lambda): linear warm-up over ``warmup`` steps
    (Adam's first steps move every weight by ~lr whatever the gradient's size), then ``constant`` or ``cosine``
    from 1 to ``min_ratio`` at step ``total``."""
    if schedule not in ("constant", "cosine"):
        raise TrainError(f"LR schedule {schedule!r}: expected constant or cosine")

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        t = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
    return f


def make_optimizer(module, agent, fused: bool, total_steps: int = 0, schedule: str = "constant", min_lr: float = 0.0):
    """(AdamW over ``module``'s trainable parameters, its LambdaLR schedule) from the agent's lr, betas, weight
    decay and ``warmup_steps``; ``fused`` kernels on CUDA."""
    opt = torch.optim.AdamW(decay_param_groups(module, agent.weight_decay), lr=agent.lr, betas=tuple(agent.betas),
                            fused=fused)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(agent.warmup_steps, total_steps, schedule, min_lr / agent.lr))
    return opt, sched


def rewarm(opt, sched, start: int, warmup: int) -> None:
    """Ramp the LR up again over ``warmup`` optimizer steps from step ``start``, on top of ``sched``'s schedule: a run
    resumed from a checkpoint without the optimizer's moments (:func:`.checkpoints.export_resumable`) starts Adam
    afresh, and Adam's first steps move every weight by ~lr whatever the gradient's size."""
    if warmup <= 0:
        return
    sched.lr_lambdas = [lambda s, f=f: f(s) * min(1.0, (s - start + 1) / warmup) for f in sched.lr_lambdas]
    for group, base, f in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas):
        group["lr"] = base * f(sched.last_epoch)
