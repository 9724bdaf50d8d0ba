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

import queue
import threading

import numpy as np
import torch

from openarm_vla.tasks.box_grasp.mdp.variation import instructions
from openarm_vla.tasks.box_grasp.scene_state import capture_states
from openarm_vla.utils.tree import to_numpy, tree_cat, tree_leaves, tree_map, tree_zip

from .hdf5_format import DemoWriter


class EpisodeBuffer:
    """The rows of every env's episode in progress, kept where the env made them: one ``[envs, steps, ...]`` tensor
    per leaf of a step's row tree, written in place each step (one indexed copy per leaf, no host sync), read back
    one episode at a time when it is written. Grows by ``grow_steps`` rows when an episode outgrows it; if the
    device cannot hold the larger buffer it moves to the host once, with a line saying so."""

    def __init__(self, num_envs: int, device, grow_steps: int = 64):
        self.n, self.grow = num_envs, grow_steps
        self.device = torch.device(device)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        """Rows buffered per env (host side: growth and reads need no device sync)."""
        self.data = None
        self.capacity = 0
        self._pos = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._envs = torch.arange(num_envs, device=self.device)

    def append(self, row) -> None:
        """One step's rows of every env: a tree of ``[envs, ...]`` tensors."""
        if self.data is None or int(self.lengths.max()) >= self.capacity:
            self._resize(row)
        tree_zip(lambda buf, r: buf.__setitem__((self._envs, self._pos), r.to(buf.device, buf.dtype)), self.data, row)
        self.lengths += 1
        self._pos += 1

    def clear(self, env_ids) -> None:
        """Start the episodes of ``env_ids`` empty."""
        ids = np.asarray(env_ids, dtype=np.int64)
        self.lengths[ids] = 0
        self._pos[torch.as_tensor(ids, device=self._pos.device)] = 0

    def episode(self, env_id: int):
        """The buffered rows of env ``env_id`` as a tree of numpy arrays ``[T, ...]`` (copies)."""
        return self.episodes([env_id])[0]

    def episodes(self, env_ids, max_bytes: int = 1 << 30) -> list:
        """The buffered rows of each of ``env_ids``, like :meth:`episode`, read back together: one device -> host copy
        per leaf for as many episodes as fit in ``max_bytes`` (many envs finish on the same step; a copy per leaf
        per episode would wait on the device thousands of times). Each episode's arrays are views of that copy."""
        ids = [int(e) for e in env_ids]
        if not ids:
            return []
        row_bytes = sum(buf[0, 0].nelement() * buf.element_size() for buf in tree_leaves(self.data))
        out = []
        while ids:
            T = int(self.lengths[ids].max())
            k = max(1, min(len(ids), max_bytes // max(1, row_bytes * T)))
            batch, ids = ids[:k], ids[k:]
            rows = torch.as_tensor(batch, device=self.device)
            host = tree_map(lambda buf: to_numpy(buf[rows, :T]), self.data)
            for i, e in enumerate(batch):
                n = int(self.lengths[e])
                out.append(tree_map(lambda a, i=i, n=n: a[i, :n], host))
        return out

    def _resize(self, row) -> None:
        if self.data is None:  # empty buffers shaped like the row, grown below
            self.data = tree_map(lambda r: torch.empty((self.n, 0, *r.shape[1:]), dtype=r.dtype, device=self.device), row)
        cap = self.capacity + self.grow

        def grown(old, device):
            new = torch.empty((self.n, cap, *old.shape[2:]), dtype=old.dtype, device=device)
            new[:, :self.capacity] = old.to(device)
            return new

        try:
            data = tree_map(lambda t: grown(t, self.device), self.data)
        except torch.OutOfMemoryError:
            print(f"[demos] the episode buffer ({self.n} envs x {cap} steps) does not fit on {self.device}: "
                  "buffering on the host from here (slower; fewer --num_envs keeps it on the device)", flush=True)
            self.device = torch.device("cpu")
            data = tree_map(lambda t: grown(t, self.device), self.data)
            self._pos, self._envs = self._pos.cpu(), self._envs.cpu()
        self.data, self.capacity = data, cap


class BackgroundWrites:
    """Episodes written to a :class:`DemoWriter` by one thread, in order, while the loop goes on; at most ``depth``
    wait (the loop blocks beyond that). A write's error is raised by the next :meth:`submit` or by :meth:`close`."""

    def __init__(self, writer: DemoWriter, depth: int = 64):
        self.writer, self.error = writer, None
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="demo-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self.writer.write_episode(**job)
                except BaseException as e:  # noqa: BLE001  (re-raised in the loop's thread)
                    self.error = e

    def submit(self, **episode) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(episode)

    def close(self) -> None:
        """Wait for the queued writes; raise the first error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self.error is not None:
            raise self.error


class DemoRecorder:
    """Buffers each env's episode in progress and writes the finished ones (successful only by default).

    Use as a :func:`openarm_vla.rollout.step_loop` callback (``recorder(step)`` returns True once
    ``num_demos`` are written or ``max_episodes`` have finished), or drive it by hand (teleop): ``begin(obs)``,
    then per step ``add(obs, actions)`` before and ``end_step(episodes)`` after ``env.step``. The rows stay on the
    env's device until their episode is written (:class:`EpisodeBuffer`); with ``background_writes`` the HDF5
    writes run in a thread beside the loop (:meth:`close` waits for them).
    """

    def __init__(self, env, writer: DemoWriter, num_demos: int, success_only: bool = True, store_states: bool = True,
                 max_episodes: int | None = None, seed: int | None = None, expert: str = "",
                 background_writes: bool = False):
        self.env, self.writer = env, writer
        self.num_demos, self.success_only, self.store_states = num_demos, success_only, store_states
        self.max_episodes, self.seed, self.expert = max_episodes, seed, expert
        self.written = self.finished = self.succeeded = 0
        self.failures: dict[str, int] = {}
        self.last: list[str] = []
        """Names of the demos the last :meth:`end_step` wrote."""
        self._background = BackgroundWrites(writer) if background_writes else None

    @property
    def done(self) -> bool:
        return self.written >= self.num_demos or (self.max_episodes is not None and self.finished >= self.max_episodes)

    def begin(self, obs) -> None:
        """Start every env's episode from the current (just reset) state."""
        n = self.env.num_envs
        self._state = capture_states(self.env)
        self._init = [tree_map(lambda a, e=e: a[e:e + 1], self._state) for e in range(n)]
        self._instr = instructions(self.env)  # each episode's own instruction (the DR task draws one per episode)
        self._rows = EpisodeBuffer(n, self.env.device)

    def buffered(self, env_id: int) -> int:
        """Steps of env ``env_id``'s episode in progress."""
        return int(self._rows.lengths[env_id])

    def restart(self, env_id: int) -> None:
        """Drop env ``env_id``'s episode in progress and start a new one from its current state (teleop reset)."""
        self._state = capture_states(self.env)
        self._init[env_id] = tree_map(lambda a: a[env_id:env_id + 1], self._state)
        self._instr[env_id] = instructions(self.env)[env_id]
        self._rows.clear([env_id])

    def add(self, obs, actions) -> None:
        """One step's rows of every env: the observations and actions of the step about to be taken."""
        pol = obs["policy"]
        cols = dict(pol) if isinstance(pol, dict) else {"policy": pol}
        cols.update({f"privileged_{k}": v for k, v in obs["privileged"].items()})
        row = {"obs": cols, "actions": torch.as_tensor(actions).float()}
        if self.store_states:
            row["states"] = self._state
        self._rows.append(row)

    def end_step(self, episodes: list[dict]) -> list[str]:
        """After ``env.step``: write the envs' finished episodes and start their next ones. Returns demo names."""
        if self.store_states or episodes:  # without per-step states only the next episodes' initial states are needed
            self._state = capture_states(self.env)
        keep = []
        for rec in episodes:
            self.finished += 1
            self.succeeded += rec["success"]
            self.failures[rec["failure"]] = self.failures.get(rec["failure"], 0) + 1
            if (rec["success"] or not self.success_only) and self.written + len(keep) < self.num_demos:
                keep.append(rec)
        self.last = [name for name in self.write_many(keep) if name is not None]
        now = instructions(self.env) if episodes else None
        for rec in episodes:
            e = rec["env_id"]
            self._init[e] = tree_map(lambda a, e=e: a[e:e + 1], self._state)
            self._instr[e] = now[e]
            self._rows.clear([e])
        return self.last

    def write(self, env_id: int, rec: dict) -> str | None:
        """Write env ``env_id``'s buffered episode with outcome ``rec`` (an episode record); None if empty."""
        return self.write_many([dict(rec, env_id=env_id)])[0]

    def write_many(self, records: list[dict]) -> list[str | None]:
        """Write the buffered episodes of several envs (episode records with their ``env_id``), read back from the
        device together; a name per record, None for an empty one."""
        has_rows = [self.buffered(r["env_id"]) > 0 for r in records]
        full = [r for r, has in zip(records, has_rows) if has]
        eps = self._rows.episodes([r["env_id"] for r in full])
        inits = self._initial_states([r["env_id"] for r in full])
        names = []  # one per episode of ``full``
        for rec, ep, init in zip(full, eps, inits):
            env_id = rec["env_id"]
            obs = ep["obs"]
            box = obs.get("privileged_box_size")
            episode = dict(obs=obs, actions=ep["actions"], states=ep.get("states"), initial_state=init,
                           instruction=self._instr[env_id], success=rec["success"], seed=self.seed, env_id=env_id,
                           failure=rec["failure"], max_lift=rec["max_lift"],
                           box_size=box[0].tolist() if box is not None else None, expert=self.expert)
            if self._background is None:
                names.append(self.writer.write_episode(**episode))
            else:  # named now (demo_<index>, as the writer would), written by the thread
                names.append(f"demo_{self.written}")
                self._background.submit(**episode, demo_id=self.written)
            self.written += 1
        written = iter(names)
        return [next(written) if has else None for has in has_rows]

    def _initial_states(self, env_ids: list[int]) -> list:
        """The initial states of ``env_ids``' episodes as numpy trees ``[1, ...]``: one copy per leaf for all."""
        if not env_ids:
            return []
        host = tree_map(to_numpy, tree_cat([self._init[e] for e in env_ids]))
        return [tree_map(lambda a, i=i: a[i:i + 1], host) for i in range(len(env_ids))]

    def close(self) -> None:
        """Wait for the background writes (a no-op without them); raise the first one's error."""
        if self._background is not None:
            self._background.close()

    def __call__(self, step) -> bool:
        self.add(step.obs, step.actions)
        self.end_step(step.episodes)
        return self.done
