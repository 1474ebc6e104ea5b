"""generate_and_grade grades responses while the engine decodes the rest (HFEngine hands
them over as they stop), with the same grades, in order, as grading afterwards."""

import functools

import pytest
import torch

from drzero.grader import Grader
from drzero.models import load_model_and_tokenizer
from drzero.rollout import Generation, SamplingParams, generate_and_grade
from drzero.rollout.hf import HFEngine
from drzero.templates import TEMPLATES
from drzero.data import load_toy_split as load_split


class RecordingGrader:
    """The real grader, noting for every call whether the engine was still generating."""

    def __init__(self, engine_state):
        self.inner, self.state, self.calls = Grader(workers=1), engine_state, []

    def __call__(self, responses, references, answer_format):
        self.calls.append((len(responses), self.state["generating"]))
        return self.inner(responses, references, answer_format)


def test_grading_overlaps_generation_and_gives_the_same_grades():
    model, tok = load_model_and_tokenizer("toy")
    engine = HFEngine(model, tok)
    state = {"generating": False}
    generate = engine.generate

    @functools.wraps(generate)
    def watched(*args, **kwargs):
        state["generating"] = True
        try:
            return generate(*args, **kwargs)
        finally:
            state["generating"] = False

    engine.generate = watched
    rows = load_split("test")[:6]
    tpl = TEMPLATES["qwen_math"]
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=80, stop=tpl.stop, seed=2)
    grader = RecordingGrader(state)
    batch = generate_and_grade(engine, rows, tpl, params, grader)
    assert len(set(len(g.token_ids) for g in batch.generations)) > 1  # responses stop at different steps
    assert sum(n for n, _ in grader.calls) == len(batch) == 24  # each response graded once
    assert any(during for _, during in grader.calls), grader.calls  # some while the engine still decoded
    again = Grader(workers=1)([g.text for g in batch.generations], [r["answer"] for r in batch.rows], tpl.answer_format)
    assert batch.grades == again
    assert torch.equal(batch.rewards, torch.tensor([float(g.correct and not x.truncated)
                                                    for g, x in zip(again, batch.generations)]))
    assert 0 <= batch.timing["time/grade"] and batch.timing["time/grade_busy"] > 0


def test_engines_that_ignore_on_finished_are_graded_after_and_grader_errors_surface():
    class Fixed:  # returns everything at once, as vLLM and an endpoint do
        pad_id = 0

        def generate(self, prompts, params, on_finished=None):
            return [Generation(i, [1], [2], "\\boxed{%d}" % i, "stop") for i in range(len(prompts))]

    rows = [{"problem": "a", "answer": "0"}, {"problem": "b", "answer": "7"}]
    tpl = TEMPLATES["qwen_math"]
    batch = generate_and_grade(Fixed(), rows, tpl, SamplingParams(), Grader(workers=1))
    assert [g.correct for g in batch.grades] == [True, False]

    def broken(responses, references, answer_format):
        raise RuntimeError("grader broke")

    with pytest.raises(RuntimeError, match="grader broke"):
        generate_and_grade(Fixed(), rows, tpl, SamplingParams(), broken)
