"""Learning-curve PNGs from per-iteration records (PPO, SFT, GRPO share one plotter)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from .io import atomic_path


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
