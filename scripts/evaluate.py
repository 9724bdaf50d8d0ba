"""Evaluate a policy on an OpenArm task: success rate with a 95% CI, failure analysis, videos.

    python scripts/evaluate.py --task OpenArm-BoxGrasp --policy CKPT_DIR --num_episodes 100 \
        --num_envs 16 --output results/eval_ckpt --video 3 [--bank validation|test | --bank_seed S] [env.…=v]

--policy: random | expert | ppo:PPO_POLICY_PT | preset:tiny|mini|small|openvla-oft-7b (random init) | a checkpoint
directory. Greedy decoding unless --temperature > 0. Episodes start from random initial states with an even
per-env quota, or from a bank of fixed starts (one episode from each): --bank validation (256 starts, what GRPO
validates on) or --bank test (1024 starts, touched once by a final report; see openarm_vla.eval.protocol), or
--bank_seed S with --num_episodes starts. Writes OUTPUT/results.json (summary and per-episode records: bank_index,
success, steps, failure) and OUTPUT/videos/episode_K.mp4 (the first K episodes of env 0, from the front camera).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openarm_vla.cli import add_env_args, check_args, parse, run_main


@run_main("evaluate")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="evaluate", description=__doc__.splitlines()[0])
    add_env_args(p)
    p.add_argument("--policy", required=True, help="random | expert | ppo:PPO_POLICY_PT | preset:NAME | CKPT_DIR")
    p.add_argument("--num_episodes", type=int, default=None, help="default 10, or the bank's size")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--video", type=int, default=0, metavar="K", help="record the first K episodes of env 0")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--max_steps", type=int, default=None, help="episode length in env steps (default: the task's)")
    p.add_argument("--bank", choices=("validation", "test"), default=None, help="a protocol bank (seed and size)")
    p.add_argument("--bank_seed", type=int, default=None, help="evaluate on the bank of this seed")
    p.add_argument("--no_progress", action="store_true")
    args, overrides = parse(p, argv)
    check_args("evaluate", args, {"num_episodes": ">= 1", "video": ">= 0", "temperature": ">= 0", "max_steps": ">= 1",
                                  "bank_seed": ">= 0"}, dirs=("output",))
    if args.bank:
        from openarm_vla.eval.protocol import bank

        if args.bank_seed is not None:
            p.error("--bank and --bank_seed: give one")
        b = bank(args.bank)
        args.bank_seed, args.num_episodes = b.seed, args.num_episodes or b.episodes
    args.num_episodes = args.num_episodes or 10

    from openarm_vla.policies import check_policy_spec, make_policy
    from openarm_vla.tasks.factory import load_env_cfg, make_env

    check_policy_spec(args.policy)  # before paying for the simulator
    cfg = load_env_cfg(args.task, args.physics, overrides)
    if args.max_steps is not None:
        cfg.episode_length_s = args.max_steps * cfg.sim.dt * cfg.decimation
    env = make_env(args.task, cfg=cfg, num_envs=args.num_envs, device=args.device, image_size=args.image_size,
                   seed=args.seed)
    import torch

    from openarm_vla.eval.evaluate import evaluate_policy
    from openarm_vla.eval.metrics import format_failure_table

    torch.manual_seed(args.seed)
    try:
        policy = make_policy(args.policy, env, temperature=args.temperature, seed=args.seed)
        info = {"task": args.task, "policy": args.policy, "temperature": args.temperature, "greedy": not args.temperature > 0,
                "seed": args.seed, "max_steps": args.max_steps, "image_size": args.image_size, "bank": args.bank}
        summary = evaluate_policy(env, policy, args.num_episodes, args.output, args.bank_seed, args.video,
                                  not args.no_progress, info)
    finally:
        env.close()
    lo, hi = summary["ci95"]
    print(f"\n[evaluate] {args.policy} on {args.task}: success {summary['successes']}/{summary['num_episodes']} "
          f"= {100 * summary['success_rate']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%), "
          f"mean steps {summary['mean_steps']:.1f}, {summary['env_steps_per_s']} env-steps/s")
    print(format_failure_table(summary["failure_counts"]))
    print(f"[evaluate] wrote {args.output / 'results.json'}" + (f" and {len(summary['videos'])} video(s)" if summary["videos"] else ""),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
