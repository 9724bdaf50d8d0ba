"""Train a policy: SFT and GRPO of the VLA, or the PPO state teacher.

    isaaclab -p scripts/train.py --algo sft|grpo|ppo --task OpenArm-BoxGrasp [--preset tiny|mini|small|openvla-oft-7b]
        [--num_envs N] [--max_iterations K] [--seed S] [--device auto|cpu|cuda:0] [--output DIR] [--resume]
        [--dataset HDF5 ...] (sft) [--init CKPT_DIR] (grpo: the SFT checkpoint) [--recipe YAML] [--wandb]
        [env.…=v agent.…=v]

The trainer config is the task's registered ``sft_cfg_entry_point`` / ``grpo_cfg_entry_point`` /
``rsl_rl_cfg_entry_point`` configclass; ``agent.…=v`` overrides any field (e.g. agent.lr=1e-5
agent.num_groups=512), ``env.…=v`` the env config, ``--recipe`` a YAML file of the same keys. Every run writes
DIR/metrics.jsonl, TensorBoard events, DIR/config.yaml, DIR/checkpoints/ and DIR/curve.png; SFT and GRPO
also DIR/final (a checkpoint directory for ``scripts/evaluate.py --policy DIR/final``). ``--resume``
continues the run in DIR from its last checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from openarm_vla.cli import check_args, check_configs, fail, parse, run_main

ALGOS = {"sft": "sft_cfg_entry_point", "grpo": "grpo_cfg_entry_point", "ppo": "rsl_rl_cfg_entry_point"}


@run_main("train")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--algo", choices=tuple(ALGOS), required=True)
    p.add_argument("--task", default=None, help="gym id (default: OpenArm-BoxGrasp; ppo: OpenArm-BoxGrasp-State)")
    p.add_argument("--preset", default=None, help="VLA preset (agent.preset)")
    p.add_argument("--num_envs", type=int, default=None)
    p.add_argument("--max_iterations", type=int, default=None, help="SFT: optimizer steps")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--physics", default="newton", choices=("newton", "physx"))
    p.add_argument("--output", default=None, help="run directory (default runs/<algo>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--dataset", nargs="+", default=None, help="sft: HDF5 demo files")
    p.add_argument("--init", default=None, help="checkpoint directory to start from (grpo: the SFT checkpoint)")
    p.add_argument("--recipe", default=None, help="YAML file of env / agent overrides")
    p.add_argument("--wandb", action="store_true", help="also log to W&B (offline unless WANDB_API_KEY is set)")
    args, overrides = parse(p, argv)
    task = args.task or ("OpenArm-BoxGrasp-State" if args.algo == "ppo" else "OpenArm-BoxGrasp")
    output = args.output = args.output or f"runs/{args.algo}"
    check_args("train", args, {"max_iterations": ">= 1"}, dirs=("output",))

    from openarm_vla.tasks.factory import load_cfgs, resolve_device

    flags = {"preset": args.preset, "max_iterations": args.max_iterations, "seed": args.seed, "init": args.init,
             "datasets": args.dataset, "logger": "wandb" if args.wandb else None}
    env_cfg, agent = load_cfgs(task, ALGOS[args.algo], args.physics, overrides)
    device = resolve_device(args.device)
    for key, value in flags.items():
        if value is not None:
            if not hasattr(agent, key):
                fail("train", f"--{'dataset' if key == 'datasets' else key} does not apply to --algo {args.algo}")
            setattr(agent, key, value)
    if args.num_envs is not None:
        env_cfg.scene.num_envs = args.num_envs
    check_configs("train", env_cfg, agent, num_envs=args.num_envs)  # before the env or the model is built

    if args.algo == "ppo":
        from openarm_vla.train.ppo import train_ppo

        agent.device = device
        train_ppo(task, env_cfg, agent, output, resume=args.resume)
        return 0
    if args.algo == "sft":
        from openarm_vla.train.sft import train_sft as run
    else:
        from openarm_vla.train.grpo import train_grpo as run
    run(task, env_cfg, agent, output, device=device, resume=args.resume, num_envs=args.num_envs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
