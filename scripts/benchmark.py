"""Throughput of the OpenArm tasks with random actions: env-steps/s with and without camera rendering.

    python scripts/benchmark.py --task OpenArm-BoxGrasp --num_envs 4096 --steps 200 --device cuda \
        --image_size 128 --json results/bench.json

Several sizes in one run (one process, one simulation at a time):
    python scripts/benchmark.py --num_envs 256 1024 4096 --image_size 128 224 --json OUT.json

Each (num_envs, image_size) point builds the env, warms up for --warmup steps (kernel compilation, CUDA
graphs), then times --steps env steps (each = decimation physics steps). "physics only" runs the same
scene without the camera. Speed targets live here, not in tests.

VLA rollout driving the real env (random-init model of a preset; bf16 autocast on CUDA):
    python scripts/benchmark.py --policy preset:openvla-oft-7b --num_envs 16 --image_size 224 --device cuda

Each step the policy acts (one forward per chunk of 8 steps per env, only for envs whose queue is empty)
and the env steps. Reports env-steps/s, the share of wall time in the policy, and model MFU: analytic
FLOPs per forward (2 x params x tokens for the vision towers, projector and Llama, plus attention
4 x T^2 x d per layer) over the timed policy forwards, against the H100 bf16 dense peak (989 TFLOP/s).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def bench_point(task: str, num_envs: int, image_size: int | None, steps: int, warmup: int, device: str) -> dict:
    from openarm_vla.tasks.factory import load_env_cfg, make_env

    cfg = load_env_cfg(task)
    camera = image_size is not None and getattr(cfg.scene, "front_camera", None) is not None
    if not camera:
        cfg.scene.front_camera = None
        # an observation term that reads the camera cannot stay without it
        if hasattr(cfg.observations, "policy") and hasattr(cfg.observations.policy, "front_rgb"):
            cfg.observations.policy.front_rgb = None
    env = make_env(task, cfg=cfg, num_envs=num_envs, device=device, image_size=image_size if camera else None)
    try:
        env.reset()
        dev = env.device
        gen = torch.Generator(device=dev).manual_seed(0)
        actions = torch.rand(warmup + steps, num_envs, 8, device=dev, generator=gen) * 2 - 1
        for i in range(warmup):
            env.step(actions[i])
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(warmup, warmup + steps):
            env.step(actions[i])
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        return {
            "task": task,
            "num_envs": num_envs,
            "image_size": image_size if camera else None,
            "camera": camera,
            "steps": steps,
            "seconds": round(dt, 3),
            "env_steps_per_s": round(num_envs * steps / dt, 1),
            "ms_per_step": round(1000 * dt / steps, 2),
            "device": torch.cuda.get_device_name(0) if dev.startswith("cuda") else "cpu",
        }
    finally:
        env.close()


H100_BF16_PEAK = 989e12


def forward_flops(model, prompt_len: int) -> dict:
    """Analytic FLOPs of one forward for one sample (batch 1), from the model's module sizes.

    Vision: each tower runs all but its last block (OpenVLA reads the second-to-last layer) over
    patches + prefix tokens; projector over the patches; Llama over T = P + prompt + A (+ stop) tokens
    (all decoder layers; the LM head only over the 256-way action slice of the A readout columns).
    Matmul FLOPs = 2 x params x tokens; attention adds 4 x T^2 x hidden per layer (QK^T and AV).
    """
    cfg = model.config
    P, A = model.num_patches, cfg.num_action_tokens
    vision = 0
    towers = [model.vision_backbone.featurizer]
    if cfg.use_fused_vision:
        towers.append(model.vision_backbone.fused_featurizer)
    for vit in towers:
        tokens = P + getattr(vit, "num_prefix_tokens", 0)
        blocks = list(vit.blocks)[:-1]
        bparams = sum(p.numel() for b in blocks for p in b.parameters())
        pe = sum(p.numel() for p in vit.patch_embed.parameters())
        dim = vit.embed_dim
        vision += 2 * bparams * tokens + 2 * pe * P + 4 * tokens * tokens * dim * len(blocks)
    projector = 2 * sum(p.numel() for p in model.projector.parameters()) * P
    llm = cfg.llm
    layers = model.language_model.model.layers
    lparams = sum(p.numel() for p in layers.parameters())
    T = P + prompt_len + A + (1 if cfg.append_stop_token else 0)
    lm = 2 * lparams * T + 4 * T * T * llm.hidden_size * llm.num_layers + 2 * cfg.n_bins * llm.hidden_size * A
    return {"vision": vision, "projector": projector, "llm": lm, "total": vision + projector + lm, "tokens": T}


def bench_policy(task: str, preset: str, num_envs: int, image_size: int | None, steps: int, warmup: int, device: str) -> dict:
    from openarm_vla.eval.policies import make_policy
    from openarm_vla.tasks.factory import make_env
    from openarm_vla.vla import count_parameters
    from openarm_vla.vla.prompt import tokenize_prompts

    env = make_env(task, num_envs=num_envs, device=device, image_size=image_size)
    try:
        obs, _ = env.reset()
        dev = env.device
        cuda = dev.startswith("cuda")
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        policy = make_policy(f"preset:{preset}", env, device=dev)
        vla = policy.vla
        vla.dtype = "bfloat16" if cuda else "float32"  # bf16 autocast on CUDA
        ids, _ = tokenize_prompts(vla.tokenizer, [policy.instruction], vla.config.prompt_template,
                                  vla.config.prompt_suffix_ids, padding_side="left", device="cpu")
        flops = forward_flops(vla.model, ids.shape[1])
        t_policy = t_env = 0.0
        samples_forwarded = forwards = 0
        for i in range(warmup + steps):
            if i == warmup:
                t_policy = t_env = 0.0
                samples_forwarded = forwards = 0
            sync()
            t0 = time.perf_counter()
            actions = policy(obs)
            sync()
            t1 = time.perf_counter()
            obs, _, _, _, extras = env.step(actions)
            sync()
            t2 = time.perf_counter()
            t_policy += t1 - t0
            t_env += t2 - t1
            m = int(policy.last["new_chunk"].sum())
            samples_forwarded += m
            forwards += int(m > 0)
            eps = extras.get("episodes")
            if eps is not None:
                policy.reset(eps["env_ids"])
        total = t_policy + t_env
        achieved = flops["total"] * samples_forwarded / t_policy if t_policy > 0 else 0.0
        return {
            "task": task,
            "policy": f"preset:{preset}",
            "num_envs": num_envs,
            "image_size": image_size,
            "steps": steps,
            "seconds": round(total, 3),
            "env_steps_per_s": round(num_envs * steps / total, 1),
            "ms_per_step": round(1000 * total / steps, 2),
            "policy_time_share": round(t_policy / total, 4),
            "policy_ms_per_forward": round(1000 * t_policy / max(forwards, 1), 2),
            "forwards": forwards,
            "samples_forwarded": samples_forwarded,
            "model_params": count_parameters(vla.model),
            "tokens_per_sample": flops["tokens"],
            "gflops_per_sample": round(flops["total"] / 1e9, 3),
            "gflops_split": {k: round(flops[k] / 1e9, 3) for k in ("vision", "projector", "llm")},
            "achieved_tflops": round(achieved / 1e12, 4),
            "mfu_h100_bf16": round(achieved / H100_BF16_PEAK, 6),
            "autocast": vla.dtype,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        }
    finally:
        env.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="OpenArm-BoxGrasp")
    p.add_argument("--num_envs", type=int, nargs="+", default=[2])
    p.add_argument("--image_size", type=int, nargs="+", default=[128])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--no_physics_only", action="store_true", help="skip the camera-less runs")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--policy", default=None, metavar="preset:NAME",
                   help="benchmark VLA rollout (random-init preset tiny|small|openvla-oft-7b) driving the env")
    args = p.parse_args()

    if args.policy is not None:
        if not args.policy.startswith("preset:"):
            p.error("--policy must be preset:NAME (tiny | small | openvla-oft-7b)")
        from openarm_vla.utils.io import atomic_write_json

        rows = []
        for n in args.num_envs:
            for size in args.image_size:
                row = bench_policy(args.task, args.policy.split(":", 1)[1], n, size, args.steps, args.warmup, args.device)
                rows.append(row)
                print(f"[benchmark] {args.policy} {n:6d} envs {size}px: {row['env_steps_per_s']:,.1f} env-steps/s, "
                      f"policy {100 * row['policy_time_share']:.1f}% of time, {row['policy_ms_per_forward']} ms/forward, "
                      f"{row['gflops_per_sample']} GFLOP/sample, MFU {100 * row['mfu_h100_bf16']:.3f}% of H100 bf16", flush=True)
                if args.json:
                    atomic_write_json(args.json, {"results": rows})
        print("\n| policy | envs | px | env-steps/s | policy share | ms/forward | GFLOP/sample | MFU (H100 bf16) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['policy']} | {r['num_envs']} | {r['image_size']} | {r['env_steps_per_s']:,.1f} | "
                  f"{100 * r['policy_time_share']:.1f}% | {r['policy_ms_per_forward']} | {r['gflops_per_sample']} | "
                  f"{100 * r['mfu_h100_bf16']:.3f}% |")
        return

    from openarm_vla.utils.io import atomic_write_json

    rows = []
    for n in args.num_envs:
        points = list(args.image_size) + ([] if args.no_physics_only else [None])
        for size in points:
            row = bench_point(args.task, n, size, args.steps, args.warmup, args.device)
            rows.append(row)
            label = f"{size}px" if row["camera"] else "physics only"
            print(f"[benchmark] {n:6d} envs  {label:>12}: {row['env_steps_per_s']:>12,.0f} env-steps/s  ({row['ms_per_step']} ms/step)", flush=True)
            if args.json:  # keep partial results if a later point fails
                atomic_write_json(args.json, {"results": rows})
    print("\n| envs | camera | env-steps/s | ms/step |\n|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['num_envs']} | {str(r['image_size']) + ' px' if r['camera'] else 'none'} | {r['env_steps_per_s']:,.0f} | {r['ms_per_step']} |")


if __name__ == "__main__":
    main()
