"""--reward module:function: loading, checking what it returns, and its use by train and eval."""

import json

import pytest

from drzero.cli import main as cli_main
from drzero.config import TrainConfig
from drzero.errors import DrZeroError
from drzero.reward import custom_rewards, load_reward_function
from drzero.train import train

REWARDS = '''
def parity(responses, references, rows):
    return [len(r) % 2 for r in responses]

def wrong_length(responses, references, rows):
    return [1.0]

def not_numbers(responses, references, rows):
    return ["a" for _ in responses]

def nan(responses, references, rows):
    return [float("nan") for _ in responses]

def boom(responses, references, rows):
    raise KeyError("level")
'''


@pytest.fixture
def reward_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARDS)
    return path


def test_loading_by_file_and_by_module(reward_file, monkeypatch):
    assert load_reward_function(f"{reward_file}:parity")(["ab", "abc"], ["1", "1"], [{}, {}]) == [0, 1]
    monkeypatch.syspath_prepend(str(reward_file.parent))
    assert load_reward_function("my_rewards:parity")(["a"], ["1"], [{}]) == [1]


@pytest.mark.parametrize("spec,match", [
    ("no_colon", "expected module:function"),
    ("/nope/rewards.py:fn", "does not exist"),
    ("drzero_no_such_module:fn", "cannot import"),
    ("{file}:missing", "has no function 'missing'"),
])
def test_bad_specs_are_one_line_errors(reward_file, spec, match):
    with pytest.raises(DrZeroError, match=match) as e:
        load_reward_function(spec.format(file=reward_file))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name,match", [("wrong_length", "returned 1 rewards for 2"), ("not_numbers", "list of numbers"),
                                        ("nan", "NaN"), ("boom", "raised KeyError")])
def test_what_the_function_returns_is_checked(reward_file, name, match):
    fn = load_reward_function(f"{reward_file}:{name}")
    with pytest.raises(DrZeroError, match=match):
        custom_rewards(fn, ["a", "bb"], ["1", "2"], [{}, {}])


@pytest.mark.slow
def test_train_replaces_the_reward_with_the_function(tmp_path, reward_file):
    train(TrainConfig(output_dir=str(tmp_path / "run"), template="qwen_math", max_steps=1, prompts_per_step=2,
                      group_size=4, micro_batch_size=4, max_new_tokens=24, eval_every=0, eval_datasets="",
                      log_samples=2, progress=False, grader_workers=1, reward=f"{reward_file}:parity",
                      reward_mode="replace"))
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["reward"] == len(s["response"]) % 2 for s in samples)


def test_eval_reports_the_mean_reward(tmp_path, reward_file):
    out = tmp_path / "ev"
    code = cli_main(["eval", "--benchmarks", "toy:test", "--limit", "6", "--max-new-tokens", "24", "--output", str(out),
                     "--reward", f"{reward_file}:parity", "--reward-mode", "add", "--grader-workers", "1"])
    assert code == 0
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert all(r["reward"] == float(r["correct"] and r["finish_reason"] != "length") + len(r["response"]) % 2 for r in rows)
    res = json.loads((out / "results.json").read_text())["benchmarks"]["toy:test"]
    assert res["reward_mean"] == pytest.approx(sum(r["reward"] for r in rows) / len(rows))
