"""Throughput measurements behind ``scripts/benchmark.py``: env-steps/s with and without the camera, VLA
rollout driving the real env (policy share of time, model FLOPs and MFU). Speed targets live here and in
the benchmark script, never in timed tests."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

H100_BF16_PEAK = 989e12
"""Dense bf16 peak of an H100 / H200 SXM (FLOP/s), the MFU denominator."""


def device_sync(device):
    """``torch.cuda.synchronize`` for a CUDA device (to time asynchronous GPU work), a no-op elsewhere."""
    return torch.cuda.synchronize if str(device).startswith("cuda") and torch.cuda.is_available() else (lambda: None)


def compile_env_step(env) -> float:
    """Take one env step (all-zero action) and return its seconds; call it before a loop that times its steps.

    Warp compiles the physics step's kernels (MuJoCo-Warp's collision and solver) on the first ``env.step`` of a
    process whose kernel cache lacks them: a fresh machine (~40 s on a CPU), or a new ``--num_envs`` (one broadphase
    kernel takes the world count as a constant). Without this that compilation lands in the first timed iteration.
    The step leaves the envs mid-episode and draws no random numbers: callers reset before they run episodes."""
    sync = device_sync(env.device)
    sync()
    t0 = time.perf_counter()
    env.step(torch.zeros(env.num_envs, env.action_manager.total_action_dim, device=env.device))
    sync()
    return time.perf_counter() - t0


def compile_model_passes(vla, instruction: str, rollout_batch: int, micro_batch: int, model=None) -> float:
    """Run ``vla.model`` once as a rollout does (eval mode, no grad, ``rollout_batch`` rows) and ``model`` (the module
    the update trains: the same one, or under FSDP the sharded one) once as an update does (train mode, forward and
    backward of ``micro_batch`` rows) on placeholder inputs (black frames, the task's prompt, zero proprio); return
    the seconds. With ``agent.compile`` torch.compile builds each of those graphs on first use (minutes for the 7B
    on a GPU): without this, iteration 1 pays for it. Draws no random numbers and leaves no gradients."""
    model = model if model is not None else vla.model
    sync = device_sync(vla.device)
    sync()
    t0 = time.perf_counter()
    size = vla.config.image_size
    for module, n, train in ((vla.model, rollout_batch, False), (model, micro_batch, True)):
        ids, mask = vla.prompt_ids([instruction] * n)
        batch = {"rgb": torch.zeros(n, size, size, 3, dtype=torch.uint8, device=vla.device), "input_ids": ids,
                 "attention_mask": mask, "proprio": torch.zeros(n, vla.config.proprio_dim, device=vla.device)}
        module.train(train)
        with torch.set_grad_enabled(train):
            logits = module(**vla.model_inputs(batch), dtype=vla.dtype)
            if train:
                logits.sum().backward()
        module.zero_grad(set_to_none=True)
        module.eval()
    sync()
    return time.perf_counter() - t0


class StageClock:
    """Wall seconds per named part of a loop. On CUDA each part is synchronized at both ends, so asynchronous GPU
    work is charged to the part that launched it (a few syncs per step: for finding the slow part, not for speed)."""

    def __init__(self, device):
        self.sync = device_sync(device)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, name: str):
        self.sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def summary(self, total: float, rest: str) -> str:
        """``name X s, ...`` for every part, and ``rest`` for what the parts leave of ``total`` seconds."""
        parts = {**self.seconds, rest: total - sum(self.seconds.values())}
        return ", ".join(f"{k} {v:.1f} s" for k, v in parts.items())


def _device_name(dev: str) -> str:
    return torch.cuda.get_device_name(0) if str(dev).startswith("cuda") else "cpu"


def env_throughput(task: str, num_envs: int, image_size: int | None, steps: int, warmup: int, device: str) -> dict:
    """Random actions; ``image_size`` None runs the scene without the camera (physics only)."""
    from openarm_vla.policies import make_policy
    from openarm_vla.rollout import step_loop
    from openarm_vla.tasks.factory import load_env_cfg, make_env

    cfg = load_env_cfg(task)
    camera = image_size is not None and getattr(cfg.scene, "front_camera", None) is not None
    if not camera:
        cfg.scene.front_camera = None
        if hasattr(cfg.observations, "policy") and hasattr(cfg.observations.policy, "front_rgb"):
            cfg.observations.policy.front_rgb = None  # a term that reads the camera cannot stay without it
    env = make_env(task, cfg=cfg, num_envs=num_envs, device=device, image_size=image_size if camera else None)
    try:
        obs, _ = env.reset()
        policy = make_policy("random", env)
        sync = device_sync(env.device)
        obs = step_loop(env, policy, obs, lambda s: False, max_steps=warmup)
        sync()
        t0 = time.perf_counter()
        step_loop(env, policy, obs, lambda s: False, max_steps=steps)
        sync()
        dt = time.perf_counter() - t0
        return {"task": task, "num_envs": num_envs, "image_size": image_size if camera else None, "camera": camera,
                "steps": steps, "seconds": round(dt, 3), "env_steps_per_s": round(num_envs * steps / dt, 1),
                "ms_per_step": round(1000 * dt / steps, 2), "device": _device_name(env.device)}
    finally:
        env.close()


def forward_flops(model, prompt_len: int) -> dict:
    """Analytic FLOPs of one forward for one sample (batch 1), from the model's module sizes.

    Vision: each tower runs all but its last block (OpenVLA reads the second-to-last layer) over
    patches + prefix tokens; projector over the patches; Llama over T = P + prompt + A (+ stop) tokens
    (all decoder layers; the LM head only over the 256-way action slice of the A readout columns).
    Matmul FLOPs = 2 x params x tokens; attention adds 4 x T^2 x hidden per layer (QK^T and AV).
    """
    cfg = model.config
    P, A = model.vision_backbone.num_patches, cfg.num_action_tokens
    vision = 0
    towers = [model.vision_backbone.featurizer] + ([model.vision_backbone.fused_featurizer] if cfg.use_fused_vision else [])
    for vit in towers:
        tokens = P + getattr(vit, "num_prefix_tokens", 0)
        blocks = list(vit.blocks)[:-1]
        bparams = sum(p.numel() for b in blocks for p in b.parameters())
        pe = sum(p.numel() for p in vit.patch_embed.parameters())
        vision += 2 * bparams * tokens + 2 * pe * P + 4 * tokens * tokens * vit.embed_dim * len(blocks)
    projector = 2 * sum(p.numel() for p in model.projector.parameters()) * P
    llm = cfg.llm
    lparams = sum(p.numel() for p in model.language_model.model.layers.parameters())
    T = model.num_patches + prompt_len + A + (1 if cfg.append_stop_token else 0)
    lm = 2 * lparams * T + 4 * T * T * llm.hidden_size * llm.num_layers + 2 * cfg.n_bins * llm.hidden_size * A
    return {"vision": vision, "projector": projector, "llm": lm, "total": vision + projector + lm, "tokens": T}


class TimedPolicy:
    """Wraps an env policy to time its calls (GPU-synchronized) and count the samples it forwards."""

    def __init__(self, policy, sync):
        self.policy, self.sync = policy, sync
        self.seconds, self.samples, self.forwards = 0.0, 0, 0
        self.accepts_active = getattr(policy, "accepts_active", False)

    def __call__(self, obs, **kw):
        self.sync()
        t0 = time.perf_counter()
        actions = self.policy(obs, **kw)
        self.sync()
        self.seconds += time.perf_counter() - t0
        m = int(self.policy.last["new_chunk"].sum()) if getattr(self.policy, "last", None) else 0
        self.samples += m
        self.forwards += int(m > 0)
        return actions

    def reset(self, env_ids=None):
        self.policy.reset(env_ids)


def policy_rollout_throughput(task: str, preset: str, num_envs: int, image_size: int | None, steps: int, warmup: int,
                              device: str) -> dict:
    """A random-init VLA preset driving the env (greedy, bf16 autocast on CUDA)."""
    from openarm_vla.policies import make_policy
    from openarm_vla.rollout import step_loop
    from openarm_vla.tasks.factory import make_env
    from openarm_vla.vla import count_parameters

    env = make_env(task, num_envs=num_envs, device=device, image_size=image_size)
    try:
        obs, _ = env.reset()
        cuda = str(env.device).startswith("cuda")
        sync = device_sync(env.device)
        inner = make_policy(f"preset:{preset}", env)
        vla = inner.vla
        vla.dtype = "bfloat16" if cuda else "float32"
        ids, _ = vla.prompt_ids([inner.instruction])
        flops = forward_flops(vla.model, ids.shape[1])
        obs = step_loop(env, inner, obs, lambda s: False, max_steps=warmup)
        policy = TimedPolicy(inner, sync)
        sync()
        t0 = time.perf_counter()
        step_loop(env, policy, obs, lambda s: False, max_steps=steps)
        sync()
        total = time.perf_counter() - t0
        achieved = flops["total"] * policy.samples / policy.seconds if policy.seconds > 0 else 0.0
        return {
            "task": task, "policy": f"preset:{preset}", "num_envs": num_envs, "image_size": image_size, "steps": steps,
            "seconds": round(total, 3), "env_steps_per_s": round(num_envs * steps / total, 1),
            "ms_per_step": round(1000 * total / steps, 2), "policy_time_share": round(policy.seconds / total, 4),
            "policy_ms_per_forward": round(1000 * policy.seconds / max(policy.forwards, 1), 2),
            "forwards": policy.forwards, "samples_forwarded": policy.samples, "model_params": count_parameters(vla.model),
            "tokens_per_sample": flops["tokens"], "gflops_per_sample": round(flops["total"] / 1e9, 3),
            "gflops_split": {k: round(flops[k] / 1e9, 3) for k in ("vision", "projector", "llm")},
            "achieved_tflops": round(achieved / 1e12, 4), "mfu_h100_bf16": round(achieved / H100_BF16_PEAK, 6),
            "autocast": vla.dtype, "device": _device_name(env.device),
        }
    finally:
        env.close()
