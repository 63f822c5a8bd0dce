#!/usr/bin/env bash
# Create .venv and install whisper-sae with its test extras, keeping torch at the pinned CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH="torch==2.13.0"
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip >/dev/null
# torch first and alone, so that nothing else pulls a different (CUDA, multi-GB) build.
pip install -q "$TORCH"
pip install -q "$TORCH" -e ".[test]"
python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch was changed to {torch.__version__}"
print(f"whisper-sae environment ready (torch {torch.__version__})")
PY
