"""The main job: the whole recipe, scripted demos -> SFT -> GRPO -> held-out evaluation, as resumable stages.

    ./run.sh                       # on a CPU: configs/pipelines/quickstart.yaml (about 10 minutes); with a GPU: h100
    ./run.sh device=cuda           # configs/pipelines/h100.yaml: the small preset on one H100 / H200 (the learning proof)
    ./run.sh h100 [--stage sft] [key=value ...]      # a recipe by name (configs/pipelines/NAME.yaml) or path, one stage

Stages (``--stage``): show, demos, sft, select, grpo, report, test, ood (default: all, skipping what is done and resuming what
was cut short; see openarm_vla.pipeline). ``key=value`` overrides the recipe (``demos.num_demos=32``,
``grpo.max_iterations=5``). Outputs land in the recipe's ``output`` (runs/<name>/): results.json, curve.png,
the SFT and GRPO runs, videos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openarm_vla.cli import fail, run_main
from openarm_vla.pipeline import STAGES

ROOT = Path(__file__).resolve().parents[1]


@run_main("quickstart")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="quickstart", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("recipe", nargs="?", default=None, help="recipe name in configs/pipelines/ or a YAML path")
    p.add_argument("--stage", default="all", choices=("all", *STAGES))
    args, rest = p.parse_known_args(argv)
    if args.recipe and "=" in args.recipe:  # `./run.sh key=value ...`: an override, not a recipe name
        rest, args.recipe = [args.recipe, *rest], None
    if any("=" not in r for r in rest):
        p.error(f"unrecognized arguments: {' '.join(r for r in rest if '=' not in r)} (overrides look like key=value)")
    from openarm_vla.cli import output_problem
    from openarm_vla.pipeline import Pipeline
    from openarm_vla.pipeline_cfg import load_pipeline_cfg, recipe_path

    device = next((r.split("=", 1)[1] for r in rest if r.startswith("device=")), "auto")
    if device == "auto":  # with a GPU the main job is the GPU recipe
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = device.startswith("cuda")
    recipe = load_pipeline_cfg(recipe_path(args.recipe or ("h100" if cuda else "quickstart"), ROOT), rest)
    if line := output_problem("output", ROOT / recipe.output, directory=True):
        fail("quickstart", line)
    Pipeline(recipe, ROOT).run(args.stage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
