"""Throughput measurements behind ``scripts/benchmark.py``: env-steps/s with and without the camera, VLA
rollout driving the real env (policy share of time, model FLOPs and MFU). Speed targets live here and in
the benchmark script, never in timed tests."""

from __future__ import annotations

import time

import torch

from openarm_vla.utils.timing import TimedPolicy, device_sync

H100_BF16_PEAK = 989e12
"""Dense bf16 peak of an H100 / H200 SXM (FLOP/s), the MFU denominator."""


def _device_name(dev: str) -> str:
    return torch.cuda.get_device_name(0) if str(dev).startswith("cuda") else "cpu"


def env_throughput(task: str, num_envs: int, image_size: int | None, steps: int, warmup: int, device: str,
                   overrides: tuple[str, ...] = ()) -> dict:
    """Random actions; ``image_size`` None runs the scene without the camera (physics only); ``overrides`` are
    ``env.…=v`` settings of the task."""
    from openarm_vla.policies import make_policy
    from openarm_vla.rollout import step_loop
    from openarm_vla.tasks.factory import load_env_cfg, make_env

    cfg = load_env_cfg(task, overrides=overrides)
    camera = image_size is not None and getattr(cfg.scene, "front_camera", None) is not None
    if not camera and hasattr(cfg, "remove_camera"):
        cfg.remove_camera()
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
        return {"task": task, "overrides": list(overrides), "num_envs": num_envs,
                "image_size": image_size if camera else None, "camera": camera,
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
        from openarm_vla.tasks.box_grasp.mdp.variation import instructions

        ids, _ = vla.prompt_ids(instructions(env)[:1])
        flops = forward_flops(vla.model, ids.shape[1])
        obs = step_loop(env, inner, obs, lambda s: False, max_steps=warmup)
        policy = TimedPolicy(inner, env.device)
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


SPEED_FIELDS = ("rollout_env_steps_per_s", "update_chunks_per_s", "sft_samples_per_s", "demo_env_steps_per_s",
                "grpo_iteration_s", "pipeline_s")
"""The learning pipeline's speed figures, as one run of a recipe reports them (:func:`pipeline_speed`)."""


def _median(values) -> float | None:
    import statistics

    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def _grpo_speed(iterations: list[dict]) -> dict:
    """The GRPO figures of :data:`SPEED_FIELDS`: medians over ``iterations`` (records of the iterations after the
    first; those without an update are left out) of the rollout's env-steps/s, the update's chunks/s and the
    iteration's seconds."""
    ran = [r for r in iterations if r.get("perf/iteration_s") is not None]
    return {"rollout_env_steps_per_s": _median(r["perf/env_steps_per_s"] for r in ran),
            "update_chunks_per_s": _median(r["policy/chunks"] / r["perf/update_s"] for r in ran if r.get("perf/update_s")),
            "grpo_iteration_s": _median(r["perf/iteration_s"] for r in ran)}


def pipeline_speed(run) -> dict:
    """:data:`SPEED_FIELDS` of a finished pipeline run directory (``./run.sh RECIPE``, or the copy of its small files
    that ``benchmarks/learning_h100/gpu_stages.sh`` brings back from a GPU machine), from what its stages wrote: the
    demo loop's env-steps/s (``stages.json``), the median logged SFT samples/s, the median over GRPO iterations after
    the first (its allocations and autotuning) of the rollout's env-steps/s while sampling, the update's chunks/s and
    the iteration's seconds, and the stages' summed wall time; and the run's device (its results.json). A figure the
    run lacks is None."""
    import json
    from pathlib import Path

    from openarm_vla.utils.run_files import read_metrics

    run = Path(run)

    def metrics(stage: str) -> list[dict]:  # the run's own layout, else the copied one (STAGE_metrics.jsonl)
        own = run / stage / "metrics.jsonl"
        return read_metrics(own if own.is_file() else run / f"{stage}_metrics.jsonl")

    stages = json.loads((run / "stages.json").read_text()) if (run / "stages.json").is_file() else {}
    generation = stages.get("demos", {}).get("generation") or {}
    sft = [r["perf/samples_per_s"] for r in metrics("sft") if "perf/samples_per_s" in r]
    grpo = [r for r in metrics("grpo") if r["iteration"] > 1]
    results = json.loads((run / "results.json").read_text()) if (run / "results.json").is_file() else {}
    return {
        "device": results.get("device"),
        **_grpo_speed(grpo),
        "sft_samples_per_s": _median(sft),
        "demo_env_steps_per_s": generation.get("env_steps_per_s"),
        "pipeline_s": round(sum(st["wall_s"] for st in stages.values()), 1) if stages else None,
    }


def stage_speed(folder) -> dict:
    """:data:`SPEED_FIELDS` of a folder of stage benchmarks (``benchmarks/perf/profile_stages.py``'s
    ``profile_grpo.json`` of ``--plain`` iterations, ``profile_sft.json``, ``profile_demos.json``): before/after
    figures of one lease where the whole recipe does not fit. GRPO's are medians over its iterations after the
    first, as :func:`pipeline_speed`'s; a figure without its file is None (``pipeline_s`` always)."""
    import json
    from pathlib import Path

    folder = Path(folder)

    def load(stage: str) -> dict:
        f = folder / f"profile_{stage}.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    grpo, sft, demos = load("grpo"), load("sft"), load("demos")
    return {
        "device": grpo.get("device") or sft.get("device") or demos.get("device"),
        **_grpo_speed(grpo.get("timings", {}).get("iterations", [])[1:]),
        "sft_samples_per_s": sft.get("timings", {}).get("samples_per_s (unprofiled)"),
        "demo_env_steps_per_s": demos.get("timings", {}).get("env_steps_per_s"),
        "pipeline_s": None,
    }
