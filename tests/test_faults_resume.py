"""`drzero train --resume` never mixes settings (issue 34, item 2).

Every TrainConfig field is classified as run-defining (a change is refused in one line,
naming the setting and both values) or as one a resume may change (recorded in
resumes.jsonl with the step after which it took effect; config.yaml holds the value used).
"""

import dataclasses
import json

import pytest
import yaml

from drzero import resume
from conftest import one_line_error
from drzero.cli import main as cli_main
from drzero.config import TrainConfig
from drzero.parsing import config_text

RUN_ARGS = ["--template", "qwen_math", "--prompts-per-step", "2", "--group-size", "4", "--micro-batch-size", "8",
            "--max-new-tokens", "32", "--eval-datasets", "", "--no-progress", "--grader-workers", "1", "--lr", "1e-3"]


def test_every_train_setting_is_classified_once():
    """Add a TrainConfig field and this fails until the field is put in resume.RUN_DEFINING
    or resume.MAY_CHANGE (with the reason a resume may change it)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    defining, may = set(resume.RUN_DEFINING), set(resume.MAY_CHANGE)
    assert not defining & may
    assert fields - defining - may == set(), "unclassified"
    assert (defining | may) - fields == set(), "not a field"


@pytest.fixture
def run(tmp_path):
    """A run folder as a 1-step run leaves it (config.yaml is all a resume reads first)."""
    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig(output_dir=str(run), template="qwen_math", max_steps=1, lr=1e-3)
    (run / "config.yaml").write_text(config_text(cfg))
    return run


@pytest.mark.parametrize("flag, value, old", [
    ("--algo", "grpo", "'dr_grpo'"), ("--dataset", "math500", "'toy:train'"), ("--seed", "3", "0"),
    ("--group-size", "4", "8"), ("--max-new-tokens", "32", "96"), ("--model", "toy-v2", "'toy'"),
    ("--lr", "0.002", "0.001"), ("--lora-rank", "8", "0"), ("--template", "r1", "'qwen_math'"),
    ("--clip-eps-high", "0.28", "None"), ("--grader", "paper", "'drzero'"), ("--temperature", "0.7", "1.0"),
])
def test_a_run_defining_change_on_resume_is_refused_naming_both_values(run, flag, value, old, capsys):
    before = (run / "config.yaml").read_text()
    code = cli_main(["train", "--resume", str(run), flag, value])
    line = one_line_error(code, capsys.readouterr().err)
    assert f"{flag} is {old} in the run" in line and "now" in line, line
    assert (run / "config.yaml").read_text() == before  # config.yaml never claims a value the run did not use
    assert not (run / "resumes.jsonl").exists()


def test_max_steps_may_change_but_not_under_a_schedule_it_lengthens(run):
    from drzero.parsing import parse_config

    cfg = parse_config(TrainConfig, ["--resume", str(run), "--max-steps", "5", "--eval-every", "2"], prog="t")
    assert resume.check_resume(run, cfg) == {"max_steps": (1, 5), "eval_every": (10, 2)}
    text = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**text, "lr_schedule": "cosine"}))
    cfg = parse_config(TrainConfig, ["--resume", str(run), "--max-steps", "5"], prog="t")
    with pytest.raises(Exception, match=r"--max-steps is 1 in the run, 5 now \(the cosine schedule's length\)"):
        resume.check_resume(run, cfg)


@pytest.mark.slow
def test_a_safe_change_is_recorded_with_its_step_and_config_yaml_says_what_ran(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli_main(["train", *RUN_ARGS, "--max-steps", "1", "--output-dir", str(run)]) == 0
    assert cli_main(["train", "--resume", str(run), "--max-steps", "2", "--log-samples", "1"]) == 0
    out = capsys.readouterr().out
    assert "changed on resume (recorded in resumes.jsonl): max_steps 1 -> 2, log_samples 4 -> 1" in out
    records = [json.loads(x) for x in (run / "resumes.jsonl").read_text().splitlines()]
    assert records == [{"step": 1, "changed": {"max_steps": {"old": 1, "new": 2}, "log_samples": {"old": 4, "new": 1}}}]
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["max_steps"] == 2 and saved["lr"] == 1e-3 and saved["log_samples"] == 1
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_micro_batch_size_is_run_defining_only_for_a_per_micro_batch_normaliser(tmp_path):
    """The gradient of verl's/TRL's per-micro-batch presets depends on the cut: a resume may
    not change it there; for every other objective it may (the same gradient)."""
    from drzero.errors import DrZeroError

    for algo, refused in (("dr_grpo", False), ("grpo_microbatch_token_mean", True)):
        run = tmp_path / algo
        run.mkdir()
        old = TrainConfig(output_dir=str(run), algo=algo, micro_batch_size=8)
        (run / "config.yaml").write_text(config_text(old))
        new = dataclasses.replace(old, micro_batch_size=4, resume=str(run))
        if refused:
            with pytest.raises(DrZeroError, match="--micro-batch-size is 8 in the run, 4 now"):
                resume.check_resume(run, new)
        else:
            assert resume.check_resume(run, new)["micro_batch_size"] == (8, 4)
