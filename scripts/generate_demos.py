"""Generate demonstrations headless with an expert in many envs at once, into an Isaac Lab recorder HDF5.

    python scripts/generate_demos.py --task OpenArm-BoxGrasp --num_demos 100 --num_envs 16 \
        --output datasets/box_grasp.hdf5 [--success_only | --no-success_only] [--seed 0] \
        [--device auto] [--image_size 128] [--expert scripted | ppo:CKPT] [--group_size 1] \
        [--image_compression gzip | lzf | none] [env.…=v]

Every env runs the expert; each finished episode becomes ``data/demo_K`` (successful ones only with
--success_only, the default) until --num_demos are written. The layout of a demo is in
:mod:`openarm_vla.data.recorder`; ``dataset_statistics.json`` (per-dim q01/q99/mean/std of actions and
obs/joint_pos) is written beside the file. Box variants (size, colour) are chosen per env when the scene is
built; --group_size 1 (default here) gives neighbouring envs different boxes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from openarm_vla.cli import add_env_args, check_args, fail, parse, run_main


@run_main("generate_demos")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="generate_demos", description=__doc__.splitlines()[0])
    add_env_args(p, image_size=128)
    p.add_argument("--num_demos", type=int, default=10, help="episodes to write")
    p.add_argument("--output", type=Path, required=True, help="HDF5 file to write (atomically)")
    p.add_argument("--success_only", action=argparse.BooleanOptionalAction, default=True,
                   help="write successful episodes only (default) / all finished episodes")
    p.add_argument("--expert", default="scripted", help="scripted | ppo:CKPT")
    p.add_argument("--group_size", type=int, default=1, help="consecutive envs sharing a box variant")
    p.add_argument("--max_episodes", type=int, default=None,
                   help="give up after this many finished episodes (default: 3 x num_demos + 2 x num_envs)")
    p.add_argument("--no_states", action="store_true", help="do not store the per-step states/ group")
    p.add_argument("--image_compression", default="gzip", choices=("gzip", "lzf", "none"),
                   help="filter of the image datasets: gzip (smallest), lzf or none (much faster to write and load)")
    p.add_argument("--no_progress", action="store_true")
    args, overrides = parse(p, argv)
    check_args("generate_demos", args, {"num_demos": ">= 1", "group_size": ">= 1", "max_episodes": ">= 1"},
               files=("output",))
    if args.expert != "scripted" and not args.expert.startswith("ppo:"):
        fail("generate_demos", f"--expert {args.expert!r}: expected 'scripted' or 'ppo:CKPT'")
    spec = "expert" if args.expert == "scripted" else args.expert

    from openarm_vla.data.generate import generate_demos
    from openarm_vla.data.statistics import write_dataset_statistics
    from openarm_vla.policies import check_policy_spec, make_policy
    from openarm_vla.tasks.factory import load_env_cfg, make_env

    check_policy_spec(spec)
    t_env = time.time()
    env = make_env(args.task, cfg=load_env_cfg(args.task, args.physics, overrides), num_envs=args.num_envs,
                   device=args.device, image_size=args.image_size, group_size=args.group_size, seed=args.seed)
    import torch

    print(f"[generate_demos] env of {env.num_envs} built in {time.time() - t_env:.1f} s (its solver set-up compiles "
          "kernels where Warp's cache lacks them)", flush=True)
    torch.manual_seed(args.seed)
    t0 = time.time()
    try:
        env_args = {"num_envs": env.num_envs, "seed": args.seed, "device": str(env.device),
                    "image_size": args.image_size, "expert": args.expert, "group_size": args.group_size,
                    "success_only": bool(args.success_only), "control_dt": float(env.step_dt),
                    "max_episode_steps": int(env.max_episode_length)}
        r = generate_demos(env, args.task, make_policy(spec, env), args.output, args.num_demos, args.seed, env_args,
                           args.success_only, not args.no_states, args.max_episodes, args.image_compression,
                           args.expert, progress=not args.no_progress)
    finally:
        env.close()
    print(f"[generate_demos] {env_args['num_envs']} envs x {r.steps} steps in {r.loop_s:.1f} s: {r.parts}; before the "
          f"loop, the first env step (kernel compilation where Warp's cache lacks it) {r.first_step_s:.1f} s; after it, "
          f"the writes still queued {r.drain_s:.1f} s")
    rate = 100 * r.succeeded / r.finished if r.finished else float("nan")
    print(f"[generate_demos] expert {args.expert}: {r.succeeded}/{r.finished} finished episodes succeeded ({rate:.1f}%); "
          f"failures: {r.failures}; {time.time() - t0:.1f} s wall")
    if r.written < args.num_demos:
        print(f"[generate_demos] warning: only {r.written}/{args.num_demos} demos after {r.finished} episodes", file=sys.stderr)
    t_stats = time.time()
    stats = write_dataset_statistics(args.output)
    print(f"[generate_demos] wrote {r.written} demos ({r.total_steps} steps) to {args.output}; statistics: {stats} "
          f"({time.time() - t_stats:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
