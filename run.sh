#!/usr/bin/env bash
# openarm_vla's two commands; each sets up .venv on a fresh machine first (Python 3.12 + Isaac Lab 3.0, kit-less).
#   ./run.sh [--device auto|cpu|cuda] [key=value ...]   run the main job on the embedded default config
#   ./run.sh test [pytest args]                         run the test suite
set -euo pipefail
cd "$(dirname "$0")"

find_python312() {
  for c in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  echo "openarm_vla: Python 3.12 is required by Isaac Lab 3.0 and was not found (install python3.12)" >&2
  return 1
}

setup() {
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import isaaclab, openarm_vla, timm, pytest' 2>/dev/null; then
    echo "[openarm_vla] setting up .venv (first run: ~5 min, ~8 GB)" >&2
    [ -x .venv/bin/python ] || "$(find_python312)" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[dev]"
  fi
  [ -f assets/openarm/openarm.usda ] || .venv/bin/python scripts/build_assets.py
}

setup
if [ "${1:-}" = "test" ]; then
  shift
  set +e
  .venv/bin/python -m pytest "$@"
  rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then echo "openarm_vla: pytest collected no tests: that is a failure" >&2; fi
  exit "$rc"
fi
exec .venv/bin/python scripts/quickstart.py "$@"
