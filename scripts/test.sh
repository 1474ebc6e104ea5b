#!/usr/bin/env bash
# The README's test command: set up exactly as the main command does (scripts/setup.sh,
# sourced, so a .venv/ it had to create is used), run the vLLM engine check (its own
# environment, see scripts/test_vllm.sh), then the whole test suite, slow tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
python=$(bash scripts/setup.sh --python)
bash scripts/test_vllm.sh
echo "tests: $python -m pytest tests"
"$python" -m pytest tests
