"""What the scripts share: the common flags, config overrides, YAML recipes, the checks of what they were
given and the one-line error exit.

Common flags (``--task --device --physics --seed --num_envs --image_size``) are defined here once. Every
other ``key=value`` on a command line is an override for Isaac Lab's Hydra layer: ``env.…=v`` (the task's
env config), ``agent.…=v`` (the trainer config of train.py), ``physics=…`` / ``presets=…`` (Isaac Lab's
presets). A recipe (``--recipe configs/x.yaml``) holds the same keys as YAML; command-line overrides win.
Flags, outputs (:func:`check_args`) and configs (:func:`check_configs`) are checked before anything is built;
each problem is one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from openarm_vla.checks import IMAGE_SIZE, flag_problems, problems
from openarm_vla.errors import ConfigError

os.environ.setdefault("OMNI_KIT_ACCEPT_EULA", "YES")

OVERRIDE_ROOTS = ("env.", "agent.", "physics=", "presets=", "renderer=")


COMMON_RANGES = {"num_envs": ">= 1", "image_size": IMAGE_SIZE, "seed": ">= 0"}
"""Ranges of the common flags, checked by :func:`check_args` wherever a script has them."""


def fail(prog: str, msg, code: int = 2):
    """Exit with one line on stderr naming what is wrong (``[prog] error: ...``); an error carrying ``problems``
    (a config check's) gets one such line per problem."""
    for line in getattr(msg, "problems", None) or [msg]:
        print(f"[{prog}] error: {' '.join(str(line).split())}", file=sys.stderr, flush=True)
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


def output_problem(flag: str, path: str | os.PathLike, directory: bool) -> str | None:
    """Why ``path`` (a run directory, or a file written atomically beside its siblings) cannot be written, in one
    line naming ``flag``; None if it can. Probed where it will be written (a temporary directory and file in the
    nearest existing ancestor, both removed), so a run fails at start, not after its env and model are built,
    and a check failing later leaves nothing behind."""
    p = Path(path)
    if directory and p.exists() and not p.is_dir():
        return f"{flag} {p}: is a file, expected a directory"
    if not directory and p.is_dir():
        return f"{flag} {p}: is a directory, expected a file path"
    base = p if directory else p.parent
    anc = next((a for a in (base, *base.parents) if a.exists() or a.is_symlink()), Path("."))
    if not anc.is_dir():
        return f"{flag} {p}: cannot be created, {anc} is a file"
    try:
        probe = tempfile.mkdtemp(prefix=".write_probe", dir=anc)
        try:
            Path(probe, "f").write_bytes(b"")
        finally:
            shutil.rmtree(probe, ignore_errors=True)
    except OSError as e:
        return f"{flag} {p}: cannot write in {anc} ({e.strerror or e})"
    return None


def check_args(prog: str, args: argparse.Namespace, ranges: Mapping[str, str | tuple] | None = None,
               dirs: Sequence[str] = (), files: Sequence[str] = ()) -> None:
    """Fail (one line per problem, exit 2) unless the flags lie in their ranges (:data:`COMMON_RANGES` and
    ``ranges``: ``{"num_episodes": ">= 1"}``, the language of :mod:`openarm_vla.checks`) and the outputs named
    by ``dirs`` (run directories) and ``files`` (files) can be written; flags left at None are not checked."""
    bad = flag_problems(args, {**{k: v for k, v in COMMON_RANGES.items() if hasattr(args, k)}, **(ranges or {})})
    for name, directory in [(d, True) for d in dirs] + [(f, False) for f in files]:
        if getattr(args, name, None) is not None:
            line = output_problem(f"--{name}", getattr(args, name), directory)
            bad += [line] if line else []
    if bad:
        fail(prog, ConfigError(bad))


def check_configs(prog: str, env_cfg=None, agent=None, num_envs: int | None = None) -> None:
    """Fail (one line per problem, exit 2) unless every value of the env config and the trainer config has its
    annotated type and declared range, and the trainer's rules that need the run hold (``run_problems``: e.g.
    GRPO's ``--num_envs`` a multiple of ``env.group_size``). ``num_envs`` is the ``--num_envs`` flag (one
    rank's envs); the world size is torchrun's ``WORLD_SIZE``."""
    bad = problems(env_cfg, "env") if env_cfg is not None else []
    bad += problems(agent, "agent") if agent is not None and not isinstance(agent, dict) else []
    if not bad and hasattr(agent, "run_problems"):  # its arithmetic needs the values' types right
        bad += agent.run_problems(env_cfg, num_envs, int(os.environ.get("WORLD_SIZE", "1")))
    if bad:
        fail(prog, ConfigError(bad))


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
    return mapping_overrides(data, p)


def mapping_overrides(data: Mapping, where: str | os.PathLike = "recipe") -> list[str]:
    """{env: {...}, agent: {...}, physics: ...} as ``key=value`` overrides (a recipe's or a pipeline stage's)."""
    out: list[str] = []

    def walk(prefix: str, node):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out.append(f"{prefix}={override_literal(node)}")

    for key, value in data.items():
        if key not in ("env", "agent", "physics", "presets", "renderer"):
            raise ValueError(f"{where}: unknown section '{key}' (expected env, agent, physics, presets, renderer)")
        walk(key, value)
    return out


def _hydra_quoted(text: str) -> str:
    """``text`` as a Hydra quoted string (backslashes, quotes and newlines escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def override_literal(value) -> str:
    """A YAML value as the right-hand side of a ``key=value`` override (Hydra's literal syntax): a string is quoted
    inside a list (a bare ``true`` there would turn into a bool) and where Hydra's grammar would read it otherwise
    (braces, spaces, quotes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_quoted(v) if isinstance(v, str) else override_literal(v) for v in value) + "]"
    if isinstance(value, str) and not re.fullmatch(r"[\w./:+-]*", value):
        return _hydra_quoted(value)
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
