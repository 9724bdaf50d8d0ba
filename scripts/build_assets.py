"""Rebuild the project's OpenArm USD (assets/openarm/openarm.usda) from the kinematics facts.

    python scripts/build_assets.py [--output assets/openarm/openarm.usda]
"""

import argparse
from pathlib import Path

from openarm_vla.robots.build_usd import build_openarm_usd
from openarm_vla.robots.paths import OPENARM_USD_PATH


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OPENARM_USD_PATH)
    args = parser.parse_args()
    path = build_openarm_usd(args.output)
    print(f"[openarm_vla] wrote {path}")


if __name__ == "__main__":
    main()
