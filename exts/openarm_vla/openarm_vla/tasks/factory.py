"""Build a registered OpenArm task with the knobs our scripts share (envs, device, camera size, physics).

``load_cfgs`` resolves a task's env config (and optionally a trainer config) through Isaac Lab's own Hydra
layer (``resolve_task_config``): physics and renderer presets, ``play_mode()`` for the ``-Play`` ids, and
``env.…=v`` / ``agent.…=v`` overrides, exactly as ``isaaclab train`` does. ``make_env`` applies the common
overrides, starts whatever runtime the config needs (nothing for kit-less Newton; Isaac Sim's Kit for
PhysX/RTX) and returns the unwrapped :class:`ManagerBasedRLEnv`; ``env.close()`` also closes that runtime.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch

from openarm_vla.errors import ConfigError, TaskError

PHYSICS = {"newton": "newton_mjwarp", "physx": "physx"}
"""``--physics`` name -> Isaac Lab physics preset of the task (:class:`~.box_grasp.box_grasp_env_cfg.PhysicsCfg`)."""


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TaskError(f"device {device!r} asked but CUDA is not available here; use --device cpu")
    return device


def physics_preset(name: str) -> str:
    """The physics preset for ``--physics name``; PhysX needs Isaac Sim (or the OV PhysX library) installed."""
    if name not in PHYSICS:
        raise TaskError(f"unknown physics {name!r}; choose one of {tuple(PHYSICS)}")
    if name == "physx" and importlib.util.find_spec("isaacsim") is None and importlib.util.find_spec("ovphysx") is None:
        raise TaskError(
            "physics 'physx' needs Isaac Sim (pip install 'isaacsim[all,extscache]==6.2.*' "
            "--extra-index-url https://pypi.nvidia.com) or the OV PhysX library (pip install ovphysx); "
            "kit-less runs use physics=newton"
        )
    return PHYSICS[name]


def _registry_kwargs(task: str) -> dict:
    import gymnasium as gym

    import openarm_vla.tasks  # noqa: F401  (registers the gym ids)
    from openarm_vla.tasks import TASK_IDS

    if task not in gym.registry or "env_cfg_entry_point" not in gym.registry[task].kwargs:
        raise TaskError(f"unknown task {task!r}; openarm_vla tasks: {', '.join(TASK_IDS)}")
    return gym.registry[task].kwargs


def load_cfgs(task: str, agent_entry: str | None = None, physics: str = "newton", overrides: Sequence[str] = ()):
    """(env config, trainer config or None) of ``task`` with presets, play mode and ``overrides`` applied.

    ``agent_entry`` is a registry key such as ``"grpo_cfg_entry_point"``. An override of a key the config
    lacks is an error naming it (Isaac Lab's layer would add the attribute silently).
    """
    kwargs = _registry_kwargs(task)
    if agent_entry is not None and agent_entry not in kwargs:
        raise TaskError(f"task {task} has no {agent_entry} (it offers: "
                        f"{', '.join(k for k in kwargs if k.endswith('_cfg_entry_point') and k != 'env_cfg_entry_point')})")
    from isaaclab_tasks.utils import resolve_task_config

    overrides = [f"physics={physics_preset(physics)}", *_checked(task, agent_entry, overrides)]
    try:
        env_cfg, agent_cfg = resolve_task_config(
            task, agent_entry, play_mode=bool(kwargs.get("play_mode", False)), overrides=overrides
        )
    except (ValueError, AttributeError, KeyError) as e:
        raise TaskError(f"task {task}: {' '.join(str(e).split())}") from None
    return env_cfg, agent_cfg


def _checked(task: str, agent_entry: str | None, overrides: Sequence[str]) -> list[str]:
    """Refuse ``env.x=`` / ``agent.x=`` overrides of keys the configs do not have (with a hint)."""
    from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

    from isaaclab_tasks.utils import PresetCfg

    roots = {"env": None, "agent": None}
    chosen = {arg.split("=", 1)[1] for arg in overrides if "=" in arg and "." not in arg.split("=", 1)[0]}
    for arg in overrides:
        key = arg.split("=", 1)[0].lstrip("+")
        sec, _, path = key.partition(".")
        if sec not in roots or not path or "=" not in arg:
            continue
        if sec == "agent" and agent_entry is None:
            raise TaskError(f"override {arg!r}: this command has no agent config (agent.* applies to train.py)")
        if roots[sec] is None:
            roots[sec] = load_cfg_from_registry(task, "env_cfg_entry_point" if sec == "env" else agent_entry)
        node = roots[sec]
        for i, part in enumerate(path.split(".")):
            if isinstance(node, PresetCfg) and not hasattr(node, part):  # Isaac Lab applies it to the chosen preset
                node = getattr(node, next((n for n in chosen if hasattr(node, n)), "default"))
            has = part in node if isinstance(node, dict) else hasattr(node, part)
            if not has:
                where = f"{sec}.{'.'.join(path.split('.')[:i])}".rstrip(".")
                fields = sorted(node) if isinstance(node, dict) else sorted(
                    getattr(node, "__dataclass_fields__", None) or [k for k in vars(node) if not k.startswith("_")])
                raise TaskError(f"override {arg!r}: {where} has no '{part}' (has: {', '.join(map(str, fields))})")
            node = node[part] if isinstance(node, dict) else getattr(node, part)
    return list(overrides)


def load_env_cfg(task: str, physics: str = "newton", overrides: Sequence[str] = ()):
    """The env config of ``task`` (see :func:`load_cfgs`); unknown ids list ours."""
    return load_cfgs(task, None, physics, overrides)[0]


def configure(
    cfg,
    num_envs: int | None = None,
    device: str = "auto",
    image_size: int | None = None,
    group_size: int | None = None,
    seed: int | None = None,
    camera: bool = True,
    cycle_variants: bool | None = None,
    max_steps: int | None = None,
):
    """Apply the common overrides to an env config in place, check every value (type, range) and return it
    (``camera=False``: the scene without its camera; ``cycle_variants``: groups take the box variants in turn;
    ``max_steps``: episodes of at most this many control steps)."""
    usd = str(getattr(cfg.scene.robot.spawn, "usd_path", ""))
    if usd and "://" not in usd and not Path(usd).is_file():
        raise TaskError(f"robot asset not found: {usd}; rebuild it with `python scripts/build_assets.py`")
    if num_envs is not None:
        cfg.scene.num_envs = num_envs
    cfg.sim.device = resolve_device(device)
    if not camera and hasattr(cfg, "remove_camera"):
        cfg.remove_camera()
    if image_size is not None and getattr(cfg.scene, "front_camera", None) is not None:
        cfg.set_camera_resolution(image_size)
    if group_size is not None and hasattr(cfg, "group_size"):
        cfg.group_size = group_size
    if seed is not None:
        cfg.seed = seed
    if max_steps is not None:
        cfg.episode_length_s = max_steps * cfg.sim.dt * cfg.decimation
    from openarm_vla.checks import problems

    bad = problems(cfg, "env")
    if bad:
        raise ConfigError(bad)
    if hasattr(cfg, "set_group_size"):  # also re-syncs an env.group_size=... override
        cfg.set_group_size(cfg.group_size, cycle_variants)
    return cfg


def make_env(task: str = "OpenArm-BoxGrasp", cfg=None, headless: bool = True, render_mode: str | None = None,
             physics: str = "newton", **overrides):
    """Build the task's env (unwrapped ManagerBasedRLEnv); ``overrides`` go to :func:`configure`."""
    import gymnasium as gym

    from isaaclab.app import launch_simulation

    cfg = configure(cfg if cfg is not None else load_env_cfg(task, physics), **overrides)
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


def compile_env_step(env) -> float:
    """Take one env step (all-zero action) and return its seconds; call it before a loop that times its steps.

    Warp compiles the physics step's kernels (MuJoCo-Warp's collision and solver) on the first ``env.step`` of a
    process whose kernel cache lacks them: a fresh machine, or a new ``--num_envs`` (one broadphase kernel takes
    the world count as a constant). Without this that compilation lands in the first timed iteration. The step
    leaves the envs mid-episode and draws no random numbers: callers reset before they run episodes."""
    import time

    from openarm_vla.utils.timing import device_sync

    sync = device_sync(env.device)
    sync()
    t0 = time.perf_counter()
    env.step(torch.zeros(env.num_envs, env.action_manager.total_action_dim, device=env.device))
    sync()
    return time.perf_counter() - t0
