"""A suite's one table: policy x split success with Wilson 95 % CIs, the per-axis and overall OOD averages, and
(between exactly two policies) the paired McNemar test per split; as JSON, CSV, markdown and a grouped bar chart.

An average pools its splits' episodes (successes / episodes, Wilson CI on the pooled counts): with equal episodes
per split, as in a frozen suite, that is the mean of the splits' success rates. The OOD average is over the vision,
semantic and execution splits; ``id`` and the negative control are reported beside it, never in it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from .metrics import success_with_ci
from .suite import OOD_AXES

COLUMNS = ("policy", "split", "axis", "episodes", "successes", "success", "ci_low", "ci_high")
AVERAGE = "average"
"""The ``split`` of an average's row (its ``axis`` says which: vision, semantic, execution or ood)."""


def _row(policy: str, split: str, axis: str, k: int, n: int) -> dict:
    return {"policy": policy, "split": split, "axis": axis, "episodes": n, **success_with_ci(k, n)}


def suite_table(splits: Sequence[Mapping], policies: Sequence[str], results: Mapping[tuple[str, str], Mapping]) -> dict:
    """``splits``: [{name, axis, ...}] in suite order; ``results[(policy, split)]``: that evaluation's results.json
    ({"summary", "episodes"}). Returns {"rows", "averages", "paired"} (paired: None unless two policies)."""
    rows, averages = [], []
    for pol in policies:
        own = []
        for sp in splits:
            s = results[(pol, sp["name"])]["summary"]
            own.append(_row(pol, sp["name"], sp["axis"], int(s["successes"]), int(s["num_episodes"])))
        rows += own
        for axis in (*OOD_AXES, "ood"):
            part = [r for r in own if r["axis"] == axis or (axis == "ood" and r["axis"] in OOD_AXES)]
            if part:
                averages.append(_row(pol, AVERAGE, axis, sum(r["successes"] for r in part), sum(r["episodes"] for r in part)))
    paired = None
    if len(policies) == 2:
        from .compare import paired_comparison

        a, b = policies
        paired = {sp["name"]: paired_comparison(results[(a, sp["name"])], results[(b, sp["name"])], names=(a, b),
                                                where=(f"{a}/{sp['name']}", f"{b}/{sp['name']}")) for sp in splits}
    return {"rows": rows, "averages": averages, "paired": paired}


def table_csv(table: Mapping) -> str:
    """Every split row, then the averages (``split`` = ``average``), one line each."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in [*table["rows"], *table["averages"]]:
        w.writerow({k: (f"{r[k]:.6f}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})
    return buf.getvalue()


def format_table(table: Mapping, policies: Sequence[str]) -> str:
    """Markdown: split | axis | each policy's success [CI] (percent) | McNemar p between two policies."""
    cell = {(r["policy"], r["split"] if r["split"] != AVERAGE else f"{AVERAGE} {r['axis']}"): r
            for r in [*table["rows"], *table["averages"]]}
    keys = list(dict.fromkeys((r["split"], r["axis"]) for r in table["rows"]))
    keys += list(dict.fromkeys((f"{AVERAGE} {r['axis']}", r["axis"]) for r in table["averages"]))
    paired = table.get("paired") or {}
    head = ["split", "axis", *policies] + (["McNemar p"] if paired else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for split, axis in keys:
        vals = [f"{100 * c['success']:.1f} [{100 * c['ci_low']:.1f}, {100 * c['ci_high']:.1f}]"
                for c in (cell[(p, split)] for p in policies)]
        if paired:
            vals.append(f"{paired[split]['mcnemar']['p_value']:.3g}" if split in paired else "")
        lines.append("| " + " | ".join([split, axis, *vals]) + " |")
    return "\n".join(lines)


def plot_table(table: Mapping, policies: Sequence[str], path: str | Path, title: str) -> Path:
    """Grouped bars, one per policy per split, with CI error bars; splits grouped by axis, the averages last."""
    from openarm_vla.utils.plots import plot_grouped_bars

    keys = list(dict.fromkeys((r["split"], r["axis"]) for r in table["rows"]))
    keys += [(AVERAGE, a) for a in dict.fromkeys(r["axis"] for r in table["averages"])]
    cell = {(r["policy"], r["split"], r["axis"]): r for r in [*table["rows"], *table["averages"]]}
    series = {p: [(c["success"], c["ci_low"], c["ci_high"]) for c in (cell[(p, s, a)] for s, a in keys)]
              for p in policies}
    labels = [s if s != AVERAGE else a for s, a in keys]
    groups = [a if s != AVERAGE else AVERAGE for s, a in keys]
    return plot_grouped_bars(labels, groups, series, path, ylabel="success (95 % CI)", title=title)
