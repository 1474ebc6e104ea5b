"""Output folders (issue 34, items 5, 6 and 8): one writer per eval folder; a run folder
is recognised by drzero's own marker and --overwrite removes only what drzero wrote; an
eval folder is no training output and a run folder no eval output; a full disk, an
over-long path component or path gives one line before training, and no leftovers.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import one_line_error
from drzero.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
EVAL = ["eval", "--model", "toy", "--benchmarks", "toy:test", "--limit", "2", "--max-new-tokens", "8",
        "--device", "cpu", "--grader-workers", "1"]


# ----------------------------------------------------------------------------- item 5: one writer per eval folder
HOLDER = r"""
import sys, time
from pathlib import Path
from drzero import checkpoint
Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
checkpoint.lock_run_dir(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_a_second_eval_into_a_folder_in_use_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "eval"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = cli_main([*EVAL, "--output", str(out)])
        line = one_line_error(code, capsys.readouterr().err)
        assert f"{out} is in use by another drzero process (pid {holder.pid})" in line
        assert "run the same command again" in line, line
        assert not (out / "samples.jsonl").exists() and not (out / "results.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert cli_main([*EVAL, "--output", str(out)]) == 0  # free again once the holder is gone


# ----------------------------------------------------------------------------- item 6: whose folder is it
TRAIN = ["train", "--max-steps", "1", "--eval-datasets", "", "--no-progress", "--grader-workers", "1"]


def _users_folder(root: Path) -> Path:
    """The issue's case: a folder of the user's own that happens to have a checkpoints/."""
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / "my_model.bin").write_bytes(b"weights")
    (root / "wandb").mkdir()
    (root / "wandb" / "run.log").write_text("mine")
    (root / "samples.jsonl").write_text('{"mine": 1}\n')
    return root


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_folder_drzero_did_not_write_is_no_run_and_overwrite_deletes_nothing_of_it(tmp_path, overwrite, capsys):
    folder = _users_folder(tmp_path / "mine")
    before = _listing(folder)
    code = cli_main([*TRAIN, "--output-dir", str(folder), *overwrite])
    line = one_line_error(code, capsys.readouterr().err)
    assert "it holds files drzero did not write (samples.jsonl, checkpoints/, wandb/)" in line, line
    assert _listing(folder) == before and (folder / "samples.jsonl").read_text() == '{"mine": 1}\n'


def test_overwrite_of_a_run_refuses_to_delete_a_foreign_file_in_it(tmp_path, capsys):
    from drzero import checkpoint

    run = tmp_path / "run"
    checkpoint.start_run(run, "algo: grpo\n", overwrite=False, resumed_step=None, resumed_from=None)
    (run / "checkpoints" / "step-000001").mkdir(parents=True)
    (run / "checkpoints" / "my_model.bin").write_bytes(b"weights")
    before = _listing(run)
    code = cli_main([*TRAIN, "--output-dir", str(run), "--overwrite"])
    line = one_line_error(code, capsys.readouterr().err)
    assert line.endswith(f"--overwrite {run}: it holds files drzero did not write (checkpoints/my_model.bin); move "
                         "them away or use another --output-dir"), line
    assert _listing(run) == before


def test_an_eval_folder_is_no_training_output_and_a_run_folder_no_eval_output(tmp_path, capsys):
    from drzero import checkpoint

    ev = tmp_path / "eval"  # as an eval from before the marker leaves it
    ev.mkdir()
    (ev / "results.json").write_text('{"config": {"model": "toy"}, "benchmarks": {}, "status": "complete"}')
    (ev / "samples.jsonl").write_text('{"benchmark": "toy:test", "index": 0}\n')
    for overwrite in ([], ["--overwrite"]):
        code = cli_main([*TRAIN, "--output-dir", str(ev), *overwrite])
        line = one_line_error(code, capsys.readouterr().err)
        assert "holds a drzero eval (results.json), not a training run" in line
    assert (ev / "samples.jsonl").read_text() == '{"benchmark": "toy:test", "index": 0}\n'

    run = tmp_path / "run"
    checkpoint.start_run(run, "algo: grpo\n", overwrite=False, resumed_step=None, resumed_from=None)
    (run / "samples.jsonl").write_text('{"step": 1}\n')
    code = cli_main([*EVAL, "--output", str(run)])
    line = one_line_error(code, capsys.readouterr().err)
    assert "holds a drzero training run; give the eval its own --output" in line
    assert (run / "samples.jsonl").read_text() == '{"step": 1}\n' and not (run / "results.json").exists()


# ----------------------------------------------------------------------------- item 8: full disk, long paths
TRAIN_CHILD = r"""
import errno, os, sys
import torch
from drzero import checkpoint
kind = sys.argv[1]
if kind == "enospc":  # the disk fills while step 2's weights are written
    export = checkpoint.export_model
    def full(folder, *a, **k):
        export(folder, *a, **k)
        if folder.name == ".tmp-step-000002":
            w = folder / "model.safetensors"; os.truncate(w, w.stat().st_size // 2)
            raise OSError(errno.ENOSPC, "No space left on device")
    checkpoint.export_model = full
elif kind == "torch-zip":  # what torch.save says when the disk fills under it
    save = torch.save
    def full(obj, f, *a, **k):
        if "tmp-step-000002" in str(f):
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 704 vs 598")
        return save(obj, f, *a, **k)
    torch.save = full
from drzero.cli import main
sys.exit(main(["train", *sys.argv[2:]]))
"""
SMALL = ["--template", "qwen_math", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "16",
         "--save-every", "1", "--max-steps", "3", "--eval-datasets", "", "--no-progress", "--grader-workers", "1"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["enospc", "torch-zip"])
def test_a_full_disk_during_a_checkpoint_is_one_line_and_leaves_no_half_checkpoint(tmp_path, kind):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", TRAIN_CHILD, kind, *SMALL, "--output-dir", str(run)],
                          capture_output=True, text=True, timeout=600, env=ENV)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "it/s]" not in ln]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: no space left on the device writing checkpoint step-000002 in "
                               f"{run / 'checkpoints'}: it needs about "), lines[0]
    assert "are free there (the earlier checkpoints are intact)" in lines[0] and f"--resume {run}" in lines[0]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000001"]  # no .tmp-step-000002


def test_a_folder_name_over_255_bytes_is_refused_before_anything_runs(tmp_path, capsys):
    long_name = tmp_path / ("r" * 300)
    code = cli_main([*TRAIN, "--output-dir", str(long_name)])
    assert "the folder name rrrr" in one_line_error(code, capsys.readouterr().err)
    code = cli_main([*EVAL, "--output", str(long_name / "eval")])
    assert "is 300 bytes long; the file system allows 255" in one_line_error(code, capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def _path_of_length(root: Path, length: int) -> Path:
    parts, size = [], len(str(root))
    while size < length:
        parts.append("d" * min(200, length - size - 1))
        size += len(parts[-1]) + 1
    return root.joinpath(*parts)


def test_a_path_too_long_for_the_checkpoints_inside_is_refused_before_training(tmp_path, capsys):
    """4060 bytes: the folder and its logs fit under Linux's 4096, its checkpoints/.tmp-step-N/trainer/ does
    not: drzero 0d9707b trained the step, then crashed at the checkpoint with a traceback."""
    deep = _path_of_length(tmp_path, 4060)
    assert len(str(deep)) == 4060
    code = cli_main([*TRAIN, "--output-dir", str(deep)])
    line = one_line_error(code, capsys.readouterr().err)
    assert "the files written inside it need" in line and "over the system's limit of 4096" in line, line
    assert list(tmp_path.iterdir()) == []
