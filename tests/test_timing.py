"""TimedPolicy: the policy's time and the samples it forwarded, counted without a host sync per call."""

import torch

from openarm_vla.utils import timing
from openarm_vla.utils.timing import TimedPolicy


class _Chunks:
    """A stand-in env policy: each call 'forwards' the envs of the next mask and advances a fake clock 10 ms."""

    accepts_active = True

    def __init__(self, masks, clock):
        self.masks, self.clock, self.calls, self.last = masks, clock, 0, None

    def __call__(self, obs, active=None):
        self.clock[0] += 0.01
        self.last = {"new_chunk": self.masks[self.calls]}
        self.calls += 1
        return obs

    def reset(self, env_ids=None):
        self.reset_ids = env_ids


def test_timed_policy_counts_samples_forwards_and_time_on_read(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    masks = [torch.tensor(m, dtype=torch.bool) for m in ([1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0])]
    policy = TimedPolicy(_Chunks(masks, clock), "cpu")
    assert policy.accepts_active
    for _ in masks:
        policy(torch.zeros(4, 8))
        clock[0] += 1.0  # time outside the policy (the env step) is not the policy's
    assert policy.samples == 4 + 2 and policy.forwards == 2  # calls that forwarded any env: the 1st and the 3rd
    assert abs(policy.seconds - 4 * 0.01) < 1e-9
    policy.reset([1])
    assert policy.policy.reset_ids == [1]
    assert policy.samples == 6  # reading again counts nothing twice
