#!/usr/bin/env bash
# The test suite: unit tests on tiny random Whisper configs, integration tests on real tiny.en weights
# and synthesized speech. Needs nothing from the network or from ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
# Lint and format check first (ruff, configured in pyproject.toml; a second or two): each problem names file and line.
ruff check .
ruff format --check .
python -m pytest -q -ra "$@"
