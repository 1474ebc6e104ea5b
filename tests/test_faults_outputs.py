"""Output folders (issue 34, items 5, 6 and 8): one writer per eval folder; a run folder
is recognised by drzero's own marker and --overwrite removes only what drzero wrote; an
eval folder is no training output and a run folder no eval output; a full disk, an
over-long path component or path gives one line before training, and no leftovers.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drzero.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
EVAL = ["eval", "--model", "toy", "--benchmarks", "toy:test", "--limit", "2", "--max-new-tokens", "8", "--device", "cpu",
        "--grader-workers", "1"]


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


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
        line = _one_line_error(code, capsys.readouterr().err)
        assert f"{out} is in use by another drzero process (pid {holder.pid})" in line
        assert "run the same command again" in line, line
        assert not (out / "samples.jsonl").exists() and not (out / "results.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert cli_main([*EVAL, "--output", str(out)]) == 0  # free again once the holder is gone
