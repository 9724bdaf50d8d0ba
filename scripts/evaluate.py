"""Evaluate a policy on an OpenArm task: success rate with a 95% CI, failure analysis, videos.

    python scripts/evaluate.py --task OpenArm-BoxGrasp --policy CKPT_DIR --num_episodes 100 \
        --num_envs 16 --output results/eval_ckpt --video 3

--policy: random | expert | preset:tiny|small|openvla-oft-7b (random init) | a checkpoint directory.
Greedy decoding unless --temperature > 0. Writes OUTPUT/results.json and OUTPUT/videos/episode_K.mp4
(the first K episodes of env 0, from the front camera).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMNI_KIT_ACCEPT_EULA", "YES")

CONTROL_DT = 0.02  # s per env step (sim dt 0.01 x decimation 2)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="OpenArm-BoxGrasp")
    p.add_argument("--policy", required=True, help="random | expert | ppo:PPO_POLICY_PT | preset:NAME | CKPT_DIR")
    p.add_argument("--num_episodes", type=int, default=10)
    p.add_argument("--num_envs", type=int, default=2)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--video", type=int, default=0, metavar="K", help="record the first K episodes of env 0")
    p.add_argument("--device", default="auto", help="env (and model) device: auto | cpu | cuda:0")
    p.add_argument("--physics", default="newton", choices=("newton", "physx"), help="newton (kit-less, default) | physx (needs Isaac Sim)")
    p.add_argument("--image_size", type=int, default=None, help="camera resolution (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--max_steps", type=int, default=None, help="episode length in env steps (default: the task's)")
    p.add_argument("--no_progress", action="store_true")
    return p.parse_args(argv)


def _fail(msg: str) -> None:
    print(f"[evaluate] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.num_episodes <= 0 or args.num_envs <= 0:
        _fail("--num_episodes and --num_envs must be positive")
    # Fail fast on a bad checkpoint path before paying for the simulator.
    special = args.policy in ("random", "expert") or args.policy.startswith("preset:")
    if not special:
        from openarm_vla.eval.policies import PolicyError, check_checkpoint_dir

        try:
            check_checkpoint_dir(args.policy)
        except PolicyError as e:
            _fail(str(e))

    import torch

    from openarm_vla.eval.metrics import format_failure_table, summarize
    from openarm_vla.eval.policies import PolicyError, make_policy
    from openarm_vla.eval.rollout import run_episodes
    from openarm_vla.eval.video import write_mp4
    from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES
    from openarm_vla.tasks.factory import TaskError, load_env_cfg, make_env
    from openarm_vla.utils.io import atomic_write_json

    torch.manual_seed(args.seed)
    try:
        cfg = load_env_cfg(args.task)
        if args.max_steps is not None:
            cfg.episode_length_s = args.max_steps * CONTROL_DT
        env = make_env(args.task, cfg=cfg, num_envs=args.num_envs, device=args.device,
                       image_size=args.image_size, seed=args.seed, physics=args.physics)
    except TaskError as e:
        _fail(str(e))
    try:
        try:
            policy = make_policy(args.policy, env, temperature=args.temperature, seed=args.seed)
        except (PolicyError, ValueError) as e:
            _fail(str(e))

        # Video of env 0: frames the policy saw, one file per finished episode of env 0.
        videos_dir = args.output / "videos"
        frames: list = []
        written: list[str] = []
        counted = {"env0": 0}

        def on_step(step, obs, actions, next_obs, extras):
            if counted["env0"] >= args.video:
                return
            frames.append(obs["policy"]["front_rgb"][0].cpu().numpy())
            eps = extras.get("episodes")
            if eps is not None and 0 in eps["env_ids"].tolist():
                path = write_mp4(videos_dir / f"episode_{counted['env0']}.mp4", frames, fps=int(round(1 / CONTROL_DT)))
                written.append(str(path))
                frames.clear()
                counted["env0"] += 1

        step_counter = {"n": 0}

        def on_step_all(step, *a):
            step_counter["n"] = step
            if args.video > 0:
                on_step(step, *a)

        t0 = time.perf_counter()
        episodes = run_episodes(env, policy, args.num_episodes, on_step=on_step_all, progress=not args.no_progress)
        wall = time.perf_counter() - t0
    finally:
        env.close()

    summary = summarize(episodes, FAILURE_CATEGORIES)
    env_steps = step_counter["n"] * args.num_envs
    summary.update({
        "task": args.task,
        "policy": args.policy,
        "temperature": args.temperature,
        "greedy": not args.temperature > 0,
        "num_envs": args.num_envs,
        "seed": args.seed,
        "max_steps": args.max_steps,
        "image_size": args.image_size,
        "wall_time_s": round(wall, 3),
        "env_steps": env_steps,
        "env_steps_per_s": round(env_steps / wall, 2) if wall > 0 else None,
        "videos": written,
    })
    atomic_write_json(args.output / "results.json", {"summary": summary, "episodes": episodes})

    lo, hi = summary["ci95"]
    print(f"\n[evaluate] {args.policy} on {args.task}: success {summary['successes']}/{summary['num_episodes']} "
          f"= {100 * summary['success_rate']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%), "
          f"mean steps {summary['mean_steps']:.1f}, {summary['env_steps_per_s']} env-steps/s")
    print(format_failure_table(summary["failure_counts"]))
    print(f"[evaluate] wrote {args.output / 'results.json'}" + (f" and {len(written)} video(s)" if written else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
