"""The one loop that steps an env with a policy, and the one decoder of its finished-episode records.

Isaac Lab auto-resets a finished env inside ``env.step()``; the task reports each finished episode in
``extras["episodes"]`` (see :mod:`openarm_vla.tasks.box_grasp.mdp.success`). Everything that runs episodes
goes through :func:`step_loop`:

- :func:`run_episodes`: evaluation with per-env quotas (every counted episode is the i-th of its env, so
  short successful episodes do not bias the success rate upward);
- :func:`first_episodes`: one episode per env from the states just reset (a held-out evaluation bank, a
  GRPO round): a per-env ``finished`` latch, since nothing after an env's first finish may count;
- demo recording, replay and the benchmarks pass their own ``on_step``.

A policy is a callable ``obs -> actions [N, 8]`` with ``reset(env_ids)`` (see :mod:`openarm_vla.policies`);
the loop resets the policy's per-env state of every env whose episode ended. A policy whose ``accepts_active``
is true is also told which envs still matter (``policy(obs, active=mask)``) and may skip the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES


def episode_records(extras: Any) -> list[dict]:
    """The episodes that finished in this step, decoded from ``extras["episodes"]``: one dict each with
    env_id, success, steps, failure (category name), max_lift, gripper, max_held_steps (the longest hold of the
    lifted box, in control steps; None where the task does not report it)."""
    eps = extras.get("episodes") if isinstance(extras, dict) else None
    if eps is None or len(eps["env_ids"]) == 0:
        return []
    cols = {k: v.tolist() for k, v in eps.items()}
    return [
        {
            "env_id": int(cols["env_ids"][j]),
            "success": bool(cols["success"][j]),
            "steps": int(cols["steps"][j]),
            "failure": FAILURE_CATEGORIES[int(cols["failure"][j])],
            "max_lift": float(cols["max_lift"][j]),
            "gripper": float(cols["gripper"][j]) if "gripper" in cols else None,
            "max_held_steps": int(cols["max_held_steps"][j]) if "max_held_steps" in cols else None,
        }
        for j in range(len(cols["env_ids"]))
    ]


@dataclass
class Step:
    """What :func:`step_loop` hands to ``on_step`` after each env step."""

    t: int
    """Steps taken in this loop, this one included (1, 2, ...)."""
    obs: Any
    """What the policy saw."""
    actions: torch.Tensor
    next_obs: Any
    """After the step; for envs that finished, already their next episode's first observation."""
    terminated: torch.Tensor
    truncated: torch.Tensor
    extras: dict
    episodes: list[dict]
    """The episodes that finished in this step (:func:`episode_records`)."""


def step_loop(
    env,
    policy: Callable,
    obs,
    on_step: Callable[[Step], bool | None],
    max_steps: int | None = None,
    active: Callable[[], torch.Tensor | None] | None = None,
):
    """Step ``env`` with ``policy`` from ``obs`` until ``on_step`` returns True (or ``max_steps``); returns the
    last observation. ``active()`` gives the mask passed to policies that accept one."""
    tell_active = active is not None and getattr(policy, "accepts_active", False)
    t = 0
    while max_steps is None or t < max_steps:
        with torch.no_grad():  # not inference_mode: GRPO keeps rollout tensors for the update's autograd
            actions = policy(obs, active=active()) if tell_active else policy(obs)
        next_obs, _rew, terminated, truncated, extras = env.step(actions)
        t += 1
        episodes = episode_records(extras)
        if episodes and hasattr(policy, "reset"):
            policy.reset(torch.tensor([e["env_id"] for e in episodes], device=env.device))
        stop = on_step(Step(t, obs, actions, next_obs, terminated, truncated, extras, episodes))
        obs = next_obs
        if stop:
            break
    return obs


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ep", dynamic_ncols=True)


