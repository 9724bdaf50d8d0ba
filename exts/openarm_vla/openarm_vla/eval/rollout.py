"""Policy-agnostic episode loop over a vectorized env that auto-resets finished envs.

Each env gets a quota of episodes (num_episodes split as evenly as possible), and finishes beyond an
env's quota are ignored. Why quotas instead of "the first num_episodes finishes": with a shared
counter, envs whose episodes end early (successes end the episode) contribute more episodes, which
biases the success rate upward. With quotas every counted episode is the i-th episode of its env.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES


def _default_reset(env):
    obs, _ = env.reset()
    return obs


def run_episodes(
    env,
    policy_fn: Callable,
    num_episodes: int,
    reset_fn: Callable | None = None,
    on_step: Callable | None = None,
    progress: bool = True,
    max_env_steps: int | None = None,
) -> list[dict]:
    """Run until `num_episodes` episodes that started inside this call have finished.

    policy_fn(obs) -> actions [N, action_dim]; if it has `reset(env_ids)`, that is called for the envs
    whose episode ended (they were auto-reset by env.step).
    reset_fn(env) -> obs resets ALL envs at the start (default env.reset()), so every counted episode
    starts inside the loop.
    on_step(step, obs, actions, next_obs, extras) is called after each env step (e.g. video frames);
    `obs` is what the policy saw, `next_obs` of finished envs is already their next episode's first obs.
    max_env_steps: safety limit on loop iterations (None = unlimited).
    Returns per-episode dicts ordered by finish: env_id, episode (index within its env), success,
    steps, failure (category name), max_lift.
    """
    if num_episodes <= 0:
        return []
    n = env.num_envs
    quota = [num_episodes // n + (1 if i < num_episodes % n else 0) for i in range(n)]
    done_per_env = [0] * n
    records: list[dict] = []
    obs = (reset_fn or _default_reset)(env)
    if hasattr(policy_fn, "reset"):
        policy_fn.reset(None)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_episodes, desc="episodes", unit="ep", dynamic_ncols=True)
    step = 0
    try:
        while len(records) < num_episodes:
            if max_env_steps is not None and step >= max_env_steps:
                raise RuntimeError(f"run_episodes: {len(records)}/{num_episodes} episodes after {step} env steps (max_env_steps)")
            with torch.no_grad():
                actions = policy_fn(obs)
            next_obs, _rew, _term, _trunc, extras = env.step(actions)
            step += 1
            if on_step is not None:
                on_step(step, obs, actions, next_obs, extras)
            eps = extras.get("episodes") if isinstance(extras, dict) else None
            if eps is not None and len(eps["env_ids"]) > 0:
                ids = eps["env_ids"].tolist()
                succ, steps = eps["success"].tolist(), eps["steps"].tolist()
                fail, lift = eps["failure"].tolist(), eps["max_lift"].tolist()
                for j, e in enumerate(ids):
                    if done_per_env[e] >= quota[e]:
                        continue  # extra finish of an env whose quota is full
                    records.append({
                        "env_id": int(e),
                        "episode": done_per_env[e],
                        "success": bool(succ[j]),
                        "steps": int(steps[j]),
                        "failure": FAILURE_CATEGORIES[int(fail[j])],
                        "max_lift": float(lift[j]),
                    })
                    done_per_env[e] += 1
                    if bar is not None:
                        bar.update(1)
                if hasattr(policy_fn, "reset"):
                    policy_fn.reset(eps["env_ids"])
                if bar is not None:
                    k = sum(r["success"] for r in records)
                    bar.set_postfix(success=f"{k}/{len(records)}", steps=step)
            obs = next_obs
    finally:
        if bar is not None:
            bar.close()
    return records
