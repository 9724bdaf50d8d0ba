"""Evaluate a policy on an OpenArm task: success rate with a 95% CI, failure analysis, videos; or policies on a suite.

    python scripts/evaluate.py --task OpenArm-BoxGrasp --policy CKPT_DIR --num_episodes 100 \
        --num_envs 16 --output results/eval_ckpt --video 3 [--bank validation|test | --bank_seed S] [env.…=v]
    python scripts/evaluate.py --suite ood --policy SFT_DIR --policy GRPO_DIR --name sft --name grpo \
        --num_envs 256 --output results/ood [--episodes_scale 0.25 | --max_episodes 16]   # --suite ood --list

--policy: random | expert | ppo:PPO_POLICY_PT | preset:tiny|mini|small|openvla-oft-7b (random init) | a checkpoint
directory. Greedy decoding unless --temperature > 0. Episodes start from random initial states with an even
per-env quota, or from a bank of fixed starts (one episode from each): --bank validation (256 starts, what GRPO
validates on) or --bank test (1024 starts, touched once by a final report; see openarm_vla.eval.protocol), or
--bank_seed S with --num_episodes starts. Writes OUTPUT/results.json (summary and per-episode records: bank_index,
success, steps, failure) and K clips OUTPUT/videos/episode_<k>_<outcome>.mp4 from the front camera (among the first
episodes of 8 envs: a success and a failure first where there are both).
--suite NAME (openarm_vla.eval.suite): every --policy on every split's own bank, in the suite's task (--task to
change it); OUTPUT/NAME/SPLIT/results.json per evaluation (kept: a rerun resumes), OUTPUT/suite.{json,csv,png}.
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
    p.set_defaults(task=None)  # the suite's task with --suite
    p.add_argument("--policy", action="append", help="random | expert | ppo:PPO_POLICY_PT | preset:NAME | CKPT_DIR")
    p.add_argument("--num_episodes", type=int, default=None, help="default 10, or the bank's size")
    p.add_argument("--output", type=Path)
    p.add_argument("--video", type=int, default=0, metavar="K", help="film K episodes (a success and a failure first)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--max_steps", type=int, default=None, help="episode length in env steps (default: the task's)")
    p.add_argument("--bank", choices=("validation", "test"), default=None, help="a protocol bank (seed and size)")
    p.add_argument("--bank_seed", type=int, default=None, help="evaluate on the bank of this seed")
    p.add_argument("--suite", default=None, help="a frozen suite of splits (ood); --list prints it")
    p.add_argument("--list", action="store_true", help="with --suite: print its splits and exit")
    p.add_argument("--name", action="append", help="with --suite: each --policy's name (its output folder)")
    p.add_argument("--episodes_scale", type=float, default=1.0, help="with --suite: smoke runs, each split's episodes x this")
    p.add_argument("--max_episodes", type=int, default=None, help="with --suite: smoke runs, at most this many per split")
    p.add_argument("--no_progress", action="store_true")
    args, overrides = parse(p, argv)
    from openarm_vla.eval.evaluate import check_evaluate_args, evaluate_command

    check_evaluate_args(args)
    if args.list:
        from openarm_vla.eval.suite import describe, suite

        print(describe(suite(args.suite)))
        return 0
    check_args("evaluate", args, {"num_episodes": ">= 1", "video": ">= 0", "temperature": ">= 0", "max_steps": ">= 1",
                                  "bank_seed": ">= 0", "episodes_scale": "in (0, 1]", "max_episodes": ">= 1"},
               dirs=("output",))
    if args.suite:
        from openarm_vla.eval.suite import suite
        from openarm_vla.eval.suite_run import SuiteRunCfg, policy_names, run_suite

        names = policy_names(args.policy, args.name)
        cfg = SuiteRunCfg(args.task, args.physics, args.num_envs, args.device, args.image_size, args.seed,
                          args.episodes_scale, args.max_episodes, args.max_steps, args.temperature, args.video,
                          overrides, not args.no_progress)
        run_suite(suite(args.suite), args.policy, names, args.output, cfg)
        return 0
    evaluate_command(args, overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
