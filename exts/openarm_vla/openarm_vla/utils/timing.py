"""Wall-clock timing of GPU work: a device-aware synchronize, seconds per named part of a loop, and a policy
wrapper that times its calls. For finding where time goes; speed targets live in ``scripts/benchmark.py``."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


def device_sync(device):
    """``torch.cuda.synchronize`` for a CUDA device (to time asynchronous GPU work), a no-op elsewhere."""
    return torch.cuda.synchronize if str(device).startswith("cuda") and torch.cuda.is_available() else (lambda: None)


class StageClock:
    """Wall seconds per named part of a loop. On CUDA each part is synchronized at both ends, so asynchronous GPU
    work is charged to the part that launched it (a few syncs per step: for finding the slow part, not for speed)."""

    def __init__(self, device):
        self.sync = device_sync(device)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, name: str):
        self.sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def summary(self, total: float, rest: str) -> str:
        """``name X s, ...`` for every part, and ``rest`` for what the parts leave of ``total`` seconds."""
        parts = {**self.seconds, rest: total - sum(self.seconds.values())}
        return ", ".join(f"{k} {v:.1f} s" for k, v in parts.items())


class TimedPolicy:
    """Wraps an env policy to time its calls and count the samples it forwards, without a host sync per call: on
    CUDA each call is bracketed by CUDA events (its span on the GPU's stream) and the counts stay on the device;
    ``seconds`` / ``samples`` / ``forwards`` synchronize once, when read. Elsewhere: wall time of each call."""

    def __init__(self, policy, device):
        self.policy = policy
        self.cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        self.accepts_active = getattr(policy, "accepts_active", False)
        self._events: list = []
        self._seconds, self._samples, self._forwards = 0.0, 0, 0
        self._pending: list = []  # [samples this call] as device scalars, summed when read

    def __call__(self, obs, **kw):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            actions = self.policy(obs, **kw)
            end.record()
            self._events.append((start, end))
        else:
            t0 = time.perf_counter()
            actions = self.policy(obs, **kw)
            self._seconds += time.perf_counter() - t0
        last = getattr(self.policy, "last", None)
        if last:
            self._pending.append(last["new_chunk"].sum())
        return actions

    def _collect(self) -> None:
        if self._events:
            torch.cuda.synchronize()
            self._seconds += sum(s.elapsed_time(e) for s, e in self._events) / 1e3
            self._events = []
        if self._pending:
            counts = torch.stack(self._pending).tolist()
            self._samples += int(sum(counts))
            self._forwards += sum(c > 0 for c in counts)
            self._pending = []

    @property
    def seconds(self) -> float:
        self._collect()
        return self._seconds

    @property
    def samples(self) -> int:
        self._collect()
        return self._samples

    @property
    def forwards(self) -> int:
        self._collect()
        return self._forwards

    def reset(self, env_ids=None):
        self.policy.reset(env_ids)
