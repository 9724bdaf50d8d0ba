"""Build a registered OpenArm task with the knobs our scripts share (envs, device, camera size, physics).

``make_env`` resolves the task's config from the gym registry, applies the overrides, starts whatever
runtime the config needs (nothing for kit-less Newton; Isaac Sim's Kit for PhysX/RTX) and returns the
unwrapped :class:`ManagerBasedRLEnv`; ``env.close()`` also closes that runtime.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from pathlib import Path

import torch

PHYSICS = ("newton", "physx")


class TaskError(ValueError):
    """A bad task request (unknown id, unavailable backend, missing asset), with a one-line message."""


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TaskError(f"device {device!r} asked but CUDA is not available here; use --device cpu")
    return device


def load_env_cfg(task: str):
    """The env config instance registered for ``task``; unknown ids list ours."""
    import gymnasium as gym

    from openarm_vla.tasks import TASK_IDS

    if task not in gym.registry or "env_cfg_entry_point" not in gym.registry[task].kwargs:
        raise TaskError(f"unknown task {task!r}; openarm_vla tasks: {', '.join(TASK_IDS)}")
    module_name, class_name = gym.registry[task].kwargs["env_cfg_entry_point"].split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def physics_cfg(name: str):
    """The physics backend config; PhysX needs Isaac Sim (or the OV PhysX library) installed."""
    if name == "newton":
        return None  # the task's own Newton/MuJoCo-Warp settings
    if name == "physx":
        if importlib.util.find_spec("isaacsim") is None and importlib.util.find_spec("ovphysx") is None:
            raise TaskError(
                "physics 'physx' needs Isaac Sim (pip install 'isaacsim[all,extscache]==6.2.*' "
                "--extra-index-url https://pypi.nvidia.com) or the OV PhysX library (pip install ovphysx); "
                "kit-less runs use physics=newton"
            )
        from isaaclab.physics import PhysxAutoCfg
        from isaaclab_ov.physics import OvPhysxCfg
        from isaaclab_physx.physics import PhysxCfg

        return PhysxAutoCfg(isaacsim_physx=PhysxCfg(), ovphysx=OvPhysxCfg())
    raise TaskError(f"unknown physics {name!r}; choose one of {PHYSICS}")


def configure(
    cfg,
    num_envs: int | None = None,
    device: str = "auto",
    image_size: int | None = None,
    group_size: int | None = None,
    physics: str = "newton",
    seed: int | None = None,
):
    """Apply the common overrides to an env config in place and return it."""
    usd = str(getattr(cfg.scene.robot.spawn, "usd_path", ""))
    if usd and "://" not in usd and not Path(usd).is_file():
        raise TaskError(f"robot asset not found: {usd}; rebuild it with `python scripts/build_assets.py`")
    if num_envs is not None:
        cfg.scene.num_envs = num_envs
    cfg.sim.device = resolve_device(device)
    if image_size is not None and getattr(cfg.scene, "front_camera", None) is not None:
        cfg.set_camera_resolution(image_size)
    if group_size is not None:
        cfg.set_group_size(group_size)
    pcfg = physics_cfg(physics)
    if pcfg is not None:
        cfg.sim.physics = pcfg
    if seed is not None:
        cfg.seed = seed
    return cfg


def make_env(task: str = "OpenArm-BoxGrasp", cfg=None, headless: bool = True, render_mode: str | None = None, **overrides):
    """Build the task's env (unwrapped ManagerBasedRLEnv); ``overrides`` go to :func:`configure`."""
    import gymnasium as gym

    from isaaclab.app import launch_simulation

    import openarm_vla.tasks  # noqa: F401  (registers the gym ids)

    cfg = configure(cfg or load_env_cfg(task), **overrides)
    stack = contextlib.ExitStack()
    stack.enter_context(launch_simulation(cfg, {"device": cfg.sim.device, "headless": headless}))
    try:
        env = gym.make(task, cfg=cfg, render_mode=render_mode).unwrapped
    except Exception:
        stack.close()
        raise
    _close = env.close

    def close():
        try:
            _close()
        finally:
            stack.close()

    env.close = close
    return env
