#!/usr/bin/env bash
# Set up the environment (runtime only: pip install -e .) and run the offline demo: synthesize speech,
# extract Whisper tiny.en's encoder.out, train a TopK SAE, evaluate it (spliced WER) and build the feature dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
whisper-sae demo --out "${1:-demo-out}"
