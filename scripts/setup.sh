#!/usr/bin/env bash
# Create .venv and install whisper-sae into it, keeping torch at the pinned CPU build.
#
#   bash scripts/setup.sh          # what the library, the CLI and the demo need (pip install -e .)
#   bash scripts/setup.sh test     # + the test suite's extras (pytest, ruff...) and pdoc for the API-reference check (.[test,docs])
#   bash scripts/setup.sh dev      # + ruff (.[test,docs,dev])
#
# Then enter the environment with `. .venv/bin/activate`.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH="torch==2.13.0"
case "${1:-}" in
  "") EXTRAS="" ;;
  test) EXTRAS="[test,docs]" ;;
  dev) EXTRAS="[test,docs,dev]" ;;
  *) echo "usage: bash scripts/setup.sh [test|dev]  (no argument: the runtime only)" >&2; exit 2 ;;
esac
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip >/dev/null
# torch first and alone, so that nothing else pulls a different (CUDA, multi-GB) build.
pip install -q "$TORCH"
pip install -q "$TORCH" -e ".$EXTRAS"
python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch was changed to {torch.__version__}"
print(f"whisper-sae environment ready in .venv (torch {torch.__version__}); enter it with: . .venv/bin/activate")
PY
