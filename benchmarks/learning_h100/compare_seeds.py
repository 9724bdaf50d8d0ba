"""The issue's second bar: does a run of configs/pipelines/h100.yaml with another seed land inside the first run's CIs?

    python benchmarks/learning_h100/compare_seeds.py benchmarks/learning_h100 benchmarks/learning_h100/seed1

Reads each run's results.json and grpo_metrics.jsonl; writes seeds.json (both runs' SFT and GRPO rows and the check)
and seeds.png (held-out greedy success against GRPO iterations, the first run with its 95 % CI band) next to this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "exts" / "openarm_vla"))
from openarm_vla.utils.io import atomic_write_json  # noqa: E402
from openarm_vla.utils.plots import plot_curves  # noqa: E402
from openarm_vla.utils.run_files import read_metrics  # noqa: E402


def main(first: str, *others: str) -> int:
    runs = [Path(first), *map(Path, others)]
    results = [json.loads((r / "results.json").read_text()) for r in runs]
    seed_of = [res["recipe"]["seed"] for res in results]
    ref = results[0]
    rows, records = [], {}
    for run, res, seed in zip(runs, results, seed_of):
        row = {"run": str(run), "seed": seed}
        for side in ("sft", "grpo"):
            r = res[side]
            row[side] = {k: r[k] for k in ("success", "ci_low", "ci_high", "episodes")}
            row[side]["inside_first_ci"] = ref[side]["ci_low"] <= r["success"] <= ref[side]["ci_high"]
        row["gain_points"] = 100 * (res["grpo"]["success"] - res["sft"]["success"])
        row["bar1_ci_apart"] = res["grpo"]["ci_low"] > res["sft"]["ci_high"]
        rows.append(row)
        for m in read_metrics(run / "grpo_metrics.jsonl"):
            if "eval/success" in m:
                rec = records.setdefault(m["iteration"], {"iteration": m["iteration"]})
                rec[f"seed {seed}"] = m["eval/success"]
                if run == runs[0]:
                    rec["ci_low"], rec["ci_high"] = m["eval/ci_low"], m["eval/ci_high"]
    out = Path(__file__).resolve().parent
    check = all(r[s]["inside_first_ci"] for r in rows[1:] for s in ("sft", "grpo"))
    atomic_write_json(out / "seeds.json", {"runs": rows, "second_bar_met": check,
                                           "bar": "each later run's SFT and GRPO success inside the first run's 95 % CIs"})
    plot_curves([records[k] for k in sorted(records)], out / "seeds.png",
                [([f"seed {s}" for s in seed_of], "held-out greedy success (256 starts)", (-0.02, 1.02), ("ci_low", "ci_high"))],
                xlabel="GRPO iteration", title="configs/pipelines/h100.yaml, two seeds (band: the first run's 95 % CI)")
    for r in rows:
        print(f"seed {r['seed']}: SFT {100 * r['sft']['success']:.1f}% -> GRPO {100 * r['grpo']['success']:.1f}% "
              f"(+{r['gain_points']:.1f} points); inside the first run's CIs: SFT {r['sft']['inside_first_ci']}, "
              f"GRPO {r['grpo']['inside_first_ci']}")
    print(f"second bar met: {check}; wrote {out / 'seeds.json'} and {out / 'seeds.png'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
