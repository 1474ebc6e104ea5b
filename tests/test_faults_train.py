"""Fault injection for training (issue 17): kill -9 at several points -- while a metrics
line is half written, while a checkpoint is being written, between a checkpoint's rename
and the `latest` update -- plus a newest checkpoint corrupted by truncation, an older one
with a truncated trainer shard and an empty `latest`; after each, `--resume`. Every
process exits 0 or dies by the kill, prints no traceback, and the run ends with exactly
the metric lines and parameters of an uninterrupted run. A second run into a run's
directory is refused in one line; `--overwrite` replaces it.

Each fault is injected in a child process that patches one function of drzero to kill
itself (SIGKILL) at that point, then runs `drzero train`."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ARGS = ["--template", "qwen_math", "--max-steps", "3", "--prompts-per-step", "2", "--group-size", "4",
        "--micro-batch-size", "8", "--max-new-tokens", "64", "--eval-datasets", "", "--save-every", "1",
        "--keep-checkpoints", "3", "--no-progress", "--grader-workers", "1", "--lr", "1e-3", "--seed", "6"]

CHILD = r"""
import os, signal, sys
from drzero import checkpoint, tracking
kind, at = sys.argv[1].split(":")
at = int(at)
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if kind == "torn-metrics":  # killed while writing step `at`'s metrics line
    write = tracking.RunLog.write
    def torn(self, name, records):
        if name == "metrics" and records[0].get("step") == at:
            line = tracking.dumps(records[0])
            self.files[name].write(line[: len(line) // 2]); self.files[name].flush(); die()
        write(self, name, records)
    tracking.RunLog.write = torn
elif kind == "mid-checkpoint":  # killed while writing step `at`'s weights
    export = checkpoint.export_model
    def half(folder, *a, **k):
        export(folder, *a, **k)
        if folder.name == f".tmp-step-{at:06d}":
            w = folder / "model.safetensors"; os.truncate(w, w.stat().st_size // 2); die()
    checkpoint.export_model = half
elif kind == "before-latest":  # killed after step `at`'s checkpoint is in place, before `latest` names it
    point = checkpoint._point_latest
    def maybe(root, name):
        if name == f"step-{at:06d}": die()
        point(root, name)
    checkpoint._point_latest = maybe
from drzero.cli import main
sys.exit(main(["train", *sys.argv[2:]]))
"""


def _train(run_dir, *extra, fault="none:0"):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, fault, "--output-dir", str(run_dir), *ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = proc.communicate(timeout=900)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # grader workers orphaned by a kill
    except ProcessLookupError:
        pass
    assert "Traceback" not in err, err[-3000:]
    return proc.returncode, out, err


def _metrics(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if not k.startswith("time/")} for x in lines]


def _weights(run_dir, step):
    return load_file(str(Path(run_dir) / "checkpoints" / f"step-{step:06d}" / "model.safetensors"))


@pytest.mark.slow
def test_kills_and_corruption_then_resume_match_an_uninterrupted_run(tmp_path):
    ref, run = tmp_path / "reference", tmp_path / "run"
    assert _train(ref)[0] == 0
    reference = _metrics(ref)
    assert [m["step"] for m in reference] == [1, 2, 3]
    assert any(m["train/grad_norm"] > 0 for m in reference[:2])  # a learning signal early: the weights move

    # another run's files in the directory: refused in one line, untouched; --overwrite replaces them
    (run / "checkpoints" / "step-000009").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(10)))
    (run / "config.yaml").write_text("algo: grpo\n")
    code, out, err = _train(run)
    assert code == 2 and err.strip().count("\n") == 0 and "--resume" in err and "--overwrite" in err, err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 10

    code, _, _ = _train(run, "--overwrite", fault="torn-metrics:2")
    assert code == -signal.SIGKILL
    assert not (run / "checkpoints" / "step-000009").exists()
    assert not (run / "metrics.jsonl").read_text().endswith("\n")  # a torn last line

    code, out, _ = _train(run, "--resume", str(run), fault="mid-checkpoint:2")
    assert code == -signal.SIGKILL and "resumed from" in out and "at step 1" in out
    assert list((run / "checkpoints").glob(".tmp-step-000002"))  # the half-written checkpoint

    code, out, _ = _train(run, "--resume", str(run), fault="before-latest:3")
    assert code == -signal.SIGKILL and "at step 1" in out
    ckpts = run / "checkpoints"
    assert (ckpts / "step-000003" / "manifest.json").exists() and (ckpts / "latest").read_text() == "step-000002"

    # the newest checkpoint truncated, the one before it with a truncated trainer shard, `latest` emptied
    weights = ckpts / "step-000003" / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 3)
    shard = ckpts / "step-000002" / "trainer" / "__0_0.distcp"
    os.truncate(shard, shard.stat().st_size - 100)
    (ckpts / "latest").write_text("")
    code, out, _ = _train(run, "--resume", str(run))
    assert code == 0, out[-3000:]
    assert "checkpoint step-000003 is not intact (model.safetensors has" in out
    assert "checkpoint step-000002 is not intact (trainer/__0_0.distcp has" in out
    assert "resumed from" in out and "at step 1" in out

    assert _metrics(run) == reference  # every step exactly once, equal to the uninterrupted run
    assert (ckpts / "latest").read_text() == "step-000003"
    w_ref, w_run = _weights(ref, 3), _weights(run, 3)
    assert set(w_ref) == set(w_run)
    for k in w_ref:
        assert torch.equal(w_ref[k], w_run[k]), k
    base = load_file(str(Path(__file__).resolve().parents[1] / "drzero" / "toy" / "checkpoint" / "model.safetensors"))
    assert any(not torch.equal(base[k], w_run[k]) for k in base)  # it did train
