"""Where the project's assets live (the repo's assets/ folder, or OPENARM_VLA_ASSETS)."""

import os
from pathlib import Path

ASSETS_DIR = Path(os.environ.get("OPENARM_VLA_ASSETS", Path(__file__).resolve().parents[4] / "assets"))
OPENARM_USD_PATH = ASSETS_DIR / "openarm" / "openarm.usda"

