"""Demo recording: per-env episode buffers of a vectorized env, written to the HDF5 layout as episodes end.

Per demo (T = num_samples, one row per env step; ``obs[t]`` is what the expert saw when it chose
``actions[t]``)::

    actions                         float32 [T, 8]   the 8-DoF normalized action sent to env.step
    obs/<policy term>               front_rgb uint8 [T, H, W, 3], joint_pos [T, 8] (what the VLA sees)
    obs/privileged_<term>           float32 [T, ...] joint_pos, joint_vel, box_pos, box_quat (xyzw), tcp_pos,
                                    tcp_to_box, box_size (env frame)
    states/<scene state>            [T, ...] the scene state BEFORE step t (capture_states: articulation/robot/...,
                                    rigid_object/box/... including the box mass and inertia)
    initial_state/<scene state>     [1, ...] the state at the episode start, for reset_to_states
    attrs: num_samples, success, seed, instruction (the episode's own), env_id, failure, max_lift, box_size, expert

Isaac Lab's own recorder stores ``states`` post-step; ours are pre-step, aligned with obs/actions. The state
after a step is the state before the next one (for an env that was auto-reset: its next episode's initial
state), so one capture per step serves both.
"""

from __future__ import annotations

import numpy as np

from openarm_vla.tasks.box_grasp.mdp.variation import instructions
from openarm_vla.tasks.box_grasp.scene_state import capture_states
from openarm_vla.utils.tree import tree_map, tree_stack, to_numpy

from .hdf5_format import DemoWriter


class DemoRecorder:
    """Buffers each env's episode in progress and writes the finished ones (successful only by default).

    Use as a :func:`openarm_vla.rollout.step_loop` callback (``recorder(step)`` returns True once
    ``num_demos`` are written or ``max_episodes`` have finished), or drive it by hand (teleop): ``begin(obs)``,
    then per step ``add(obs, actions)`` before and ``end_step(episodes)`` after ``env.step``.
    """

    def __init__(self, env, writer: DemoWriter, num_demos: int, success_only: bool = True, store_states: bool = True,
                 max_episodes: int | None = None, seed: int | None = None, expert: str = ""):
        self.env, self.writer = env, writer
        self.num_demos, self.success_only, self.store_states = num_demos, success_only, store_states
        self.max_episodes, self.seed, self.expert = max_episodes, seed, expert
        self.written = self.finished = self.succeeded = 0
        self.failures: dict[str, int] = {}
        self.last: list[str] = []
        """Names of the demos the last :meth:`end_step` wrote."""

    @property
    def done(self) -> bool:
        return self.written >= self.num_demos or (self.max_episodes is not None and self.finished >= self.max_episodes)

    def _capture(self) -> dict:
        return tree_map(to_numpy, capture_states(self.env))

    def begin(self, obs) -> None:
        """Start every env's episode from the current (just reset) state."""
        n = self.env.num_envs
        self._state = self._capture()
        self._init = [tree_map(lambda a, e=e: a[e:e + 1], self._state) for e in range(n)]
        self._instr = instructions(self.env)  # each episode's own instruction (the DR task draws one per episode)
        self._rows: list[list] = [[] for _ in range(n)]

    def buffered(self, env_id: int) -> int:
        """Steps of env ``env_id``'s episode in progress."""
        return len(self._rows[env_id])

    def restart(self, env_id: int) -> None:
        """Drop env ``env_id``'s episode in progress and start a new one from its current state (teleop reset)."""
        self._state = self._capture()
        self._init[env_id] = tree_map(lambda a: a[env_id:env_id + 1], self._state)
        self._instr[env_id] = instructions(self.env)[env_id]
        self._rows[env_id] = []

    def add(self, obs, actions) -> None:
        """One step's rows of every env: the observations and actions of the step about to be taken."""
        pol = obs["policy"]
        cols = {k: to_numpy(v) for k, v in pol.items()} if isinstance(pol, dict) else {"policy": to_numpy(pol)}
        cols.update({f"privileged_{k}": to_numpy(v) for k, v in obs["privileged"].items()})
        act = to_numpy(actions).astype(np.float32)
        state = self._state if self.store_states else None
        for e, rows in enumerate(self._rows):
            rows.append((cols, state, act, e))  # views into the step's batch arrays, stacked when written

    def end_step(self, episodes: list[dict]) -> list[str]:
        """After ``env.step``: write the envs' finished episodes and start their next ones. Returns demo names."""
        if self.store_states or episodes:  # without per-step states only the next episodes' initial states are needed
            self._state = self._capture()
        self.last = []
        now = instructions(self.env) if episodes else None
        for rec in episodes:
            e = rec["env_id"]
            self.finished += 1
            self.succeeded += rec["success"]
            self.failures[rec["failure"]] = self.failures.get(rec["failure"], 0) + 1
            if (rec["success"] or not self.success_only) and self.written < self.num_demos:
                self.last.append(self.write(e, rec))
            self._init[e] = tree_map(lambda a, e=e: a[e:e + 1], self._state)
            self._instr[e] = now[e]
            self._rows[e] = []
        return self.last

    def write(self, env_id: int, rec: dict) -> str | None:
        """Write env ``env_id``'s buffered episode with outcome ``rec`` (an episode record); None if empty."""
        rows = self._rows[env_id]
        if not rows:
            return None
        obs = tree_stack([{k: v[e] for k, v in cols.items()} for cols, _, _, e in rows])
        states = tree_stack([tree_map(lambda a, e=e: a[e], st) for _, st, _, e in rows]) if self.store_states else None
        box = obs.get("privileged_box_size")
        name = self.writer.write_episode(
            obs=obs, actions=np.stack([a[e] for _, _, a, e in rows]), states=states,
            initial_state=self._init[env_id], instruction=self._instr[env_id], success=rec["success"], seed=self.seed, env_id=env_id,
            failure=rec["failure"], max_lift=rec["max_lift"], box_size=box[0].tolist() if box is not None else None,
            expert=self.expert,
        )
        self.written += 1
        return name

    def __call__(self, step) -> bool:
        self.add(step.obs, step.actions)
        self.end_step(step.episodes)
        return self.done
