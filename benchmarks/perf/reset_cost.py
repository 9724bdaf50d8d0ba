"""What an env step costs when some envs reset inside it: the demo loop's anomaly (0.72-0.87 s per step of 2080
envs while recording, where the env alone steps in ~30 ms) happens while envs finish and auto-reset every step.

    python benchmarks/perf/reset_cost.py --num_envs 2080 --image_size 128 --device cuda:0 --json OUT.json

One env build per setting (the box-mass event on, as in the task, and off: a mass change asks Newton's MuJoCo-Warp
solver to recompute its model constants for every world). Per setting: ms per step with no reset, then with
``--resets_per_step`` envs timing out in every step (their episode counter set to the horizon: the step resets them
through Isaac Lab's own path), then again without. Zero actions; the camera renders as in the task.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from openarm_vla.tasks.factory import load_env_cfg, make_env, resolve_device
from openarm_vla.utils.io import atomic_write_json
from openarm_vla.utils.timing import device_sync


def ms_per_step(env, actions, steps: int, resets: int, sync) -> float:
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        if resets:
            ids = (torch.arange(resets, device=env.device) + i * resets) % env.num_envs
            env.episode_length_buf[ids] = env.max_episode_length
        env.step(actions)
    sync()
    return (time.perf_counter() - t0) / steps * 1e3


def measure(num_envs: int, image_size: int, device: str, mass: bool, steps: int, resets: int) -> dict:
    cfg = load_env_cfg("OpenArm-BoxGrasp")
    if not mass:
        cfg.events.box_mass = None
    env = make_env("OpenArm-BoxGrasp", cfg=cfg, num_envs=num_envs, device=device, image_size=image_size)
    try:
        env.reset()
        actions, sync = torch.zeros(num_envs, 8, device=env.device), device_sync(env.device)
        ms_per_step(env, actions, 3, resets, sync)  # kernels, graphs
        out = {"box_mass_event": mass, "no_reset_ms": ms_per_step(env, actions, steps, 0, sync),
               "reset_ms": ms_per_step(env, actions, steps, resets, sync),
               "no_reset_again_ms": ms_per_step(env, actions, steps, 0, sync)}
    finally:
        env.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num_envs", type=int, default=16)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--resets_per_step", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    device = resolve_device(args.device)
    rows = [measure(args.num_envs, args.image_size, device, mass, args.steps, args.resets_per_step) for mass in (True, False)]
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    doc = {"device": name, "num_envs": args.num_envs, "image_size": args.image_size, "steps": args.steps,
           "resets_per_step": args.resets_per_step, "rows": rows}
    for r in rows:
        print(f"[reset_cost] {args.num_envs} envs, {args.image_size} px, box-mass event {'on ' if r['box_mass_event'] else 'off'}: "
              f"{r['no_reset_ms']:.1f} ms/step without resets, {r['reset_ms']:.1f} with {args.resets_per_step} per step, "
              f"{r['no_reset_again_ms']:.1f} without again")
    if args.json:
        atomic_write_json(args.json, doc, indent=2)


if __name__ == "__main__":
    main()
