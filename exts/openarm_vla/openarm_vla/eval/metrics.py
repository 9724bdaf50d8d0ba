"""Pure metric functions over per-episode records (dicts with success / steps / failure)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default); (0, 1) when n == 0.

    Why Wilson: evaluation runs are small (tens of episodes) and often near 0 or 1, where the normal
    (Wald) interval collapses to zero width or leaves [0, 1].
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not in [0, {n}]")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, center - half)  # exact bounds at the edges (no 1e-17 noise)
    hi = 1.0 if successes == n else min(1.0, center + half)
    return lo, hi


def success_with_ci(successes: int, n: int) -> dict:
    """{successes, success, ci_low, ci_high}: a success count over ``n`` episodes as a rate with its Wilson 95 % CI."""
    lo, hi = wilson_interval(successes, n)
    return {"successes": successes, "success": successes / n if n else 0.0, "ci_low": lo, "ci_high": hi}


def failure_table(episodes: Sequence[dict], categories: Sequence[str] | None = None) -> dict[str, int]:
    """Counts per failure category (episode['failure'] is a category name); categories listed first, in order."""
    counts = {c: 0 for c in (categories or ())}
    for ep in episodes:
        counts[ep["failure"]] = counts.get(ep["failure"], 0) + 1
    return counts


def format_failure_table(counts: dict[str, int]) -> str:
    """Markdown table: category | count | share."""
    total = sum(counts.values())
    lines = ["| outcome | episodes | share |", "|:---|---:|---:|"]
    for name, c in counts.items():
        lines.append(f"| {name} | {c} | {100.0 * c / total if total else 0.0:.1f}% |")
    lines.append(f"| total | {total} | |")
    return "\n".join(lines)


def summarize(episodes: Sequence[dict], categories: Sequence[str] | None = None) -> dict:
    """Summary dict: num_episodes, successes, success_rate, ci95 [lo, hi], failure counts, step stats."""
    n = len(episodes)
    k = sum(1 for ep in episodes if ep["success"])
    lo, hi = wilson_interval(k, n)
    steps = [ep["steps"] for ep in episodes]
    succ_steps = [ep["steps"] for ep in episodes if ep["success"]]
    return {
        "num_episodes": n,
        "successes": k,
        "success_rate": k / n if n else 0.0,
        "ci95": [lo, hi],
        "failure_counts": failure_table(episodes, categories),
        "mean_steps": sum(steps) / n if n else 0.0,
        "mean_steps_success": sum(succ_steps) / len(succ_steps) if succ_steps else None,
    }


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """Exact McNemar test of two policies' outcomes on the same starts (``a[i]``, ``b[i]``: success on start i).

    Only the discordant starts carry information: ``b_only`` (b succeeds where a fails) and ``a_only``. Under
    the null hypothesis (equal success rates) each discordant start is a fair coin, so the two-sided p-value is
    ``min(1, 2 P(X <= min(a_only, b_only)))``, X ~ Binomial(a_only + b_only, 1/2); 1 with no discordant start."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need equal lengths, got {len(a)} and {len(b)}")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    n = a_only + b_only
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2**n if n else 1.0
    return {"n": len(a), "a_only": a_only, "b_only": b_only, "both": sum(1 for x, y in zip(a, b) if x and y),
            "neither": sum(1 for x, y in zip(a, b) if not x and not y), "p_value": min(1.0, 2.0 * tail)}
