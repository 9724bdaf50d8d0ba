"""Shared test fixtures: the kit-less Isaac Lab env on the CPU (built once per config), script runners.

Fast lane: ``./run.sh test -m "not sim"`` runs what needs no simulator (pure math, models, files, CLI errors).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMNI_KIT_ACCEPT_EULA", "YES")
ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


_ENVS: dict = {}

VISION = dict(task="OpenArm-BoxGrasp", num_envs=4, image_size=32, group_size=2)
"""The one vision env most sim tests share (4 envs at 32 px, groups of 2: two box variants)."""
STATE = dict(task="OpenArm-BoxGrasp-State", num_envs=2, image_size=None, group_size=1)


def make_env(task: str = "OpenArm-BoxGrasp", num_envs: int = 4, image_size: int | None = 32, group_size: int = 2, **overrides):
    """Build (once) and return the unwrapped env for ``task`` on the CPU; kept open while tests ask for the same
    config. Isaac Lab holds one simulation per process, so a new config closes the previous env."""
    key = (task, num_envs, image_size, group_size, tuple(sorted(overrides.items())))
    if key in _ENVS:
        return _ENVS[key]
    close_envs()
    from openarm_vla.tasks.factory import make_env as _make

    env = _make(task, num_envs=num_envs, device="cpu", image_size=image_size, group_size=group_size, **overrides)
    _ENVS[key] = env
    return env


def close_envs():
    for env in _ENVS.values():
        env.close()
    _ENVS.clear()


@pytest.fixture
def env_factory():
    return make_env


def pytest_sessionfinish(session, exitstatus):
    close_envs()


@pytest.fixture
def run_script():
    """Run ``scripts/<name>`` in a fresh Python process (Isaac Lab holds one simulation per process)."""

    def run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OMNI_KIT_ACCEPT_EULA": "YES",
               "PYTHONPATH": os.pathsep.join([str(ROOT / "exts" / "openarm_vla"), os.environ.get("PYTHONPATH", "")])}
        return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def script_main():
    """Call ``scripts/<name>``'s ``main(argv)`` in this process (error paths that exit before a simulator):
    returns (exit code, stderr lines)."""
    import importlib.util

    def call(script: str, *args: str, capsys=None):
        spec = importlib.util.spec_from_file_location(f"script_{Path(script).stem}", ROOT / "scripts" / script)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        with pytest.raises(SystemExit) as ei:
            mod.main(list(args))
        return ei.value.code

    return call


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """Toy-sized torch ops run as fast on one thread and stay fast when other processes share the
    2 cores (two OpenMP threads spin-waiting on a busy machine made the VLA tests ~5x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
