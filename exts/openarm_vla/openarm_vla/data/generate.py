"""Demonstrations from an expert in many envs at once: the loop behind ``scripts/generate_demos.py``.

Every env runs the expert; each finished episode is written by a :class:`~openarm_vla.data.recorder.DemoRecorder`
(successful ones only by default; the rows stay on the env's device until then, and the HDF5 writes run in a thread
beside the loop) until ``num_demos`` are written or ``max_episodes`` have finished. A
:class:`~openarm_vla.utils.timing.StageClock` says where the loop's time went (expert, buffering, capture and
write, the rest: ``env.step``), the first env step, where Warp compiles what its cache lacks, and the wait for the
writes still queued when the loop ends (``write_drain_s``) are timed apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from openarm_vla.errors import PolicyError

from .hdf5_format import DemoWriter
from .recorder import DemoRecorder


@dataclass
class DemoRun:
    """What a generation produced and where its time went."""

    written: int
    finished: int
    succeeded: int
    failures: dict = field(default_factory=dict)
    steps: int = 0
    loop_s: float = 0.0
    first_step_s: float = 0.0
    parts: str = ""
    """The loop's seconds per part (StageClock.summary)."""
    total_steps: int = 0
    """Rows written (env steps of the written demos)."""
    drain_s: float = 0.0
    """The wait, after the loop, for the writes still queued."""


def generate_demos(env, task: str, expert, output, num_demos: int, seed: int, env_args: dict, success_only: bool = True,
                   store_states: bool = True, max_episodes: int | None = None, image_compression: str = "gzip",
                   expert_name: str = "scripted", progress: bool = True) -> DemoRun:
    """Run ``expert`` in every env of ``env`` and write demos to the HDF5 file ``output`` (atomically)."""
    from tqdm import tqdm

    from openarm_vla.rollout import step_loop
    from openarm_vla.tasks.factory import compile_env_step
    from openarm_vla.utils.timing import StageClock

    if "privileged" not in env.observation_manager.active_terms:
        raise PolicyError("the task has no 'privileged' observation group (the expert reads it)")
    clock = StageClock(env.device)

    def policy(obs):
        with clock.time("expert"):
            return expert(obs)

    policy.reset = expert.reset
    with DemoWriter(output, env_name=task, instruction=env.cfg.instruction, env_args=env_args,
                    image_compression=image_compression) as writer:
        rec = DemoRecorder(env, writer, num_demos, success_only, store_states=store_states,
                           max_episodes=max_episodes or 3 * num_demos + 2 * env.num_envs, seed=seed, expert=expert_name,
                           background_writes=True)
        first_step_s = compile_env_step(env)  # kernel compilation stays out of the loop's breakdown
        obs, _ = env.reset(seed=seed)
        rec.begin(obs)
        bar = tqdm(total=num_demos, desc="demos", unit="demo", dynamic_ncols=True, disable=not progress)
        steps = [0]

        def on_step(step) -> bool:
            with clock.time("buffering"):
                rec.add(step.obs, step.actions)
            with clock.time("capture and write"):
                rec.end_step(step.episodes)
            steps[0] = step.t
            bar.update(len([n for n in rec.last if n]))
            bar.set_postfix(expert_success=f"{rec.succeeded}/{rec.finished}")
            return rec.done

        t0 = time.time()
        try:
            step_loop(env, policy, obs, on_step)
            loop_s = time.time() - t0
        finally:
            rec.close()  # the writes still queued; the file is complete (or aborted) only after them
        drain_s = time.time() - t0 - loop_s
        bar.close()
        if rec.written == 0:
            raise PolicyError(f"no episodes to write after {rec.finished} finished episodes "
                              f"({'no successes' if success_only else 'none finished'}); nothing written to {output}")
        total = writer.total
        parts = clock.summary(loop_s, "env.step (physics, camera, observations)")
        writer.env_args["generation"] = {  # how fast it was made, read back by openarm_vla.perf.pipeline_speed
            "loop_s": round(loop_s, 3), "env_steps": env.num_envs * steps[0], "first_step_s": round(first_step_s, 3),
            "env_steps_per_s": round(env.num_envs * steps[0] / max(loop_s, 1e-9), 1), "parts": parts,
            "write_drain_s": round(drain_s, 3)}
    return DemoRun(rec.written, rec.finished, rec.succeeded, rec.failures, steps[0], loop_s, first_step_s, parts, total,
                   drain_s)
