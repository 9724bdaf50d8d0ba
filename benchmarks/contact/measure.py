"""Contact fidelity of the box grasp, per box variant: pad penetration and the box's slide in the hand.

    python benchmarks/contact/measure.py --num_envs 4096 --device cuda --json benchmarks/contact/gpu_4096.json
    python benchmarks/contact/measure.py --num_envs 6 --device cpu          # the CPU check (group size 1)

Two grasps per env (see :mod:`openarm_vla.eval.grasp_fidelity`): ``hand`` (a steady grasp built by hand: arm
posed by IK, box placed between the open pads, gripper closed to 0.6, held 2 s in the air) and ``expert``
(the scripted expert grasps and lifts the box from its random start, then holds it 2 s). Bars: penetration
<= 3 mm and slide <= 5 mm for every variant. The OpenArm-BoxGrasp scene runs without its camera; success
cannot end an episode while measuring. Any ``env.…=v`` override applies (e.g. ``env.sim.physics...``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

PEN_BAR, SLIDE_BAR = 0.003, 0.005


def per_variant(result: dict, mask: torch.Tensor | None = None) -> list[dict]:
    """Max / mean of penetration and slide over the envs of each box variant (by size)."""
    sizes = result["box_size"].cpu()
    keep = torch.ones(len(sizes), dtype=torch.bool) if mask is None else mask.cpu()
    rows = []
    for size in torch.unique(sizes, dim=0):
        sel = (sizes == size).all(dim=1) & keep
        if not sel.any():
            continue
        pen, slide = result["max_penetration"].cpu()[sel], result["max_slide"].cpu()[sel]
        rows.append({"box_size": [round(v, 4) for v in size.tolist()], "envs": int(sel.sum()),
                     "max_penetration_mm": round(1000 * float(pen.max()), 3),
                     "mean_penetration_mm": round(1000 * float(result["penetration"].cpu()[sel].mean()), 3),
                     "max_slide_mm": round(1000 * float(slide.max()), 3),
                     "mean_slide_mm": round(1000 * float(result["slide"].cpu()[sel].mean()), 3)})
    return rows


def main(argv=None) -> None:
    from openarm_vla.cli import parse

    p = argparse.ArgumentParser(prog="contact/measure", description=__doc__.splitlines()[0])
    p.add_argument("--num_envs", type=int, default=6)
    p.add_argument("--group_size", type=int, default=None, help="envs per box variant block (default 8, 1 below 48 envs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--closure", type=float, default=0.6, help="gripper closure of the hand-built grasp")
    p.add_argument("--json", type=Path, default=None)
    args, overrides = parse(p, argv)

    from openarm_vla.eval.grasp_fidelity import hold_in_air, measure_expert_hold
    from openarm_vla.tasks.factory import load_env_cfg, make_env
    from openarm_vla.utils.io import atomic_write_json

    cfg = load_env_cfg("OpenArm-BoxGrasp", overrides=overrides)
    group = args.group_size or (8 if args.num_envs >= 48 else 1)
    # groups take the box variants in turn: 6 groups cover all of them
    env = make_env("OpenArm-BoxGrasp", cfg=cfg, num_envs=args.num_envs, device=args.device, group_size=group,
                   camera=False, cycle_variants=True)
    solver = env.cfg.sim.physics.solver_cfg
    out = {"num_envs": env.num_envs, "device": str(env.device),
           "device_name": torch.cuda.get_device_name(0) if str(env.device).startswith("cuda") else "cpu",
           "solver": {k: getattr(solver, k) for k in ("iterations", "ls_iterations", "cone", "impratio", "tolerance")},
           "num_substeps": env.cfg.sim.physics.num_substeps, "bars_mm": {"penetration": 1000 * PEN_BAR, "slide": 1000 * SLIDE_BAR}}
    try:
        t = time.time()
        hand = hold_in_air(env, closure=args.closure)
        out["hand"] = {"variants": per_variant(hand), "dropped": int((hand["min_lift"] < 0.05).sum()),
                       "wall_s": round(time.time() - t, 1)}
        t = time.time()
        exp = measure_expert_hold(env)
        out["expert"] = {"variants": per_variant(exp, exp["held"]), "held": int(exp["held"].sum()),
                         "measured": int(exp["measured"].sum()), "steps": exp["steps"], "wall_s": round(time.time() - t, 1)}
    finally:
        env.close()
    ok = True
    for name in ("hand", "expert"):
        print(f"\n{name}: " + ", ".join(f"{k}={v}" for k, v in out[name].items() if k != "variants"))
        print("| box size [m] | envs | max penetration [mm] | mean | max slide [mm] | mean |\n|---|---:|---:|---:|---:|---:|")
        for r in out[name]["variants"]:
            print(f"| {r['box_size']} | {r['envs']} | {r['max_penetration_mm']:.2f} | {r['mean_penetration_mm']:.2f} | "
                  f"{r['max_slide_mm']:.2f} | {r['mean_slide_mm']:.2f} |")
            ok &= r["max_penetration_mm"] <= 1000 * PEN_BAR and r["max_slide_mm"] <= 1000 * SLIDE_BAR
    out["bars_met"] = bool(ok)
    print(f"\nbars (penetration <= {1000 * PEN_BAR:.0f} mm, slide <= {1000 * SLIDE_BAR:.0f} mm, every variant): "
          f"{'met' if ok else 'NOT met'}")
    if args.json:
        atomic_write_json(args.json, out, indent=1)


if __name__ == "__main__":
    main()
