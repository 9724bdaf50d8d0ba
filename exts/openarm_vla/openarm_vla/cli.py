"""What the scripts share: the common flags, config overrides, YAML recipes and the one-line error exit.

Common flags (``--task --device --physics --seed --num_envs --image_size``) are defined here once. Every
other ``key=value`` on a command line is an override for Isaac Lab's Hydra layer: ``env.…=v`` (the task's
env config), ``agent.…=v`` (the trainer config of train.py), ``physics=…`` / ``presets=…`` (Isaac Lab's
presets). A recipe (``--recipe configs/x.yaml``) holds the same keys as YAML; command-line overrides win.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMNI_KIT_ACCEPT_EULA", "YES")

OVERRIDE_ROOTS = ("env.", "agent.", "physics=", "presets=", "renderer=")


def fail(prog: str, msg: str, code: int = 2):
    """Exit with one line on stderr naming what is wrong (``[prog] error: ...``)."""
    print(f"[{prog}] error: {' '.join(str(msg).split())}", file=sys.stderr, flush=True)
    sys.exit(code)


def run_main(prog: str):
    """Decorate a script's ``main(argv)``: any of the project's errors (:class:`~openarm_vla.errors.OpenArmVLAError`)
    ends it with one line and exit status 2 (:func:`fail`), whichever layer raised it."""
    def deco(main):
        @functools.wraps(main)
        def wrapped(argv=None):
            from openarm_vla.errors import OpenArmVLAError

            try:
                return main(argv)
            except OpenArmVLAError as e:
                fail(prog, e)
        return wrapped
    return deco


def add_env_args(p: argparse.ArgumentParser, task: str = "OpenArm-BoxGrasp", num_envs: int | None = 2,
                 image_size: int | None = None) -> argparse.ArgumentParser:
    p.add_argument("--task", default=task, help=f"gym id (default {task})")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda:0 (env and model)")
    p.add_argument("--physics", default="newton", choices=("newton", "physx"),
                   help="newton (kit-less, default) | physx (needs Isaac Sim)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_envs", type=int, default=num_envs, help="vectorized envs")
    p.add_argument("--image_size", type=int, default=image_size, help="front camera resolution (default: the task's)")
    return p


def recipe_overrides(path: str | os.PathLike) -> list[str]:
    """A YAML recipe ({env: {...}, agent: {...}, physics: ...}) as ``key=value`` overrides."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"recipe not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping of env / agent sections")
    out: list[str] = []

    def walk(prefix: str, node):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out.append(f"{prefix}={override_literal(node)}")

    for key, value in data.items():
        if key not in ("env", "agent", "physics", "presets", "renderer"):
            raise ValueError(f"{p}: unknown section '{key}' (expected env, agent, physics, presets, renderer)")
        walk(key, value)
    return out


def override_literal(value) -> str:
    """A YAML value as the right-hand side of a ``key=value`` override (Hydra's literal syntax)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(repr(v) if isinstance(v, str) else override_literal(v) for v in value) + "]"
    return str(value)


def _is_override(arg: str) -> bool:
    return arg.startswith(OVERRIDE_ROOTS) and "=" in arg


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Parse the flags; return them and the config overrides (recipe first, then the command line)."""
    args, rest = p.parse_known_args(argv)
    eaten = []  # a list flag (--dataset A B) swallows the overrides that follow it: give them back
    for key, value in vars(args).items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            eaten += [v for v in value if _is_override(v)]
            setattr(args, key, [v for v in value if not _is_override(v)] or None)
    overrides = eaten + [a for a in rest if _is_override(a)]
    unknown = [a for a in rest if a not in overrides]
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)} (config overrides look like env.x=1 / agent.y=2)")
    recipe = getattr(args, "recipe", None)
    if recipe:
        try:
            overrides = recipe_overrides(recipe) + overrides
        except (OSError, ValueError) as e:
            fail(p.prog.removesuffix(".py"), str(e))
    return args, overrides