def run_episodes(
    env,
    policy: Callable,
    num_episodes: int,
    reset_fn: Callable | None = None,
    on_step: Callable[[Step], None] | None = None,
    progress: bool = True,
    max_env_steps: int | None = None,
) -> list[dict]:
    """Run until ``num_episodes`` episodes that started inside this call have finished.

    Each env gets a quota (num_episodes split as evenly as possible); finishes beyond an env's quota are
    ignored. ``reset_fn(env) -> obs`` resets ALL envs at the start (default ``env.reset()``), so every
    counted episode starts inside the loop. ``on_step(step)`` is called after each env step (e.g. video
    frames). ``max_env_steps``: safety limit (None = unlimited). Returns the episode records (see
    :func:`episode_records`) ordered by finish, each with ``episode`` = its index within its env.
    """
    if num_episodes <= 0:
        return []
    n = env.num_envs
    quota = [num_episodes // n + (1 if i < num_episodes % n else 0) for i in range(n)]
    done_per_env = [0] * n
    records: list[dict] = []
    obs = reset_fn(env) if reset_fn is not None else env.reset()[0]
    if hasattr(policy, "reset"):
        policy.reset(None)
    bar = _progress(num_episodes, "episodes", progress)

    def count(step: Step) -> bool:
        if on_step is not None:
            on_step(step)
        for rec in step.episodes:
            e = rec["env_id"]
            if done_per_env[e] < quota[e]:
                records.append({**rec, "episode": done_per_env[e]})
                done_per_env[e] += 1
                if bar is not None:
                    bar.update(1)
        if bar is not None and step.episodes:
            bar.set_postfix(success=f"{sum(r['success'] for r in records)}/{len(records)}", steps=step.t)
        if max_env_steps is not None and step.t >= max_env_steps and len(records) < num_episodes:
            raise RuntimeError(f"run_episodes: {len(records)}/{num_episodes} episodes after {step.t} env steps (max_env_steps)")
        return len(records) >= num_episodes

    try:
        step_loop(env, policy, obs, count)
    finally:
        if bar is not None:
            bar.close()
    return records


@dataclass
class FirstEpisodes:
    """One episode per env, from the states the envs were just reset to."""

    records: list[dict | None]
    """Per env id: its first episode's record, None if the env was not asked for or did not finish."""
    finish_step: torch.Tensor
    """[N] long: steps of each env's first episode (``max_steps`` where it did not finish; 0 if not asked for)."""
    success: torch.Tensor
    """[N] bool."""
    steps: int
    """Env steps the loop ran."""


def first_episodes(
    env,
    policy: Callable,
    obs,
    env_ids: torch.Tensor | None = None,
    on_step: Callable[[Step, torch.Tensor], None] | None = None,
    max_steps: int | None = None,
    progress: bool = False,
    desc: str = "episodes",
) -> FirstEpisodes:
    """Step until each env of ``env_ids`` (default all) has finished its first episode (or ``max_steps``).

    The per-env ``finished`` latch ignores whatever an env does after its first finish (it was auto-reset).
    ``on_step(step, active)`` gets the mask of envs that were still in their first episode at that step,
    i.e. whose actions and observations of the step count.
    """
    n, dev = env.num_envs, env.device
    wanted = torch.zeros(n, dtype=torch.bool, device=dev)
    wanted[slice(None) if env_ids is None else torch.as_tensor(env_ids, device=dev)] = True
    finished = ~wanted
    finish_step = torch.zeros(n, dtype=torch.long, device=dev)
    success = torch.zeros(n, dtype=torch.bool, device=dev)
    records: list[dict | None] = [None] * n
    pending = set(range(n) if env_ids is None else torch.as_tensor(env_ids).tolist())  # the latch on the host: no sync a step
    if hasattr(policy, "reset"):
        policy.reset(None)
    bar = _progress(len(pending), desc, progress)
    state = {"t": 0}

    def latch(step: Step) -> bool:
        active = ~finished
        if on_step is not None:
            on_step(step, active.clone())
        state["t"] = step.t
        fresh = [r for r in step.episodes if r["env_id"] in pending]
        pending.difference_update(r["env_id"] for r in fresh)
        if fresh:
            ids = torch.tensor([r["env_id"] for r in fresh], device=dev)
            finished[ids] = True
            finish_step[ids] = torch.tensor([r["steps"] for r in fresh], device=dev)
            success[ids] = torch.tensor([r["success"] for r in fresh], device=dev)
            for r in fresh:
                records[r["env_id"]] = r
        if bar is not None and fresh:
            bar.update(len(fresh))
            k = int(success.sum())
            bar.set_postfix(success=f"{k}/{sum(r is not None for r in records)}", steps=step.t)
        return not pending

    try:
        step_loop(env, policy, obs, latch, max_steps=max_steps, active=lambda: ~finished)
    finally:
        if bar is not None:
            bar.close()
    finish_step[~finished] = state["t"]
    return FirstEpisodes(records, finish_step, success, state["t"])
