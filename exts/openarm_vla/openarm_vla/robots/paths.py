"""Where the project's assets live (the repo's assets/ folder, or OPENARM_VLA_ASSETS)."""

import os
from pathlib import Path

ASSETS_DIR = Path(os.environ.get("OPENARM_VLA_ASSETS", Path(__file__).resolve().parents[4] / "assets"))
OPENARM_USD_PATH = ASSETS_DIR / "openarm" / "openarm.usda"


def require_asset(path: Path) -> str:
    """Return ``path`` as a string, or exit with one line saying how to rebuild it."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"asset not found: {path}. Rebuild it with `python scripts/build_assets.py` "
            "(or set OPENARM_VLA_ASSETS to the folder that holds openarm/openarm.usda)"
        )
    return str(path)
