"""bench/step_timing.py runs end to end at the toy shape (the GPU session runs it at the
1.5B shape) and reports a generation share and an MFU that follow from its own timings."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "step_timing.py"


@pytest.mark.slow
def test_step_timing_toy_shape_end_to_end():
    B, G, P, T = 2, 3, 12, 6
    out = subprocess.run([sys.executable, str(BENCH), "--shape", "toy", "--device", "cpu", "--prompts", str(B),
                          "--group-size", str(G), "--prompt-tokens", str(P), "--max-new-tokens", str(T),
                          "--micro-batch-size", "4", "--repeats", "1", "--peak-tflops", "0.05"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "generation share" in out.stdout and "MFU" in out.stdout
    result = json.loads(out.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    assert result["responses"] == B * G and result["generated_tokens"] == B * G * T  # no stop: every response runs to T
    gen_s, train_s = result["generate_s"], result["train_s"]
    assert 0 < result["generation_share"] < 1
    assert math.isclose(result["generation_share"], gen_s / (gen_s + train_s), abs_tol=2e-3)

    spec = importlib.util.spec_from_file_location("step_timing", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    shape = bench.SHAPES["toy"]
    d, L, F = shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"]
    kv = d // shape["num_attention_heads"] * shape["num_key_value_heads"]
    n_body = L * (2 * d * d + 2 * d * kv + 3 * d * F + d + 2 * kv + 2 * d) + d  # q,k,v,o, MLP, q/k/v biases, norms
    gen_flops, train_flops = bench.step_flops(shape, n_body, B, G, P, T)
    assert math.isclose(train_flops, 3 * gen_flops)
    peak = 0.05e12
    assert math.isclose(result["mfu"], (gen_flops + train_flops) / ((gen_s + train_s) * peak), rel_tol=0.02)
    assert math.isclose(result["mfu_generate"], gen_flops / (gen_s * peak), rel_tol=0.02)


def test_step_flops_by_hand():
    spec = importlib.util.spec_from_file_location("step_timing", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # d=2, 1 layer, V=3, 10 body parameters; 1 prompt of 2 tokens, 2 responses of 1 token.
    # Tokens: the prompt once (2) + 2 responses = 4 -> 2*10*4 = 80. Attended pairs: prompt 1+2 = 3, each response
    # 2+1 = 3 -> 9, at 4*1*2 = 8 FLOPs each = 72. LM head: 2*3*2 per logit row, 1 (prompt's last) + 2 rows = 36.
    gen, train = bench.step_flops(dict(hidden_size=2, num_hidden_layers=1, vocab_size=3), 10, 1, 2, 2, 1)
    assert gen == 80 + 72 + 36 and train == 3 * gen


GPU_CHECK = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_tiny_on_the_cpu(tmp_path):
    """bench/gpu_check.py --tiny runs every part of the GPU check (the iteration through
    drzero's engine, grader and update; the plan lookup; the long log-prob update; decode vs
    transformers' generate) on the CPU, so the command prepared for a lent GPU cannot rot."""
    out_file = tmp_path / "g.json"
    out = subprocess.run([sys.executable, str(GPU_CHECK), "--tiny", "--out", str(out_file)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    result = json.loads(out_file.read_text())
    assert result == json.loads(out.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
    B, G, T = result["prompts"], result["group"], result["max_new_tokens"]
    it = result["iteration"]
    assert it["generated_tokens"] == B * G * T  # no stop: every response ran to the budget
    assert math.isclose(it["generation_tokens_per_s"], B * G * T / it["generate_s"], rel_tol=0.02)
    assert math.isclose(sum(it["split"].values()), 1.0, abs_tol=0.005)
    assert 0 < it["mfu"] < 1 and it["train_s"] > 0
    assert isinstance(result["plan"]["available"], bool)
    long = result["logprob_long"]
    assert long["unchunked"]["train_s"] > 0
    assert ("chunked" in long) == long["chunk_supported"]
    cmp = result["decode_vs_generate"]
    assert cmp["drzero_tokens"] == cmp["transformers_tokens"] == B * G * T
    assert math.isclose(cmp["tokens_per_s_ratio"], cmp["drzero_tokens_per_s"] / cmp["transformers_tokens_per_s"],
                        rel_tol=0.01)


LADDER_PROFILE = Path(__file__).resolve().parents[1] / "bench" / "ladder_profile.py"


@pytest.mark.slow
def test_ladder_profile_worker_on_the_toy(tmp_path):
    """bench/ladder_profile.py's drzero worker (the ladder's own workload under the profiler;
    TRL's side needs the trl extra, not installed in CI) runs every response to the budget
    and reports an arithmetic share that is a share."""
    from drzero.models import resolve_model_path

    cmd = [sys.executable, str(LADDER_PROFILE), "--point", "toy/16", "--worker", "drzero", "--model-path",
           resolve_model_path("toy"), "--run-dir", str(tmp_path), "--length", "16", "--steps", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    p = json.loads((tmp_path / "profile.json").read_text())
    assert 0 < p["arithmetic_s"] < p["cpu_s"]
    assert [s["tokens"] for s in p["steps"]] == [2 * 4 * 16] * 2  # 2 prompts x 4 samples x 16 tokens, no stop
    assert p["ops"] and all(seconds >= 0 for _, seconds in p["ops"])
