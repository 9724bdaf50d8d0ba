"""Two policies evaluated on the same bank of starts, paired start by start: each one's success with its Wilson
95 % CI, the difference, and the exact McNemar test on the starts where they disagree."""

from __future__ import annotations

from openarm_vla.errors import ConfigError

from .metrics import mcnemar, success_with_ci


def _outcomes(results: dict, where: str) -> dict[int, bool]:
    eps = results.get("episodes") or []
    if not eps or any("bank_index" not in e for e in eps):
        raise ConfigError(f"{where}: no bank evaluation (episodes need bank_index: evaluate.py --bank / --bank_seed)")
    return {int(e["bank_index"]): bool(e["success"]) for e in eps}


def paired_comparison(a: dict, b: dict, names: tuple[str, str] = ("a", "b"), where: tuple[str, str] = ("a", "b")) -> dict:
    """``a`` and ``b``: results.json contents of ``scripts/evaluate.py`` on one bank (same seed, size and env
    count, so the same starts). Returns {bank_seed, episodes, NAME_A: {...}, NAME_B: {...}, difference, mcnemar}."""
    sa, sb = a["summary"], b["summary"]
    for key in ("bank_seed", "num_episodes", "num_envs"):
        if sa.get(key) != sb.get(key):
            raise ConfigError(f"{where[0]} and {where[1]} are not on the same starts: {key} {sa.get(key)} vs {sb.get(key)}")
    oa, ob = _outcomes(a, where[0]), _outcomes(b, where[1])
    if oa.keys() != ob.keys():
        raise ConfigError(f"{where[0]} and {where[1]} cover different bank starts")
    idx = sorted(oa)
    out = {"bank_seed": sa["bank_seed"], "episodes": len(idx),
           **{name: success_with_ci(sum(o[i] for i in idx), len(idx)) for name, o in zip(names, (oa, ob))}}
    out["difference"] = out[names[1]]["success"] - out[names[0]]["success"]
    out["mcnemar"] = mcnemar([oa[i] for i in idx], [ob[i] for i in idx])
    return out
