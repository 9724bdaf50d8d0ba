"""Run policies over every split of a suite and write the suite's table, resumably.

Layout: ``OUTPUT/POLICY/SPLIT/results.json`` (what ``scripts/evaluate.py`` writes for one bank: summary and
per-episode records with ``bank_index``), then ``OUTPUT/suite.json``, ``suite.csv`` and ``suite.png``
(:mod:`openarm_vla.eval.suite_table`). An evaluation whose results.json exists (same bank seed, episodes and env
count) is not run again, so a killed run resumes where it stopped; a split whose evaluations all exist builds no env.

Envs: one env per split, shared by every policy, so all policies of a split see the very same starts (the paired
test needs that) and pay one build. The next split keeps that env when every value it changes is one the task
reads afresh at each reset or step: the env config class lists those in ``__live_fields__`` (dotted, without
``env.``: e.g. ``"variation.image_noise_std"``), and the runner sets them on the running env's config. Any other
change rebuilds (spawned assets such as box sizes and distractor slots, event terms that keep their config
from the build): the previous env is closed first, as Isaac Lab holds one simulation per process. A task that
declares nothing is rebuilt for every split.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from openarm_vla.errors import ConfigError

from .suite import Split, Suite, apply_overrides, novelty_problems, override_problems, suite_problems


@dataclass
class SuiteRunCfg:
    """What an ``evaluate.py --suite`` command sets besides the suite and its policies."""

    task: str | None = None
    """Default: the suite's task."""
    physics: str = "newton"
    num_envs: int = 64
    device: str = "auto"
    image_size: int | None = None
    seed: int = 0
    episodes_scale: float = 1.0
    max_episodes: int | None = None
    """Smoke runs: each split's episodes times ``episodes_scale``, at most ``max_episodes`` (the seeds stay)."""
    max_steps: int | None = None
    temperature: float = 0.0
    videos: int = 0
    env_overrides: list[str] = field(default_factory=list)
    """``env.x=v`` on top of the task, under the splits' overrides (``env.variation.*`` is the splits' own)."""
    progress: bool = True


