"""Compare two policies evaluated on the same bank of starts: success with Wilson CIs, paired McNemar test.

    python scripts/compare_policies.py SFT_EVAL/results.json GRPO_EVAL/results.json --names sft grpo \
        [--output comparison.json]

Both files are ``scripts/evaluate.py --bank test`` (or ``--bank_seed S``) outputs of one bank with the same env
count, so episode k of each started from the same state; the McNemar test uses the starts where one policy
succeeded and the other did not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from openarm_vla.cli import run_main


@run_main("compare_policies")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="compare_policies", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--names", nargs=2, default=("a", "b"))
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    from openarm_vla.errors import ConfigError
    from openarm_vla.eval.compare import paired_comparison
    from openarm_vla.utils.io import atomic_write_json

    docs = []
    for path in (args.a, args.b):
        try:
            docs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: not a readable results.json ({type(e).__name__})") from None
    c = paired_comparison(*docs, names=tuple(args.names), where=(str(args.a), str(args.b)))
    if args.output:
        atomic_write_json(args.output, c)
    m, (na, nb) = c["mcnemar"], args.names
    print(f"{c['episodes']} starts of bank seed {c['bank_seed']}:")
    for n in (na, nb):
        s = c[n]
        print(f"  {n}: {s['successes']}/{c['episodes']} = {100 * s['success']:.1f}% "
              f"(95% CI {100 * s['ci_low']:.1f}-{100 * s['ci_high']:.1f}%)")
    print(f"  {nb} - {na}: {100 * c['difference']:+.1f} points; McNemar: {m['b_only']} starts only {nb} solved, "
          f"{m['a_only']} only {na}, exact p = {m['p_value']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
