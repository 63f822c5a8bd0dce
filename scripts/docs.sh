#!/usr/bin/env bash
# The API reference, built from the docstrings with pdoc: site/api/index.html (open it from disk).
#
#   bash scripts/docs.sh [OUT]     # default OUT: site/api; needs pdoc (bash scripts/setup.sh test installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] && . .venv/bin/activate
python scripts/docs.py "${1:-site/api}"
