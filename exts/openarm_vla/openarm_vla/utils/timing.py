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
    """Wraps an env policy to time its calls (GPU-synchronized) and count the samples it forwards."""

    def __init__(self, policy, sync):
        self.policy, self.sync = policy, sync
        self.seconds, self.samples, self.forwards = 0.0, 0, 0
        self.accepts_active = getattr(policy, "accepts_active", False)

    def __call__(self, obs, **kw):
        self.sync()
        t0 = time.perf_counter()
        actions = self.policy(obs, **kw)
        self.sync()
        self.seconds += time.perf_counter() - t0
        m = int(self.policy.last["new_chunk"].sum()) if getattr(self.policy, "last", None) else 0
        self.samples += m
        self.forwards += int(m > 0)
        return actions

    def reset(self, env_ids=None):
        self.policy.reset(env_ids)
