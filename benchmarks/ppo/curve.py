"""Learning curve of an rsl-rl run on OpenArm-BoxGrasp-State from its TensorBoard events: success rate,
mean reward and the shaping terms per iteration, against wall-clock minutes since the first iteration.

    python benchmarks/ppo/curve.py logs/rsl_rl/openarm_box_grasp_ppo/RUN --out benchmarks/ppo/h100 [--bar 0.9]
    python benchmarks/ppo/curve.py RUN_2 --after benchmarks/ppo/h100/curve.json --out OUT_2   # the next sitting

Writes OUT/curve.json and OUT/curve.png and prints the first iteration (and minute) whose success rate, and
whose mean over the last 10 iterations, reach the bar. Minutes count from the first sitting's process start where
run_gpu.sh recorded it (``sitting.json``), each later sitting placed after the earlier ones' whole wall clock. ``Metrics/success_rate`` is the share of the episodes
that ended in an iteration whose box was held lifted for the whole hold (the task logs it in extras["log"]).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TAGS = {"success_rate": "Metrics/success_rate", "mean_reward": "Train/mean_reward",
        "mean_episode_length": "Train/mean_episode_length", "fps": "Perf/total_fps"}
TERMS = ("reach", "reach_fine", "align", "grasp", "lift", "hold", "success")


def load(run: Path) -> tuple[list[dict], float]:
    """(rows by iteration with their newest event's wall time, the first event's wall time)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    have = set(acc.Tags()["scalars"])
    tags = {**TAGS, **{f"reward_{t}": f"Episode_Reward/{t}" for t in TERMS}}
    rows: dict[int, dict] = {}
    t0 = None
    for key, tag in tags.items():
        if tag not in have:
            continue
        for ev in acc.Scalars(tag):
            t0 = ev.wall_time if t0 is None else min(t0, ev.wall_time)
            row = rows.setdefault(ev.step, {"iteration": ev.step})
            row[key] = float(ev.value)
            row["wall"] = max(row.get("wall", 0.0), ev.wall_time)
    return [rows[k] for k in sorted(rows)], t0


def join(earlier: dict | None, run: Path) -> tuple[list[dict], list[dict]]:
    """(curve, sittings): ``earlier`` (a previous sitting's curve.json) continued by ``run``, on one clock.

    A sitting that recorded its process start (``sitting.json`` in the run folder, written by run_gpu.sh) is placed
    at the sum of the earlier sittings' wall clocks, its rows at their minutes since its process started: start-up
    and Warp's kernel compilation count. Without it, minutes count from the run's first iteration. Earlier rows at
    or past the continued run's first iteration are dropped (those iterations were redone from the checkpoint; their
    time stays counted in the earlier sitting's wall clock)."""
    curve = list(earlier["curve"]) if earlier else []
    sittings = list(earlier["summary"].get("sittings", [])) if earlier else []
    rows, t0 = load(run)
    if not rows:
        raise SystemExit(f"curve: no TensorBoard scalars under {run}")
    info = json.loads((run / "sitting.json").read_text()) if (run / "sitting.json").is_file() else None
    offset = sum(s["wall_s"] for s in sittings) / 60.0
    start = info["start_epoch"] if info else t0
    for r in rows:
        r["minutes"] = round(offset + (r.pop("wall") - start) / 60.0, 3)
    curve = [r for r in curve if r["iteration"] < rows[0]["iteration"]] + rows
    wall_s = info["wall_s"] if info else (rows[-1]["minutes"] - offset) * 60.0
    sittings.append({"run": str(run), "first_iteration": rows[0]["iteration"], "last_iteration": rows[-1]["iteration"],
                     "wall_s": wall_s, "clock": "process start" if info else "first iteration",
                     **({"checkpoint_in": info.get("checkpoint_in", "")} if info else {})})
    return curve, sittings


def first_at(curve: list[dict], bar: float, window: int = 1) -> dict | None:
    vals = [r.get("success_rate") for r in curve]
    for i in range(len(curve)):
        w = [v for v in vals[max(0, i - window + 1): i + 1] if v is not None]
        if len(w) == window and sum(w) / window >= bar:
            return {"iteration": curve[i]["iteration"], "minutes": curve[i]["minutes"]}
    return None


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="the rsl-rl run directory (TensorBoard events)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--after", type=Path, default=None,
                   help="the curve.json of the sitting this run continues (its checkpoint was the run's --checkpoint)")
    p.add_argument("--bar", type=float, default=0.9)
    args = p.parse_args(argv)
    earlier = json.loads(args.after.read_text()) if args.after else None
    curve, sittings = join(earlier, args.run)
    summary = {"run": str(args.run), "iterations": len(curve), "minutes": curve[-1]["minutes"], "bar": args.bar,
               "wall_minutes": round(sum(s["wall_s"] for s in sittings) / 60.0, 3), "sittings": sittings,
               "first_iteration_at_bar": first_at(curve, args.bar),
               "first_iteration_at_bar_mean10": first_at(curve, args.bar, window=10),
               "last_success_rate": curve[-1].get("success_rate")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_text(json.dumps({"summary": summary, "curve": curve}, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    x = [r["minutes"] for r in curve]
    axes[0].plot(x, [r.get("success_rate") for r in curve])
    axes[0].axhline(args.bar, ls="--", c="gray")
    axes[0].set(xlabel="minutes", ylabel="success rate", ylim=(-0.02, 1.02), title="OpenArm-BoxGrasp-State, rsl-rl PPO")
    axes[1].plot(x, [r.get("mean_reward") for r in curve])
    axes[1].set(xlabel="minutes", ylabel="mean episode return")
    for t in TERMS:
        axes[2].plot(x, [r.get(f"reward_{t}") for r in curve], label=t)
    axes[2].set(xlabel="minutes", ylabel="episode reward per term")
    axes[2].legend(fontsize=7)
    ends = [sum(s["wall_s"] for s in sittings[:k + 1]) / 60.0 for k in range(len(sittings) - 1)]
    for ax in axes:
        for m in ends:  # where a sitting ended and the next continued from its checkpoint
            ax.axvline(m, ls=":", c="gray", lw=0.8)
    fig.tight_layout()
    fig.savefig(args.out / "curve.png", dpi=110)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
