#!/usr/bin/env bash
# Install drzero and its dependencies. torch==2.13.0 first: on the project's CPU machines
# that pin resolves to a local CPU wheel; any other torch spec pulls GBs of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev]"
