"""The main job: the whole recipe, scripted demos -> SFT -> GRPO -> held-out evaluation, as resumable stages.

    ./run.sh                       # configs/quickstart.yaml: the tiny preset on a CPU, about 10 minutes
    ./run.sh device=cuda           # configs/h100.yaml: the small preset on one H100 / H200 (the learning proof)
    ./run.sh h100 [--stage sft] [key=value ...]      # a recipe by name (configs/NAME.yaml) or path, one stage

Stages (``--stage``): demos, sft, select, grpo, report (default: all, skipping what is done and resuming what
was cut short; see openarm_vla.pipeline). ``key=value`` overrides the recipe (``demos.num_demos=32``,
``grpo.max_iterations=5``). Outputs land in the recipe's ``output`` (runs/<name>/): results.json, curve.png,
the SFT and GRPO runs, videos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="quickstart", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("recipe", nargs="?", default=None, help="recipe name in configs/ or a YAML path")
    p.add_argument("--stage", default="all", choices=("all", "demos", "sft", "select", "grpo", "report"))
    args, rest = p.parse_known_args(argv)
    if any("=" not in r for r in rest):
        p.error(f"unrecognized arguments: {' '.join(r for r in rest if '=' not in r)} (overrides look like key=value)")
    from omegaconf import OmegaConf

    cli = OmegaConf.from_dotlist(rest)
    name = args.recipe or ("h100" if str(cli.get("device", "")).startswith("cuda") else "quickstart")
    path = Path(name) if name.endswith((".yaml", ".yml")) else ROOT / "configs" / f"{name}.yaml"
    if not path.is_file():
        print(f"[quickstart] error: recipe not found: {path} (have: {', '.join(sorted(q.stem for q in (ROOT / 'configs').glob('*.yaml')))})",
              file=sys.stderr)
        return 2
    base = OmegaConf.load(path)
    OmegaConf.set_struct(base, True)  # a misspelt override is an error, not a new key
    try:
        recipe = OmegaConf.to_container(OmegaConf.merge(base, cli), resolve=True)
    except Exception as e:  # noqa: BLE001 - omegaconf's key errors: one line
        print(f"[quickstart] error: {path.name}: {' '.join(str(e).split()[:12])}", file=sys.stderr)
        return 2

    from openarm_vla.cli import output_problem
    from openarm_vla.pipeline import Pipeline

    if line := output_problem("output", ROOT / str(recipe.get("output", "")), directory=True):
        print(f"[quickstart] error: {line}", file=sys.stderr)
        return 2

    Pipeline(recipe, ROOT).run(args.stage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
