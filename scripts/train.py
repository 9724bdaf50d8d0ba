"""Train a policy: the PPO state teacher now; SFT and GRPO of the VLA later.

    python scripts/train.py --algo ppo [--config configs/ppo.yaml] [--device auto|cpu|cuda:0] [key=value ...]

--algo ppo   rsl-rl-lib PPO on OpenArm-BoxGrasp-State (configs/ppo.yaml): writes OUTPUT/model_<it>.pt,
             OUTPUT/ppo_policy.pt (for generate_demos.py --expert ppo:OUTPUT/ppo_policy.pt),
             train_curve.json/png and TensorBoard events. Example CPU smoke run:
                 python scripts/train.py --algo ppo --device cpu env.num_envs=2 train.max_iterations=2
--algo sft | grpo   not implemented yet.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMNI_KIT_ACCEPT_EULA", "YES")

ROOT = Path(__file__).resolve().parents[1]
ALGOS = ("ppo", "sft", "grpo")
IMPLEMENTED = ("ppo",)


def _fail(msg: str) -> None:
    print(f"[train] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv=None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo", choices=ALGOS, default=None)
    known, _ = pre.parse_known_args(argv)
    if known.algo is not None and known.algo not in IMPLEMENTED:
        _fail(f"--algo {known.algo}: not implemented yet (available: {', '.join(IMPLEMENTED)})")

    from openarm_vla.utils.config import parse_cli

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--algo", choices=ALGOS, required=True, help="ppo (state teacher) | sft | grpo")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda:0 (overrides the config's device)")
    algo = known.algo or "ppo"
    cfg, args = parse_cli(argv, default_config=ROOT / "configs" / f"{algo}.yaml", parser=parser)
    if args.device is not None:
        cfg.device = args.device

    if args.algo == "ppo":
        from openarm_vla.tasks.factory import TaskError
        from openarm_vla.train.ppo import PPOError, train_ppo

        try:
            train_ppo(cfg)
        except (PPOError, TaskError) as e:
            _fail(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
