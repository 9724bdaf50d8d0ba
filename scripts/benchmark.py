"""Throughput of the OpenArm tasks with random actions: env-steps/s with and without camera rendering.

    python scripts/benchmark.py --task OpenArm-BoxGrasp --num_envs 4096 --steps 200 --device cuda \
        --image_size 128 --json results/bench.json

Several sizes in one run (one process, one simulation at a time):
    python scripts/benchmark.py --num_envs 256 1024 4096 --image_size 128 224 --json OUT.json

Each (num_envs, image_size) point builds the env, warms up for --warmup steps (kernel compilation, CUDA
graphs), then times --steps env steps (each = decimation physics steps). "physics only" runs the same
scene without the camera. Speed targets live here, not in tests.
"""

from __future__ import annotations

import argparse
import json
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
    args = p.parse_args()

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
