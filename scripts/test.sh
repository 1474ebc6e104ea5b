#!/usr/bin/env bash
# Set up, run the vLLM engine check (separate venv, see scripts/test_vllm.sh), then the
# whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/test_vllm.sh
python -m pytest tests
