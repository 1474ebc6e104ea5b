"""Preemption (issue 34, item 1): SIGTERM, SIGUSR1 and SIGINT during `drzero train` and
`drzero eval` keep every finished step or sample, print one line saying how to go on,
and exit 128 + the signal's number; a second signal exits at once.

Each training case runs `drzero train` in a child process that patches one function to
send itself the signal at a chosen point (mid-generation, mid-update), so the point is
exact; one case sends a real Ctrl-C to the whole process group at a random moment.
"""

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

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
TRAIN_ARGS = ["--template", "qwen_math", "--prompts-per-step", "2", "--group-size", "4", "--micro-batch-size", "8",
              "--max-new-tokens", "48", "--eval-datasets", "", "--save-every", "10", "--no-progress",
              "--grader-workers", "1", "--lr", "1e-3", "--seed", "6"]

CHILD = r"""
import os, signal, sys
from drzero import train
kind, at = sys.argv[1].split(":")
at = int(at)
sig = {"term": signal.SIGTERM, "usr1": signal.SIGUSR1, "int": signal.SIGINT, "twice": signal.SIGTERM}.get(kind)
if kind in ("term", "int"):  # the signal arrives while step `at` generates
    generate = train.generate_and_grade
    def patched(engine, rows, template, params, *a, **k):
        if params.seed == 6 * 1_000_003 + at * 101:
            os.kill(os.getpid(), sig)
        return generate(engine, rows, template, params, *a, **k)
    train.generate_and_grade = patched
else:  # the signal arrives while step `at` updates the policy: that step is finished (unless sent twice)
    update = train.update_policy
    def patched(s, batch, step):
        if step == at and sig is not None:
            os.kill(os.getpid(), sig)
            if kind == "twice":
                os.kill(os.getpid(), sig)
        return update(s, batch, step)
    train.update_policy = patched
from drzero.cli import main
sys.exit(main(["train", *sys.argv[2:]]))
"""


def _train(run_dir, *extra, fault="none:0"):
    proc = subprocess.run([sys.executable, "-c", CHILD, fault, *extra, *TRAIN_ARGS, "--output-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _steps(run_dir):
    return [json.loads(x)["step"] for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _metrics(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if not k.startswith("time/")} for x in lines]


def _stop_line(proc):
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "it/s]" not in ln]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ref = tmp_path_factory.mktemp("sig") / "reference"
    assert _train(ref, "--max-steps", "4").returncode == 0
    return ref


@pytest.mark.slow
def test_sigterm_mid_generation_abandons_the_step_saves_the_last_and_resumes_exactly(reference, tmp_path):
    run = tmp_path / "run"
    proc = _train(run, "--max-steps", "4", fault="term:3")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    line = _stop_line(proc)
    assert line.startswith("stopped by SIGTERM: step 2 is saved in") and f"drzero train --resume {run}" in line, line
    assert _steps(run) == [1, 2]  # step 3 was abandoned, nothing of it logged
    assert (run / "checkpoints" / "latest").read_text() == "step-000002"  # save_every 10: saved because of the signal
    proc = _train(run, "--resume", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_metrics(_metrics(run), _metrics(reference))
    assert_same_weights(load_file(str(reference / "checkpoints/step-000004/model.safetensors")),
                        load_file(str(run / "checkpoints/step-000004/model.safetensors")))


@pytest.mark.slow
def test_sigusr1_mid_update_finishes_that_step_and_saves_it(reference, tmp_path):
    run = tmp_path / "run"
    proc = _train(run, "--max-steps", "4", fault="usr1:2")
    assert proc.returncode == 128 + signal.SIGUSR1, proc.stderr
    assert _stop_line(proc).startswith("stopped by SIGUSR1: step 2 is saved in")
    assert _steps(run) == [1, 2] and (run / "checkpoints" / "latest").read_text() == "step-000002"
    assert _train(run, "--resume", str(run)).returncode == 0
    assert_same_metrics(_metrics(run), _metrics(reference))


@pytest.mark.slow
def test_sigint_on_the_first_step_keeps_nothing_and_says_so(tmp_path):
    run = tmp_path / "run"
    proc = _train(run, "--max-steps", "4", fault="int:1")
    assert proc.returncode == 130, proc.stderr
    line = _stop_line(proc)
    assert "no step had finished" in line and f"--resume {run}" in line, line
    assert not list((run / "checkpoints").glob("step-*")) if (run / "checkpoints").exists() else True


@pytest.mark.slow
def test_a_second_signal_exits_at_once(tmp_path):
    proc = _train(tmp_path / "run", "--max-steps", "4", fault="twice:2")
    assert proc.returncode == -signal.SIGTERM, proc.stderr  # the default action: no waiting for the step


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_at_a_random_moment_loses_no_finished_step(tmp_path):
    """A real Ctrl-C reaches the grader's workers too: they must not die of it."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "drzero", "train", *TRAIN_ARGS, "--max-steps", "40",
                             "--output-dir", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    metrics = run / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err, err
    steps = _steps(run)
    assert (run / "checkpoints" / "latest").read_text() == f"step-{steps[-1]:06d}"  # the last finished step is saved
    assert f"step {steps[-1]} is saved" in err


# ----------------------------------------------------------------------------- eval
@pytest.mark.slow
def test_eval_on_sigterm_keeps_its_work_in_one_line_and_says_interrupted(tmp_path):
    out = tmp_path / "eval"
    proc = subprocess.Popen([sys.executable, "-m", "drzero", "eval", "--model", "toy", "--benchmarks", "toy:test",
                             "--limit", "40", "--max-new-tokens", "48", "--batch-size", "2", "--grader-workers", "1",
                             "--device", "cpu", "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    samples = out / "samples.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and len(samples.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the eval ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    lines = [ln for ln in err.splitlines() if ln.strip() and "it/s]" not in ln]
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGTERM:") and "samples are kept" in lines[0], err
    assert json.loads((out / "results.json").read_text())["status"] == "interrupted"
