"""Reward plug-ins are held to their contract (issue 34, item 7): one real number per
response, finite, within REWARD_RANGE; the declared return type (a list of numbers)
enforced, not coerced; an optional per-call time limit (--reward-timeout-s)."""

import time

import numpy as np
import pytest
import torch

from drzero.errors import DrZeroError
from drzero.reward import REWARD_RANGE, custom_rewards, load_reward_function

REWARDS = '''
import time

def as_dict(responses, references, rows):
    return {0.5: "a", 1.0: "b"}

def strings(responses, references, rows):
    return ["0.5", "1.0"]

def huge(responses, references, rows):
    return [1e30, 0.0]

def very_negative(responses, references, rows):
    return [0.0, -11]

def a_string(responses, references, rows):
    return "01"

def generator(responses, references, rows):
    return (0.0 for _ in responses)

def nested(responses, references, rows):
    return [[0.5], [1.0]]

def sleepy(responses, references, rows):
    time.sleep(60)
    return [0.0 for _ in responses]

def fine(responses, references, rows):
    return (1, 0.25)
'''


@pytest.fixture
def rewards(tmp_path):
    path = tmp_path / "plugin_rewards.py"
    path.write_text(REWARDS)
    return lambda name, **kw: load_reward_function(f"{path}:{name}", **kw)


def _call(fn):
    return custom_rewards(fn, ["a", "bb"], ["1", "2"], [{}, {}])


@pytest.mark.parametrize("name, match", [
    ("as_dict", r"must return a list of numbers, one per response; it returned a dict"),
    ("strings", r"must return a list of numbers; item 0 is '0.5', a str"),
    ("huge", r"returned 1e\+30, outside the accepted range \[-10, 10\]"),
    ("very_negative", r"returned -11, outside the accepted range \[-10, 10\]"),
    ("a_string", r"it returned a str"),
    ("generator", r"it returned a generator"),
    ("nested", r"item 0 is '\[0.5\]', a list"),
])
def test_a_reward_outside_the_contract_is_one_line(rewards, name, match):
    with pytest.raises(DrZeroError, match=match) as e:
        _call(rewards(name))
    assert "\n" not in str(e.value)


def test_numbers_in_any_sequence_are_taken(rewards):
    assert REWARD_RANGE == (-10.0, 10.0)
    assert _call(rewards("fine")) == [1.0, 0.25]
    assert _call(lambda *a: np.array([0.5, -1.0])) == [0.5, -1.0]
    assert _call(lambda *a: torch.tensor([1.0, 10.0])) == [1.0, 10.0]


def test_a_reward_call_past_its_time_limit_stops_in_one_line(rewards):
    t = time.perf_counter()
    with pytest.raises(DrZeroError, match=r"'sleepy' took more than --reward-timeout-s 0.5 s on 2 responses"):
        _call(rewards("sleepy", timeout_s=0.5))
    assert time.perf_counter() - t < 5
    assert _call(rewards("fine", timeout_s=5)) == [1.0, 0.25]  # within the limit: the same rewards
    with pytest.raises(DrZeroError, match="raised ZeroDivisionError"):  # an error inside still named
        _call(load_reward_function.__globals__["with_timeout"](lambda *a: 1 / 0, 5))


def test_reward_timeout_is_a_flag_of_train_and_eval(capsys):
    from drzero.cli import main as cli_main

    for command in ("train", "eval"):
        assert cli_main([command, "--reward-timeout-s", "-1"]) == 2
        assert "--reward-timeout-s (key reward_timeout_s) must be >= 0" in capsys.readouterr().err
