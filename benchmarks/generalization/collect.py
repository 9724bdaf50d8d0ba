"""Assemble benchmarks/generalization/results.json (and suite.png) from an OOD suite run of the SFT and GRPO policies.

    python benchmarks/generalization/collect.py --suite RUN/ood [--sft sft --grpo grpo] --out benchmarks/generalization

RUN/ood is the output of ``scripts/evaluate.py --suite ood --policy SFT --policy GRPO --name sft --name grpo``: its
``suite.json`` holds every split's success with its Wilson 95 % CI per policy (``--sft`` / ``--grpo`` name the two
policies there). Writes the issue's layout, ``{"device", "splits": {NAME: {"axis", "episodes", "sft": {"success",
"ci_low", "ci_high"}, "grpo": {...}}}}``, and the suite's bar chart of the two (splits, then the averages).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from openarm_vla.eval.suite_table import plot_table
from openarm_vla.utils.io import atomic_write_json


def _side(r: dict) -> dict:
    return {"success": r["success"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--suite", type=Path, required=True, help="an evaluate.py --suite ood output directory")
    p.add_argument("--sft", default="sft", help="the SFT policy's --name in that run")
    p.add_argument("--grpo", default="grpo", help="the GRPO policy's --name in that run")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    doc = json.loads((args.suite / "suite.json").read_text())
    names = {r["policy"] for r in doc["rows"]}
    for who in (args.sft, args.grpo):
        if who not in names:
            sys.exit(f"[collect] no policy {who!r} in {args.suite / 'suite.json'} (it has {', '.join(sorted(names))})")
    cell = {(r["policy"], r["split"]): r for r in doc["rows"]}
    out = {"device": doc["device"], "splits": {
        s["name"]: {"axis": s["axis"], "episodes": s["episodes"], "sft": _side(cell[(args.sft, s["name"])]),
                    "grpo": _side(cell[(args.grpo, s["name"])])} for s in doc["splits"]}}
    atomic_write_json(args.out / "results.json", out)
    rename = {args.sft: "sft", args.grpo: "grpo"}
    table = {k: [{**r, "policy": rename[r["policy"]]} for r in doc[k] if r["policy"] in rename] for k in ("rows", "averages")}
    plot_table(table, ["sft", "grpo"], args.out / "suite.png", title=f"SFT vs GRPO, suite {doc['suite']} on {doc['task']}")
    ood = {r["policy"]: r["success"] for r in table["averages"] if r["axis"] == "ood"}
    print(f"[collect] {len(out['splits'])} splits on {out['device']}: OOD average SFT {ood.get('sft', 0):.3f}, "
          f"GRPO {ood.get('grpo', 0):.3f}; wrote {args.out / 'results.json'} and suite.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
