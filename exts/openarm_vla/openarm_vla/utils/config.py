"""Run configs: plain nested YAML + dotted CLI overrides (``a.b.c=value``).

- Values of overrides are parsed as YAML (``1e-5``, ``true``, ``[1, 2]``, ``null`` work); YAML files
  and overrides use a loader that reads ``1e-5`` as a float (plain YAML 1.1 reads it as a string).
- Overriding an unknown key is an error naming the key and the closest valid keys; prefix the key
  with ``+`` (``+a.b=1``) to add a new one on purpose.
- An override must keep the kind of the value it replaces: a number stays a number (an int key
  given ``1e5`` becomes ``100000``), a bool stays a bool, a list stays a list, a section stays a
  section; a string key keeps the override's text as typed (``name=001`` -> ``"001"``). ``null``
  is always allowed.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .io import atomic_write_text

__all__ = [
    "Config",
    "ConfigError",
    "apply_overrides",
    "load_config",
    "load_yaml",
    "parse_cli",
    "save_config",
    "to_dict",
]


class ConfigError(ValueError):
    """Bad config file or override; the message is one line naming the file/key."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-5`` / ``5E3`` (no dot) as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class Config(dict):
    """A dict with attribute access (``cfg.train.lr``); nested dicts are Configs too."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key '{name}' (keys: {', '.join(map(str, self.keys()))})") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def update(self, *args: Any, **kwargs: Any) -> None:  # keep wrapping on update()
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> Config:
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def get_path(self, dotted: str, default: Any = ...) -> Any:
        """``cfg.get_path("a.b.c")``; raises :class:`ConfigError` if missing and no default is given."""
        node: Any = self
        for part in dotted.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif default is not ...:
                return default
            else:
                raise ConfigError(f"unknown config key '{dotted}'")
        return node


def _wrap(value: Any) -> Any:
    if isinstance(value, Config):
        return value
    if isinstance(value, Mapping):
        return Config(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def to_dict(cfg: Any) -> Any:
    """Plain ``dict``/``list`` copy of a config (tuples become lists), safe for ``yaml.safe_dump``."""
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def load_yaml(path: str | os.PathLike) -> Config:
    """Read a YAML mapping from ``path`` (one-line :class:`ConfigError` on missing/invalid file)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        with open(p, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{p}:{where}: invalid YAML ({' '.join(str(problem).split())})") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return Config(data)


def _all_keys(node: Mapping, prefix: str = "") -> list[str]:
    out = []
    for k, v in node.items():
        key = f"{prefix}{k}"
        out.append(key)
        if isinstance(v, Mapping):
            out.extend(_all_keys(v, key + "."))
    return out


def _parse_value(raw: str) -> Any:
    try:
        return yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError:
        return raw  # e.g. "a: b" style text: keep as a string


def _coerce(key: str, old: Any, new: Any, raw: str) -> Any:
    if old is None or new is None:
        return new
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
        raise ConfigError(f"override {key}={raw}: expected true or false (current value {old!r})")
    if isinstance(old, (int, float)):
        if isinstance(new, bool) or not isinstance(new, (int, float)):
            raise ConfigError(f"override {key}={raw}: expected a number (current value {old!r})")
        if isinstance(old, float):
            return float(new)
        if isinstance(new, float) and new.is_integer():
            return int(new)
        return new
    if isinstance(old, str):
        return new if isinstance(new, str) else raw
    if isinstance(old, list):
        if isinstance(new, list):
            return new
        raise ConfigError(f"override {key}={raw}: expected a list like [1, 2] (current value {old!r})")
    if isinstance(old, Mapping):
        if not isinstance(new, Mapping):
            raise ConfigError(f"override {key}={raw}: '{key}' is a section; set its keys ({key}.<name>=...)")
        merged = Config(old)
        for k, v in new.items():
            if k not in merged:
                valid = ", ".join(f"{key}.{x}" for x in merged)
                raise ConfigError(f"unknown config key '{key}.{k}' (valid keys: {valid})")
            merged[k] = _coerce(f"{key}.{k}", merged[k], v, str(v))
        return merged
    return new


def _unknown_key_error(cfg: Mapping, key: str) -> ConfigError:
    candidates = _all_keys(cfg)
    same_depth = [c for c in candidates if c.count(".") == key.count(".")]
    close = difflib.get_close_matches(key, same_depth, n=3, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.5)
    if not close:  # compare the last part against keys of the same depth
        last = key.split(".")[-1]
        by_last = {c.split(".")[-1]: c for c in candidates}
        close = [by_last[m] for m in difflib.get_close_matches(last, list(by_last), n=3, cutoff=0.6)]
    hint = f"did you mean: {', '.join(close)}?" if close else "no similar key; prefix with '+' to add a new key"
    return ConfigError(f"unknown config key '{key}' ({hint})")


def apply_overrides(cfg: Config, overrides: Sequence[str] | None) -> Config:
    """Apply ``a.b.c=value`` overrides in order (in place) and return ``cfg``."""
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value (e.g. train.lr=1e-5)")
        key, raw = item.split("=", 1)
        key = key.strip()
        add = key.startswith("+")
        if add:
            key = key[1:]
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise ConfigError(f"override '{item}': empty key")
        new = _parse_value(raw)
        node: Any = cfg
        for i, part in enumerate(parts[:-1]):
            if part not in node:
                if not add:
                    raise _unknown_key_error(cfg, key)
                node[part] = Config()
            node = node[part]
            if not isinstance(node, Mapping):
                raise ConfigError(f"override '{item}': '{'.'.join(parts[: i + 1])}' is a value, not a section")
        last = parts[-1]
        if last not in node:
            if not add:
                raise _unknown_key_error(cfg, key)
            node[last] = new
        else:
            node[last] = _coerce(key, node[last], new, raw)
    return cfg


def load_config(source: str | os.PathLike | Mapping[str, Any], overrides: Sequence[str] | None = None) -> Config:
    """Load a YAML file (or copy a dict) and apply dotted overrides. Returns a :class:`Config`."""
    if isinstance(source, Mapping):
        cfg = Config(copy.deepcopy(to_dict(source)))
    else:
        cfg = load_yaml(source)
    return apply_overrides(cfg, overrides)


def save_config(cfg: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML atomically (it loads back equal with :func:`load_config`)."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)
    return atomic_write_text(path, text)


def parse_cli(
    argv: Sequence[str] | None = None,
    default_config: str | os.PathLike | Mapping[str, Any] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> tuple[Config, argparse.Namespace]:
    """``script.py [--config file.yaml] [a.b=1 ...]`` -> (config, parsed args).

    ``parser`` may carry the script's own options (e.g. ``--device``); ``--config`` and the
    positional ``overrides`` are added to it. Config errors exit via ``parser.error`` (one line,
    status 2).
    """
    parser = parser or argparse.ArgumentParser()
    has_default = default_config is not None
    parser.add_argument(
        "--config",
        default=None,
        help="YAML run config" + (" (default: the built-in config)" if has_default else " (required)"),
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.lr=1e-5")
    args = parser.parse_args(argv)
    source = args.config if args.config is not None else default_config
    if source is None:
        parser.error("--config is required")
    try:
        cfg = load_config(source, args.overrides)
    except ConfigError as e:
        parser.error(str(e))
    return cfg, args
