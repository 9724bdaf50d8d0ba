"""A policy's evaluation: greedy (or sampled) episodes from random starts with per-env quotas, or one from each
start of a held-out bank; the summary (success with its Wilson CI, failures, steps, throughput), the episode
records and the first episodes of env 0 filmed. What ``scripts/evaluate.py`` runs and writes as results.json."""

from __future__ import annotations

import time
from pathlib import Path


def evaluate_policy(env, policy, num_episodes: int, output: Path, bank_seed: int | None = None, videos: int = 0,
                    progress: bool = True, info: dict | None = None) -> dict:
    """Run the episodes, write ``output/results.json`` ({"summary", "episodes"}) and ``output/videos/``; returns
    the summary (``info`` is merged into it: the command's settings)."""
    from openarm_vla.rollout import FAILURE_CATEGORIES, run_episodes
    from openarm_vla.utils.io import atomic_write_json

    from .bank import EvalBank, evaluate_bank
    from .metrics import summarize
    from .video import EpisodeVideo

    video = EpisodeVideo([0], videos, output / "videos", fps=round(1 / env.step_dt))
    steps = {"n": 0}

    def on_step(step, *_):
        steps["n"] = step.t
        video(step)

    t0 = time.perf_counter()
    if bank_seed is None:
        episodes = run_episodes(env, policy, num_episodes, on_step=on_step, progress=progress)
    else:
        episodes = evaluate_bank(env, policy, EvalBank.build(env, num_episodes, bank_seed), on_step=on_step,
                                 progress=progress)
    wall = time.perf_counter() - t0
    summary = summarize(episodes, FAILURE_CATEGORIES)
    env_steps = steps["n"] * env.num_envs
    summary.update({**(info or {}), "num_envs": env.num_envs, "bank_seed": bank_seed, "wall_time_s": round(wall, 3),
                    "env_steps": env_steps, "env_steps_per_s": round(env_steps / wall, 2) if wall > 0 else None,
                    "videos": video.written})
    atomic_write_json(output / "results.json", {"summary": summary, "episodes": episodes})
    return summary
