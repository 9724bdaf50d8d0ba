"""The DR task's policy-image shading (light gain and tint, pixel noise) alone: eager against fused, at the recipe's
batch (4096 envs at 128 px), on one GPU.

    python benchmarks/generalization/shade_cost.py [--num_envs 4096] [--image_size 128] [--json OUT]

:func:`~openarm_vla.tasks.box_grasp.mdp.variation.shade` in eager ops passes over the batch about eight times;
``shade_batch`` compiles it into one kernel on the GPU. Milliseconds per call from CUDA events, after warm-up.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def ms_per_call(fn, *args, reps: int = 50) -> float:
    for _ in range(5):
        fn(*args)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn(*args)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num_envs", type=int, default=4096)
    p.add_argument("--image_size", type=int, default=128)
    p.add_argument("--noise_std", type=float, default=4.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("shade_cost: needs a GPU (the fused path is the GPU's)")
    from openarm_vla.tasks.box_grasp.mdp.variation import shade, shade_batch

    n, s = args.num_envs, args.image_size
    img = torch.randint(0, 256, (n, s, s, 3), dtype=torch.uint8, device="cuda")
    gain = torch.rand(n, 3, device="cuda") + 0.5
    out = {"device": torch.cuda.get_device_name(), "num_envs": n, "image_size": s, "noise_std": args.noise_std}
    for name, fn in (("eager", shade), ("fused", shade_batch)):
        out[f"{name}_ms"] = round(ms_per_call(fn, img, gain, args.noise_std), 3)
    same = torch.equal(shade(img, gain, 0.0), shade_batch(img, gain, 0.0))
    out["same_without_noise"] = same
    print(f"[shade_cost] {n} x {s} px: eager {out['eager_ms']} ms, fused {out['fused_ms']} ms a call "
          f"(same bytes without noise: {same})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
