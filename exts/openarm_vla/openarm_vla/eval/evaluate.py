"""A policy's evaluation: greedy (or sampled) episodes from random starts with per-env quotas, or one from each
start of a held-out bank; the summary (success with its Wilson CI, failures, steps, throughput), the episode
records and a few episodes filmed (a success and a failure first where there are both). What
``scripts/evaluate.py`` runs and writes as results.json, and the rules its flags follow (``--suite`` hands over to
:mod:`openarm_vla.eval.suite_run`)."""

from __future__ import annotations

import time
from pathlib import Path


def evaluate_policy(env, policy, num_episodes: int, output: Path, bank_seed: int | None = None, videos: int = 0,
                    progress: bool = True, info: dict | None = None, desc: str = "eval", watch: int = 8) -> dict:
    """Run the episodes, write ``output/results.json`` ({"summary", "episodes"}) and ``videos`` clips to
    ``output/videos/``, chosen among the first episodes of ``watch`` envs; returns the summary (``info`` is merged
    into it: the command's settings; ``desc`` names the progress bar)."""
    from openarm_vla.rollout import FAILURE_CATEGORIES, run_episodes
    from openarm_vla.utils.io import atomic_write_json

    from .bank import EvalBank, evaluate_bank
    from .metrics import summarize
    from .video import EpisodeVideo, pick_clips, write_clips

    filmed = range(min(env.num_envs, max(watch, videos)))
    video = EpisodeVideo(filmed, -(-videos // len(filmed)))
    steps = {"n": 0}

    def on_step(step, *_):
        steps["n"] = step.t
        video(step)

    t0 = time.perf_counter()
    if bank_seed is None:
        episodes = run_episodes(env, policy, num_episodes, on_step=on_step, progress=progress)
    else:
        episodes = evaluate_bank(env, policy, EvalBank.build(env, num_episodes, bank_seed), on_step=on_step,
                                 progress=progress, desc=desc)
    wall = time.perf_counter() - t0
    summary = summarize(episodes, FAILURE_CATEGORIES)
    written = write_clips(pick_clips(video.clips, videos), output / "videos", fps=round(1 / env.step_dt))
    env_steps = steps["n"] * env.num_envs
    summary.update({**(info or {}), "num_envs": env.num_envs, "bank_seed": bank_seed, "wall_time_s": round(wall, 3),
                    "env_steps": env_steps, "env_steps_per_s": round(env_steps / wall, 2) if wall > 0 else None,
                    "videos": written})
    atomic_write_json(output / "results.json", {"summary": summary, "episodes": episodes})
    return summary


SUITE_ONLY = ("list", "name", "max_episodes")
BANK_ONLY = ("bank", "bank_seed", "num_episodes")


def check_evaluate_args(args) -> None:
    """``scripts/evaluate.py``'s flags that go together (one line each, before anything is built); fills in the task
    and a protocol bank's seed and size."""
    from openarm_vla.errors import ConfigError

    def given(k: str) -> bool:
        return getattr(args, k) not in (None, False)

    bad = []
    if args.suite:
        from .suite import suite

        s = suite(args.suite)
        args.task = args.task or s.task
        if args.list:
            return
        bad += [f"--{k}: --suite runs each split on its own bank (seed and episodes); drop --{k}"
                for k in BANK_ONLY if given(k)]
        bad += ["--suite needs at least one --policy"] if not args.policy else []
        if args.policy:
            from .suite_run import policy_names

            try:
                policy_names(args.policy, args.name)
            except ConfigError as e:
                bad += e.problems
    else:
        args.task = args.task or "OpenArm-BoxGrasp"
        bad += [f"--{k}: only with --suite" for k in SUITE_ONLY if given(k)]
        bad += ["--episodes_scale: only with --suite"] if args.episodes_scale != 1.0 else []
        if not args.policy:
            bad.append("--policy: required")
        elif len(args.policy) > 1:
            bad.append(f"--policy given {len(args.policy)} times: give one (several only with --suite)")
        if args.bank and args.bank_seed is not None:
            bad.append("--bank and --bank_seed: give one")
    bad += ["--output: required"] if args.output is None else []
    if bad:
        raise ConfigError(bad)
    if not args.suite:
        if args.bank:
            from .protocol import bank

            b = bank(args.bank)
            args.bank_seed, args.num_episodes = b.seed, args.num_episodes or b.episodes
        args.num_episodes = args.num_episodes or 10


def evaluate_command(args, overrides) -> dict:
    """One policy on one task (``scripts/evaluate.py`` without ``--suite``): build, evaluate, print; the summary."""
    import torch

    from openarm_vla.policies import check_policy_spec, make_policy
    from openarm_vla.tasks.factory import load_env_cfg, make_env

    from .metrics import format_failure_table

    spec = args.policy[0]
    check_policy_spec(spec)  # before paying for the simulator
    cfg = load_env_cfg(args.task, args.physics, overrides)
    env = make_env(args.task, cfg=cfg, num_envs=args.num_envs, device=args.device, image_size=args.image_size,
                   seed=args.seed, max_steps=args.max_steps)
    torch.manual_seed(args.seed)
    try:
        policy = make_policy(spec, env, temperature=args.temperature, seed=args.seed)
        info = {"task": args.task, "policy": spec, "temperature": args.temperature, "greedy": not args.temperature > 0,
                "seed": args.seed, "max_steps": args.max_steps, "image_size": args.image_size, "bank": args.bank}
        summary = evaluate_policy(env, policy, args.num_episodes, args.output, args.bank_seed, args.video,
                                  not args.no_progress, info)
    finally:
        env.close()
    lo, hi = summary["ci95"]
    print(f"\n[evaluate] {spec} on {args.task}: success {summary['successes']}/{summary['num_episodes']} "
          f"= {100 * summary['success_rate']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%), "
          f"mean steps {summary['mean_steps']:.1f}, {summary['env_steps_per_s']} env-steps/s")
    print(format_failure_table(summary["failure_counts"]))
    print(f"[evaluate] wrote {args.output / 'results.json'}" + (f" and {len(summary['videos'])} video(s)" if summary["videos"] else ""),
          flush=True)
    return summary