def policy_names(specs: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    """The output folder of each policy: ``names`` if given, else the spec (a checkpoint: its folder's name)."""
    if names and len(names) != len(specs):
        raise ConfigError(f"{len(names)} --name for {len(specs)} --policy: give one name per policy, in order")
    out = list(names) if names else [re.sub(r"[^A-Za-z0-9._-]+", "_", s if "/" not in s else Path(s).name) for s in specs]
    bad = [n for n in out if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", n)]
    if bad:
        raise ConfigError(f"--name {bad[0]!r}: letters, digits, '.', '_' and '-' only (it names a folder)")
    if len(set(out)) != len(out):
        raise ConfigError(f"policy names {out} repeat: give each policy its own --name")
    return out


def split_episodes(split: Split, scale: float = 1.0, cap: int | None = None) -> int:
    n = max(1, round(split.episodes * scale))
    return min(n, cap) if cap is not None else n


def _value(cfg, key: str):
    node = cfg
    for part in key.removeprefix("env.").split("."):
        node = getattr(node, part)
    return node


def live_changes(base, current: dict | None, overrides: dict) -> dict | None:
    """The values to set on an env built from ``base`` + ``current`` so that it runs ``base`` + ``overrides``;
    None when one of them is not in ``base``'s class ``__live_fields__`` (rebuild)."""
    if current is None:
        return None
    live = {f"env.{k}" for k in getattr(type(base), "__live_fields__", ())}
    want = {k: overrides[k] if k in overrides else _value(base, k) for k in {*current, *overrides}}
    have = {k: current[k] if k in current else _value(base, k) for k in want}
    changed = {k: v for k, v in want.items() if v != have[k]}
    return changed if set(changed) <= live else None


def _existing(path: Path, seed: int, episodes: int, num_envs: int) -> dict | None:
    """The evaluation at ``path`` if it is this one; None if absent; an error if it is another's."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    s = doc["summary"]
    have, want = (s.get("bank_seed"), s.get("num_episodes"), s.get("num_envs")), (seed, episodes, num_envs)
    if have != want:
        raise ConfigError(f"{path}: written for (bank seed, episodes, envs) {have}, this run asks {want}; "
                          f"run with those settings or another --output")
    return doc


def check_suite_run(s: Suite, specs: Sequence[str], cfg: SuiteRunCfg):
    """Everything checkable before a simulator starts; returns the task's env config (overrides applied)."""
    from openarm_vla.policies import check_policy_spec
    from openarm_vla.tasks.factory import load_env_cfg

    bad = suite_problems(s)
    bad += [f"{o}: the suite's splits set env.variation.*" for o in cfg.env_overrides if o.startswith("env.variation.")]
    if bad:
        raise ConfigError(bad)
    for spec in specs:
        check_policy_spec(spec)
    env_cfg = load_env_cfg(cfg.task or s.task, cfg.physics, cfg.env_overrides)
    bad = override_problems(s, env_cfg)
    if not bad and hasattr(env_cfg, "variation"):
        bad = novelty_problems(s, env_cfg.variation)
    if bad:
        raise ConfigError(bad)
    if hasattr(env_cfg, "variation"):  # one set of distractor boxes for every split: no rebuild to raise their count
        key = "env.variation.num_distractors"
        most = max([env_cfg.variation.slots()] + [sp.overrides[key][1] for sp in s.splits if key in sp.overrides])
        env_cfg.variation.distractor_slots = most
    return env_cfg


def run_suite(s: Suite, specs: Sequence[str], names: Sequence[str], output: Path, cfg: SuiteRunCfg,
              log: Callable[[str], None] = print) -> dict:
    """Evaluate each policy on each split (skipping what exists), then write and return suite.json's content
    (with ``eval_wall_s``: each policy's episode time over all splits, and this invocation's env builds)."""
    import copy

    import torch

    from openarm_vla.policies import make_policy
    from openarm_vla.tasks.factory import make_env
    from openarm_vla.utils.io import atomic_write_json, atomic_write_text

    from .evaluate import evaluate_policy
    from .suite_table import format_table, plot_table, suite_table, table_csv

    base = check_suite_run(s, specs, cfg)
    task = cfg.task or s.task
    env, env_key, device, built, build_s = None, None, None, 0, 0.0
    results: dict = {}
    try:
        for i, sp in enumerate(s.splits):
            n = split_episodes(sp, cfg.episodes_scale, cfg.max_episodes)
            head = f"[suite] {i + 1}/{len(s.splits)} {sp.name} ({sp.axis}, {n} episodes, bank seed {sp.seed})"
            todo = []
            for name in names:
                doc = _existing(output / name / sp.name / "results.json", sp.seed, n, cfg.num_envs)
                if doc is None:
                    todo.append(name)
                else:
                    results[(name, sp.name)] = doc
            if not todo:
                log(f"{head}: done before, not run again")
                continue
            live = live_changes(base, env_key, dict(sp.overrides)) if env is not None else None
            if live is not None:
                apply_overrides(env.cfg, live)
                env_key = dict(sp.overrides)
                log(f"{head}: the last split's env" + (f", set live: {'; '.join(f'{k}={v!r}' for k, v in live.items())}"
                                                       if live else " (same values)"))
            else:
                if env is not None:
                    env.close()
                    env = None
                log(f"{head}: building the env ({'; '.join(f'{k}={v!r}' for k, v in sp.overrides.items()) or 'as trained'})")
                t0 = time.perf_counter()
                env = make_env(task, cfg=apply_overrides(copy.deepcopy(base), sp.overrides), num_envs=cfg.num_envs,
                               device=cfg.device, image_size=cfg.image_size, seed=cfg.seed, physics=cfg.physics,
                               max_steps=cfg.max_steps)
                env_key, built, build_s = dict(sp.overrides), built + 1, build_s + time.perf_counter() - t0
                device = torch.cuda.get_device_name(env.device) if str(env.device).startswith("cuda") else "cpu"
            for name in todo:
                spec = specs[names.index(name)]
                torch.manual_seed(cfg.seed)
                policy = make_policy(spec, env, temperature=cfg.temperature, seed=cfg.seed)
                info = {"task": task, "policy": spec, "name": name, "suite": s.name, "split": sp.name, "axis": sp.axis,
                        "overrides": dict(sp.overrides), "temperature": cfg.temperature, "greedy": not cfg.temperature > 0,
                        "seed": cfg.seed, "max_steps": cfg.max_steps, "image_size": cfg.image_size, "device": device}
                t0 = time.perf_counter()
                out = output / name / sp.name
                summ = evaluate_policy(env, policy, n, out, sp.seed, cfg.videos, cfg.progress, info, desc=f"{sp.name} {name}")
                results[(name, sp.name)] = json.loads((out / "results.json").read_text())
                lo, hi = summ["ci95"]
                log(f"{head}: {name} {summ['successes']}/{n} = {100 * summ['success_rate']:.1f}% "
                    f"(95% CI {100 * lo:.1f}-{100 * hi:.1f}%) in {time.perf_counter() - t0:.0f} s")
    finally:
        if env is not None:
            env.close()
    splits = [{"name": sp.name, "axis": sp.axis, "episodes": split_episodes(sp, cfg.episodes_scale, cfg.max_episodes),
               "seed": sp.seed, "overrides": dict(sp.overrides), "about": sp.about} for sp in s.splits]
    table = suite_table(splits, names, results)
    devices = {results[(n, sp["name"])]["summary"].get("device") for n in names for sp in splits} - {None}
    doc = {"suite": s.name, "task": task, "device": ", ".join(sorted(devices)) or device, "num_envs": cfg.num_envs,
           "policies": dict(zip(names, specs)), "envs_built": built, "env_build_s": round(build_s, 1),
           "eval_wall_s": {n: round(sum(results[(n, sp["name"])]["summary"]["wall_time_s"] for sp in splits), 1)
                           for n in names}, "splits": splits, **table}
    atomic_write_json(output / "suite.json", doc)
    atomic_write_text(output / "suite.csv", table_csv(table))
    plot_table(table, names, output / "suite.png", title=f"suite {s.name} on {task}")
    log(format_table(table, names))
    log(f"[suite] wrote {output / 'suite.json'}, suite.csv and suite.png ({built} env build(s) this run)")
    return doc
