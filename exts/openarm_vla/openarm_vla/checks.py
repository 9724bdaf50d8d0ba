"""Type and range checks of config values, run before any env or model is built.

A bad value (``agent.temperature=-1``, ``agent.lr=abc``, ``--num_envs 0``) should cost one line naming the key
and what is allowed, not a traceback from deep inside AdamW or the cloner, nor a run that "works" and learns
nothing. Types come from the configclass annotations (``typing`` hints: ``int | None``, ``tuple[float, float]``,
``list[str]``, ``Literal``, nested configclasses; ``float`` takes ints, ``int`` takes no bools), for every field
of the tree, Isaac Lab's nested configs included (``env.sim.dt=abc``). Ranges are declared beside the fields,
in the class body:

    __checks__ = {"lr": "> 0", "temperature": ("> 0", "why"), "scene.num_envs": ">= 1",
                  "terminations.success.params.lift_height": (float, "> 0")}
    __rules__ = (("min_lr <= lr", "why"),)

A range is ``any``, ``> x``, ``>= x``, ``< x``, ``<= x``, ``in [a, b]`` (brackets open or closed), ``in {a, b}``
(choices) or ``non-empty``; on a list or tuple it applies to each element; ``None`` (where the type allows it)
skips it. A dotted key reaches into nested configs and dicts; a type given with it is for dict entries, which
carry no annotation. A rule is a Python expression over the fields (dotted names allowed); it is skipped
while any value it names is ``None`` or already wrong. The names are dunders because a configclass turns every
other class attribute into a field; subclasses inherit and may override both. Rules that need the run (GRPO's
``--num_envs`` a multiple of ``group_size``) are a trainer config's ``run_problems`` method
(:func:`openarm_vla.cli.check_configs` calls it).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import re
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

__all__ = ["IMAGE_SIZE", "Check", "check_value", "declared", "flag_problems", "problems", "rule_problem", "type_hints"]

IMAGE_SIZE = "in [8, 2048]"
"""Camera width / height (``--image_size``, ``env.scene.front_camera.width``): pixels per side rendered per env."""

_TYPING = {name: getattr(typing, name) for name in typing.__all__}
_NUM = r"[-+]?(?:\d[\d_]*\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf)"
_CMP = re.compile(rf"^(>=|<=|>|<)\s*({_NUM})$")
_INTERVAL = re.compile(rf"^in\s*([\[(])\s*({_NUM})\s*,\s*({_NUM})\s*([\])])$")
_CHOICES = re.compile(r"^in\s*\{(.*)\}$")
_BUILTINS = {"len": len, "min": min, "max": max, "round": round, "abs": abs, "str": str}
_OPS = {">": lambda v, x: v > x, ">=": lambda v, x: v >= x, "<": lambda v, x: v < x, "<=": lambda v, x: v <= x}


# ------------------------------------------------------------------------------------------- declarations


@dataclasses.dataclass(frozen=True)
class Check:
    """One declared check: the range (see the module doc), why it holds, and a type for unannotated dict entries."""

    range: str = "any"
    why: str = ""
    type: Any = None

    @classmethod
    def of(cls, spec) -> Check:
        if isinstance(spec, Check):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        texts = [s for s in spec if isinstance(s, str)]
        tps = [s for s in spec if not isinstance(s, str)]
        return cls(texts[0] if texts else "any", texts[1] if len(texts) > 1 else "", tps[0] if tps else None)


def declared(cls: type) -> tuple[dict[str, Check], list[tuple[str, str]]]:
    """The ``__checks__`` and ``__rules__`` of ``cls`` and its bases (a subclass's entry wins)."""
    checks: dict[str, Check] = {}
    rules: list[tuple[str, str]] = []
    for base in reversed(cls.__mro__):
        checks.update({k: Check.of(v) for k, v in vars(base).get("__checks__", {}).items()})
        rules += [r for r in vars(base).get("__rules__", ()) if r not in rules]
    return checks, rules


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """Annotations of ``cls`` and its bases, resolved one by one (Isaac Lab's classes annotate with names that
    ``typing.get_type_hints`` cannot resolve all at once, e.g. ``Literal`` under ``TYPE_CHECKING``); an
    annotation that does not resolve maps to ``None`` (its type is not checked)."""
    out: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        module = vars(sys.modules[base.__module__]) if base.__module__ in sys.modules else {}
        for name, ann in vars(base).get("__annotations__", {}).items():
            if isinstance(ann, str):
                try:
                    ann = eval(ann, {**_TYPING, **module}, dict(vars(base)))  # noqa: S307 - the class's own annotation
                except Exception:  # noqa: BLE001 - a configclass copies its bases' annotations into its own: keep
                    ann = out.get(name)  # the base's resolution, else leave the type unchecked
            out[name] = ann
    return out


# ------------------------------------------------------------------------------------------- types


def _is_cfg(value) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def type_ok(value, tp) -> bool:
    """Whether ``value`` fits annotation ``tp`` (unknown kinds of annotation pass)."""
    if tp is None or tp is Any or isinstance(tp, (str, typing.TypeVar)):
        return True
    if tp is type(None):
        return value is None
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return any(type_ok(value, a) for a in args)
    if origin is Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (tuple, list) or tp in (tuple, list):  # Hydra and YAML give lists for tuples
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(type_ok(v, a) for v, a in zip(value, args))
        return not args or all(type_ok(v, args[0]) for v in value)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False
        return len(args) != 2 or all(type_ok(k, args[0]) and type_ok(v, args[1]) for k, v in value.items())
    if isinstance(tp, type) and origin is None and tp.__module__ != "typing":
        return isinstance(value, tp)
    return True  # Callable, type[...] and other forms: not checked here


def describe(tp) -> str:
    """An annotation in words, for the error line."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if tp in words:
        return words[tp]
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_plural(args[0])}"
        return "a list [" + ", ".join(describe(a) for a in args) + "]"
    if origin in (tuple, list) or tp in (tuple, list):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return f"a {tp.__name__} (a group of settings: set its fields one by one, KEY.FIELD=value)"
    return getattr(tp, "__name__", str(tp))


def _choices_only(tp) -> bool:
    """A ``Literal`` (or an optional one)."""
    if get_origin(tp) in (Union, types.UnionType):
        return all(_choices_only(a) for a in get_args(tp) if a is not type(None))
    return get_origin(tp) is Literal


def _element_types(tp, n: int) -> list | None:
    """The annotations of the ``n`` elements of a list / tuple annotation (None: not one, or not of length n)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        seqs = [a for a in args if a is not type(None)]
        return _element_types(seqs[0], n) if len(seqs) == 1 else None
    if origin is tuple and args and args[-1] is not Ellipsis:
        return list(args) if len(args) == n else None
    return [args[0]] * n if origin in (tuple, list) and args else None


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _plural(tp) -> str:
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(tp, describe(tp))


# ------------------------------------------------------------------------------------------- ranges


def _number(text: str) -> float:
    return float(text.replace("_", ""))


def range_ok(value, rng: str) -> bool:
    """Whether ``value`` (not None, of the right type) lies in the declared range ``rng``."""
    rng = rng.strip()
    if rng == "any":
        return True
    if rng == "non-empty":
        return len(value) > 0
    if isinstance(value, (list, tuple)):
        return all(v is None or range_ok(v, rng) for v in value)
    if m := _CHOICES.match(rng):
        return str(value) in [c.strip() for c in m.group(1).split(",")] and not isinstance(value, bool)
    if isinstance(value, str) or isinstance(value, bool):
        return True  # a numeric range on a non-number: the type check speaks
    if isinstance(value, float) and math.isnan(value):
        return False
    if m := _CMP.match(rng):
        return _OPS[m.group(1)](value, _number(m.group(2)))
    if m := _INTERVAL.match(rng):
        lo, hi = _number(m.group(2)), _number(m.group(3))
        return (value > lo if m.group(1) == "(" else value >= lo) and (value < hi if m.group(4) == ")" else value <= hi)
    raise ValueError(f"unknown range {rng!r}")


def valid_range(rng: str) -> bool:
    """Whether ``rng`` is in the range language (the tests run every declaration through this)."""
    rng = rng.strip()
    return rng in ("any", "non-empty") or any(p.match(rng) for p in (_CMP, _INTERVAL, _CHOICES))


def _allowed(rng: str) -> str:
    if m := _CHOICES.match(rng.strip()):
        return "one of " + ", ".join(c.strip() for c in m.group(1).split(","))
    return "non-empty" if rng == "non-empty" else rng


# ------------------------------------------------------------------------------------------- checking


def show(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _manager_term(tp) -> bool:
    """Whether ``tp`` is an Isaac Lab manager term config (event, reward, observation, termination, ...): setting one
    to None is how Isaac Lab disables it (``env.events.box_mass=null``)."""
    try:
        from isaaclab.managers.manager_term_cfg import ManagerTermBaseCfg
    except ImportError:
        return False
    return isinstance(tp, type) and issubclass(tp, ManagerTermBaseCfg)


def check_value(key: str, value, tp, check: Check | None = None) -> str | None:
    """One line naming ``key`` if ``value`` is not of type ``tp`` or out of the declared range, else None."""
    check = check or Check()
    tp = check.type or tp
    if value is None and _manager_term(tp):
        return None
    if not type_ok(value, tp):
        elements = _element_types(tp, len(value)) if isinstance(value, (list, tuple)) else None
        if elements:  # the right length: name the element that is wrong
            return next(check_value(f"{key}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, elements))
                        if not type_ok(v, a))
        got = f"a list of {len(value)}" if isinstance(value, (list, tuple)) else _article(type(value).__name__)
        got = "" if _choices_only(tp) else f", not {got}"  # the choices say it all
        return f"{key}={show(value)}: must be {describe(tp).replace('KEY', key)}{got}"
    if value is None or range_ok(value, check.range):
        return None
    if isinstance(value, (list, tuple)) and check.range != "non-empty":
        i = next(i for i, v in enumerate(value) if v is not None and not range_ok(v, check.range))
        key, value = f"{key}[{i}]", value[i]
    return f"{key}={show(value)}: must be {_allowed(check.range)}" + (f" ({check.why})" if check.why else "")


_MISSING = object()


def _lookup(obj, path: str):
    """``obj.a.b`` (attributes or mapping keys); ``None`` part-way stops (``(None, None)``), a missing name is
    ``_MISSING``. Returns (owner, value)."""
    owner = None
    for part in path.split("."):
        if obj is None:
            return None, None
        owner = obj
        if isinstance(obj, Mapping):
            obj = obj.get(part, _MISSING)
        else:
            obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return owner, _MISSING
    return owner, obj


def _hint(owner, name: str):
    return None if owner is None or isinstance(owner, Mapping) else type_hints(type(owner)).get(name)


def problems(cfg, prefix: str) -> list[str]:
    """Every type and range problem of configclass ``cfg`` and the configclasses nested in it (Isaac Lab's
    included: their annotations give the types), one line each, keys as ``prefix.field``."""
    out, bad = [], set()
    checks, rules = declared(type(cfg))
    hints = type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, type(dataclasses.MISSING)):  # copies of the sentinel too
            continue  # deprecated fields Isaac Lab leaves unset
        key = f"{prefix}.{f.name}"
        line = check_value(key, value, hints.get(f.name), checks.get(f.name))
        if line:
            out.append(line)
            bad.add(f.name)
        elif _is_cfg(value):
            sub = problems(value, key)
            out += sub
            if sub:
                bad.add(f.name)
    for path, check in checks.items():
        if "." not in path or any(path.startswith(b + ".") for b in bad):
            continue
        owner, value = _lookup(cfg, path)
        if value is _MISSING:
            out.append(f"{prefix}.{path}: missing (the config has no such key)")
        elif owner is not None:
            line = check_value(f"{prefix}.{path}", value, _hint(owner, path.rsplit(".", 1)[1]), check)
            if line:
                out.append(line)
                bad.add(path)
    for expr, why in rules:
        line = _rule(cfg, prefix, expr, why, bad)
        if line:
            out.append(line)
    return list(dict.fromkeys(out))  # a dotted key can repeat a walked field's type problem


def rule_names(expr: str) -> list[str]:
    """The dotted names a rule reads, in order (``sim.dt * decimation`` -> ``["sim.dt", "decimation"]``)."""

    def dotted(node):
        if isinstance(node, ast.Name):
            return node.id
        base = dotted(node.value) if isinstance(node, ast.Attribute) else None
        return f"{base}.{node.attr}" if base else None

    found = [dotted(n) for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, (ast.Name, ast.Attribute))]
    found = [n for n in dict.fromkeys(found) if n and n not in _BUILTINS]
    return [n for n in found if not any(m.startswith(n + ".") for m in found)]  # ``sim.dt``, not also ``sim``


def _rule(cfg, prefix: str, expr: str, why: str, bad: set, extra: Mapping | None = None) -> str | None:
    names = rule_names(expr)
    values = {}
    for name in names:
        if extra and name in extra:
            values[name] = extra[name][1]
            continue
        if any(name == b or name.startswith(b + ".") or b.startswith(name + ".") for b in bad):
            return None
        values[name] = _lookup(cfg, name)[1]
    if any(v is None or v is _MISSING for v in values.values()):
        return None
    scope = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else {}
    scope.update({k: v[1] for k, v in (extra or {}).items()})
    if eval(expr, {"__builtins__": _BUILTINS}, scope):  # noqa: S307 - a rule declared in our own code
        return None
    keys = ", ".join(f"{extra[n][0] if extra and n in extra else f'{prefix}.{n}'}={show(values[n])}" for n in names)
    return f"{keys}: need {expr}" + (f" ({why})" if why else "")


def rule_problem(cfg, prefix: str, expr: str, why: str = "", extra: Mapping | None = None) -> str | None:
    """A rule checked outside a class declaration; ``extra`` maps more names to (key shown, value): run-level
    values such as ``--num_envs`` that live in no config."""
    return _rule(cfg, prefix, expr, why, set(), extra)


def flag_problems(args, ranges: Mapping[str, str | tuple]) -> list[str]:
    """Range problems of command-line flags (argparse has converted their types): ``{"num_envs": ">= 1"}``;
    a flag left at None is not checked, a flag that takes several values is checked per value."""
    out = []
    for name, spec in ranges.items():
        value = getattr(args, name, None)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            line = check_value(f"--{name}", v, None, Check.of(spec)) if v is not None else None
            if line:
                out.append(line)
    return out
