"""Assemble benchmarks/mastery/results.json (and curve.png) from pipeline runs that ended with the test stage.

    python benchmarks/mastery/collect.py --runs RUN_S0 RUN_S1 RUN_S2 [--cold RUN_8 RUN_32] \
        [--compute_matched EVAL_DIR --what "SFT 8000 steps on the same demos" --wall_s 1234] --out benchmarks/mastery

Each RUN is a pipeline output directory (``./run.sh mastery output=RUN seed=S``): its ``results.json`` (report
stage: validation-bank numbers, stage times), ``test/comparison.json`` (test stage: both policies on the test bank,
McNemar) and ``grpo/metrics.jsonl`` (the validation curve). ``--compute_matched`` is an ``evaluate.py --bank test``
output directory of the "more imitation" control. Every number in the output is a test-bank number, except the
curve, which is the validation bank's (the only bank evaluated during training).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from openarm_vla.eval.compare import paired_comparison
from openarm_vla.eval.metrics import wilson_interval
from openarm_vla.utils.io import atomic_write_json
from openarm_vla.utils.plots import plot_curves
from openarm_vla.utils.run_files import read_metrics


def _side(s: dict) -> dict:
    return {"success": s["success"], "ci_low": s["ci_low"], "ci_high": s["ci_high"]}


def run_entry(run: Path) -> dict:
    report = json.loads((run / "results.json").read_text())
    test = json.loads((run / "test" / "comparison.json").read_text())
    return {"seed": report["recipe"]["seed"], "demos": report["demos"], "sft": _side(test["sft"]),
            "grpo": {**_side(test["grpo"]), "iterations": report["grpo"]["iterations"],
                     "env_steps": report["grpo"]["env_steps"], "wall_s": report["grpo"]["wall_s"]},
            "mcnemar_p": test["mcnemar"]["p_value"], "test": test, "device": report["device"],
            "validation_bank": report["bank"], "test_bank": {"seed": test["bank_seed"], "episodes": test["episodes"]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--runs", type=Path, nargs="+", required=True)
    p.add_argument("--cold", type=Path, nargs="*", default=[])
    p.add_argument("--compute_matched", type=Path, default=None)
    p.add_argument("--what", default="")
    p.add_argument("--wall_s", type=float, default=None)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    runs = [run_entry(r) for r in args.runs]
    banks = {json.dumps(r["test_bank"]) for r in runs} | {json.dumps(r["validation_bank"]) for r in runs}
    if len({json.dumps(r["test_bank"]) for r in runs}) != 1 or len({json.dumps(r["validation_bank"]) for r in runs}) != 1:
        sys.exit(f"[collect] the runs were not evaluated on the same banks: {sorted(banks)}")
    out = {"device": runs[0]["device"], "validation_bank": runs[0]["validation_bank"], "test_bank": runs[0]["test_bank"],
           "runs": [{k: r[k] for k in ("seed", "demos", "sft", "grpo", "mcnemar_p")} for r in runs]}
    out["grpo_mean_success"] = sum(r["grpo"]["success"] for r in runs) / len(runs)
    if args.compute_matched:
        control = json.loads((args.compute_matched / "results.json").read_text())
        s = control["summary"]
        lo, hi = wilson_interval(s["successes"], s["num_episodes"])
        out["sft_compute_matched"] = {"success": s["success_rate"], "ci_low": lo, "ci_high": hi, "wall_s": args.wall_s,
                                      "what": args.what}
        grpo_eval = json.loads((args.runs[0] / "test" / "grpo" / "results.json").read_text())
        out["sft_compute_matched"]["vs_grpo_seed0"] = paired_comparison(control, grpo_eval, names=("control", "grpo"))
    out["cold_start"] = [{"demos": e["demos"], "sft": e["sft"], "grpo": e["grpo"], "mcnemar_p": e["mcnemar_p"]}
                         for e in (run_entry(r) for r in args.cold)]
    atomic_write_json(args.out / "results.json", out)
    curves = []
    for r, run in zip(runs, args.runs):
        curves += [{"iteration": m["iteration"], f"seed {r['seed']}": m["eval/success"]}
                   for m in read_metrics(run / "grpo" / "metrics.jsonl") if "eval/success" in m]
    plot_curves(curves, args.out / "curve.png", [([f"seed {r['seed']}" for r in runs], "validation success", (-0.02, 1.02))],
                title="GRPO, every seed (validation bank)")
    print(f"[collect] {len(runs)} run(s): GRPO test success {', '.join(f'{r['grpo']['success']:.3f}' for r in runs)} "
          f"(mean {out['grpo_mean_success']:.3f}); wrote {args.out / 'results.json'} and curve.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
