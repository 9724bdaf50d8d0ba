"""PNGs: learning curves from per-iteration records (PPO, SFT, GRPO share one plotter) and grouped bars with CIs
(an evaluation suite's table)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .io import atomic_path


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on clusters and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike, title: str | None) -> Path:
    """Title, tight layout, the PNG written atomically, the figure closed."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    _pyplot().close(fig)
    return Path(path)


def _series(records: Sequence[Mapping], key: str) -> tuple[list, list]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
            xs.append(r)
            ys.append(v)
    return xs, ys


def plot_curves(records: Sequence[Mapping], path: str | os.PathLike, panels: Sequence[Sequence], x: str = "iteration",
                title: str | None = None, xlabel: str | None = None) -> Path:
    """One subplot per panel ``(keys, ylabel, ylim[, (lo_key, hi_key)[, x_key]])``: the records' ``keys`` (a key
    or a list) against ``x`` (or the panel's own x key), skipping records without the key; the optional pair of
    keys is drawn as a band around the first key (a confidence interval). Written atomically as PNG."""
    plt = _pyplot()
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.3 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        keys, label, ylim = panel[0], panel[1], panel[2]
        band = panel[3] if len(panel) > 3 else None
        px = panel[4] if len(panel) > 4 else x
        for key in [keys] if isinstance(keys, str) else keys:
            rs, ys = _series(records, key)
            if not ys:
                continue
            xs = [r[px] for r in rs]
            ax.plot(xs, ys, ".-" if len(xs) < 60 else "-", label=key)
            if band is not None and key == (keys if isinstance(keys, str) else keys[0]):
                lo = [r.get(band[0], y) for r, y in zip(rs, ys)]
                hi = [r.get(band[1], y) for r, y in zip(rs, ys)]
                ax.fill_between(xs, lo, hi, alpha=0.2)
        ax.set_ylabel(label)
        ax.set_xlabel(xlabel if xlabel and px == x else px)
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
        if not isinstance(keys, str) and len(keys) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, path, title)


def plot_grouped_bars(labels: Sequence[str], groups: Sequence[str], series: Mapping[str, Sequence[tuple]],
                      path: str | os.PathLike, ylabel: str = "", title: str | None = None, ylim=(0.0, 1.05)) -> Path:
    """One cluster of bars per label (one bar per series, ``(value, lo, hi)`` drawn with ``lo``-``hi`` error bars);
    consecutive labels of one group share a span named under the axis and are set apart by a gap. Atomic PNG."""
    plt = _pyplot()
    xs, x, spans = [], 0.0, []
    for i, g in enumerate(groups):
        if i and g != groups[i - 1]:
            x += 0.6
        if not spans or spans[-1][0] != g:
            spans.append([g, x, x])
        spans[-1][2] = x
        xs.append(x)
        x += 1.0
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels) * max(1, len(series)) ** 0.5 + 2), 4.2))
    for j, (name, vals) in enumerate(series.items()):
        pos = [p - 0.4 + width * (j + 0.5) for p in xs]
        v = [t[0] for t in vals]
        err = [[max(0.0, t[0] - t[1]) for t in vals], [max(0.0, t[2] - t[0]) for t in vals]]
        ax.bar(pos, v, width, yerr=err, capsize=2, label=name, error_kw={"elinewidth": 0.8})
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    for g, lo, hi in spans:
        ax.annotate(g, xy=((lo + hi) / 2, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8, style="italic")
        if lo > xs[0]:
            ax.axvline(lo - 0.8, color="0.7", lw=0.6)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path, title)
