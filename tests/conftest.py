"""Shared test fixtures: the kit-less Isaac Lab env on the CPU, built once per session and per config."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("OMNI_KIT_ACCEPT_EULA", "YES")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


_ENVS: dict = {}


def make_env(task: str = "OpenArm-BoxGrasp", num_envs: int = 2, image_size: int = 64, group_size: int = 8, **overrides):
    """Build (once) and return the unwrapped env for ``task`` on the CPU; kept open for the whole session.

    Isaac Lab holds one simulation per process, so tests share envs by config instead of rebuilding.
    """
    key = (task, num_envs, image_size, group_size, tuple(sorted(overrides.items())))
    if key in _ENVS:
        return _ENVS[key]
    for env in _ENVS.values():  # one simulation context per process
        env.close()
    _ENVS.clear()
    from openarm_vla.tasks.factory import make_env as _make

    env = _make(task, num_envs=num_envs, device="cpu", image_size=image_size, group_size=group_size, **overrides)
    _ENVS[key] = env
    return env


@pytest.fixture
def env_factory():
    return make_env


def pytest_sessionfinish(session, exitstatus):
    for env in _ENVS.values():
        env.close()
    _ENVS.clear()


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """Toy-sized torch ops run as fast on one thread and stay fast when other processes share the
    2 cores (two OpenMP threads spin-waiting on a busy machine made the VLA tests ~5x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
