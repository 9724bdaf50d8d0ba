"""Throughput of the OpenArm tasks: env-steps/s with and without camera rendering, or a VLA driving the env.

    python scripts/benchmark.py --num_envs 256 1024 4096 --image_size 128 224 --steps 100 --device cuda --json OUT.json
    python scripts/benchmark.py --policy preset:small --num_envs 4096 --image_size 128 --steps 32 --device cuda
    python scripts/benchmark.py --task OpenArm-BoxGrasp-DR --num_envs 4096 env.variation.image_noise_std=0   # env.…=v
    python scripts/benchmark.py --pipeline before=runs/h100_before --pipeline after=runs/h100 --json benchmarks/perf/results.json
    python scripts/benchmark.py --pipeline before=benchmarks/perf/ab_h100/before --pipeline after=benchmarks/perf/ab_h100/after

Each (num_envs, image_size) point builds the env, warms up for --warmup steps (kernel compilation, CUDA
graphs), then times --steps env steps (each = decimation physics steps); "physics only" runs the same scene
without the camera. With --policy preset:NAME a random-init VLA acts (one forward per chunk of 8 steps per
env, only for envs whose queue is empty): env-steps/s, the share of wall time in the policy, and model MFU
from analytic FLOPs against the H100 bf16 dense peak (:mod:`openarm_vla.perf`). The GRPO iteration
breakdown is measured by the trainer itself (``perf/*`` in metrics.jsonl); --pipeline NAME=RUN_DIR (repeatable)
reads the learning pipeline's speed figures from finished runs of a recipe instead (``perf.pipeline_speed``), or
from a folder of stage benchmarks (``benchmarks/perf/profile_stages.py`` outputs, ``perf.stage_speed``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from openarm_vla.cli import check_args, parse, run_main


@run_main("benchmark")
def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--task", default="OpenArm-BoxGrasp")
    p.add_argument("--num_envs", type=int, nargs="+", default=[2])
    p.add_argument("--image_size", type=int, nargs="+", default=[128])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--no_physics_only", action="store_true", help="skip the camera-less runs")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--policy", default=None, metavar="preset:NAME",
                   help="benchmark VLA rollout (random-init preset tiny|mini|small|openvla-oft-7b) driving the env")
    p.add_argument("--pipeline", action="append", default=[], metavar="NAME=RUN_DIR",
                   help="a finished pipeline run's speed figures instead of an env benchmark (e.g. before=runs/h100_old), "
                        "or a folder of profile_stages.py outputs")
    args, overrides = parse(p, argv)
    if args.pipeline:
        return pipeline_table(p, args)
    check_args("benchmark", args, {"steps": ">= 1", "warmup": ">= 0"}, files=("json",))
    if args.policy is not None and not args.policy.startswith("preset:"):
        p.error("--policy must be preset:NAME (tiny | mini | small | openvla-oft-7b)")

    from openarm_vla.perf import env_throughput, policy_rollout_throughput
    from openarm_vla.utils.io import atomic_write_json

    rows = []
    for n in args.num_envs:
        sizes = list(args.image_size) + ([] if args.no_physics_only or args.policy else [None])
        for size in sizes:
            if args.policy:
                r = policy_rollout_throughput(args.task, args.policy.split(":", 1)[1], n, size, args.steps, args.warmup, args.device)
                print(f"[benchmark] {args.policy} {n:6d} envs {size}px: {r['env_steps_per_s']:,.1f} env-steps/s, policy "
                      f"{100 * r['policy_time_share']:.1f}% of time, {r['policy_ms_per_forward']} ms/forward, "
                      f"{r['gflops_per_sample']} GFLOP/sample, MFU {100 * r['mfu_h100_bf16']:.3f}% of H100 bf16", flush=True)
            else:
                r = env_throughput(args.task, n, size, args.steps, args.warmup, args.device, tuple(overrides))
                label = f"{size}px" if r["camera"] else "physics only"
                print(f"[benchmark] {n:6d} envs  {label:>12}: {r['env_steps_per_s']:>12,.0f} env-steps/s  "
                      f"({r['ms_per_step']} ms/step)", flush=True)
            rows.append(r)
            if args.json:  # keep partial results if a later point fails
                atomic_write_json(args.json, {"results": rows})
    if args.policy:
        print("\n| policy | envs | px | env-steps/s | policy share | ms/forward | GFLOP/sample | MFU (H100 bf16) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['policy']} | {r['num_envs']} | {r['image_size']} | {r['env_steps_per_s']:,.1f} | "
                  f"{100 * r['policy_time_share']:.1f}% | {r['policy_ms_per_forward']} | {r['gflops_per_sample']} | "
                  f"{100 * r['mfu_h100_bf16']:.3f}% |")
    else:
        print("\n| envs | camera | env-steps/s | ms/step |\n|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['num_envs']} | {str(r['image_size']) + ' px' if r['camera'] else 'none'} | "
                  f"{r['env_steps_per_s']:,.0f} | {r['ms_per_step']} |")


def pipeline_table(p: argparse.ArgumentParser, args) -> None:
    from openarm_vla.perf import SPEED_FIELDS, pipeline_speed, stage_speed
    from openarm_vla.utils.io import atomic_write_json

    runs = dict(r.split("=", 1) if "=" in r else (Path(r).name, r) for r in args.pipeline)
    is_run = {d: (Path(d) / "stages.json").is_file() for d in runs.values()}
    if missing := [d for d, run in is_run.items() if not run and not any(Path(d).glob("profile_*.json"))]:
        p.error(f"--pipeline: neither a pipeline run (stages.json) nor stage benchmarks (profile_*.json) in "
                f"{', '.join(missing)}")
    speeds = {name: {"dir": d, **(pipeline_speed(d) if is_run[d] else stage_speed(d))} for name, d in runs.items()}
    print("| figure | " + " | ".join(runs) + " |\n|---|" + "---:|" * len(runs))
    for f in ("device", *SPEED_FIELDS):
        cells = ("-" if (v := speeds[n][f]) is None else v if isinstance(v, str) else f"{v:,}" for n in runs)
        print(f"| {f} | " + " | ".join(cells) + " |")
    if args.json:
        atomic_write_json(args.json, {"runs": speeds})


if __name__ == "__main__":
    main()
