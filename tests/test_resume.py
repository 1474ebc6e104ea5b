"""Exact resume: a run killed with SIGKILL mid-way and resumed ends with the same metrics
and parameters as an uninterrupted run with the same seed (CPU)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from resume_equal import assert_same_metrics, assert_same_weights

ARGS = ["--template", "qwen_math", "--max-steps", "4", "--prompts-per-step", "2", "--group-size", "4", "--micro-batch-size", "4",
        "--max-new-tokens", "80", "--eval-every", "0", "--eval-limit", "8", "--save-every", "1",
        "--no-progress", "--grader-workers", "1", "--lr", "1e-3"]


def _run(out, extra=(), wait=True):
    cmd = [sys.executable, "-m", "drzero.cli", "train", "--output-dir", str(out), *ARGS, *extra]
    if wait:
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        return None
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _final(run: Path):
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    ckpt = run / "checkpoints" / (run / "checkpoints" / "latest").read_text()
    return metrics, load_file(str(ckpt / "model.safetensors"))


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    _run(tmp_path / "full")
    proc = _run(tmp_path / "killed", wait=False)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline:  # kill as soon as step 2 is checkpointed, mid-way through step 3
        if (ckpts / "latest").exists() and (ckpts / "latest").read_text().strip() >= "step-000002":
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (ckpts / "latest").exists()
    _run(tmp_path / "killed", extra=["--resume", str(tmp_path / "killed")])
    m_full, p_full = _final(tmp_path / "full")
    m_res, p_res = _final(tmp_path / "killed")
    strip = lambda ms: [{k: v for k, v in m.items() if not k.startswith("time/")} for m in ms]  # noqa: E731
    assert_same_metrics(strip(m_full), strip(m_res))
    assert_same_weights(p_full, p_res)
