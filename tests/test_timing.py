"""TimedPolicy: the policy's time and the samples it forwarded, counted without a host sync per call."""

import time

import torch

from openarm_vla.utils.timing import TimedPolicy


class _Chunks:
    """A stand-in env policy: each call 'forwards' the envs of the next mask and sleeps 10 ms."""

    accepts_active = True

    def __init__(self, masks):
        self.masks, self.calls, self.last = masks, 0, None

    def __call__(self, obs, active=None):
        time.sleep(0.01)
        self.last = {"new_chunk": self.masks[self.calls]}
        self.calls += 1
        return obs

    def reset(self, env_ids=None):
        self.reset_ids = env_ids


def test_timed_policy_counts_samples_forwards_and_time_on_read():
    masks = [torch.tensor(m, dtype=torch.bool) for m in ([1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0])]
    policy = TimedPolicy(_Chunks(masks), "cpu")
    assert policy.accepts_active
    for _ in masks:
        policy(torch.zeros(4, 8))
    assert policy.samples == 4 + 2 and policy.forwards == 2  # calls that forwarded any env: the 1st and the 3rd
    assert 0.04 <= policy.seconds < 1.0
    policy.reset([1])
    assert policy.policy.reset_ids == [1]
    assert policy.samples == 6  # reading again counts nothing twice
