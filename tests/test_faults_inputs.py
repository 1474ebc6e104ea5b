"""Unbounded and hostile inputs (issue 34, item 4): questions over --max-prompt-tokens
are dropped as they load, in train, eval and probe, and counted in one line; a 200 KB
question is decided without tokenizing it, let alone generating for it.
"""

import json
import time

import pytest

from drzero.cli import main as cli_main
from drzero.data import load_questions
from drzero.data.length import drop_long_prompts, load_tokenizer
from drzero.errors import DrZeroError
from drzero.templates import TEMPLATES, get_template

HUGE = "Compute the sum of the following numbers: " + "12345 + " * 25_000 + "1."  # 200 KB
LONG = "What is " + "1 + " * 700 + "1?"  # about 2,100 tokens of the toy model: over 1024


def _questions(path, long_ones):
    rows = [{"problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 7)]
    rows[2:2] = [{"problem": q, "answer": "1"} for q in long_ones]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_long_questions_are_dropped_and_counted_and_a_huge_one_costs_nothing():
    tok, tpl = load_tokenizer("toy"), get_template("qwen_math")
    rows = [{"problem": "What is 1 + 1?", "answer": "2"}, {"problem": HUGE, "answer": "1"},
            {"problem": LONG, "answer": "1"}, {"problem": "What is 2 + 2?", "answer": "4"}]
    said = []
    t = time.perf_counter()
    kept = drop_long_prompts(rows, [tpl], tok, 1024, "--dataset x", log=said.append)
    assert time.perf_counter() - t < 2.0
    assert [r["answer"] for r in kept] == ["2", "4"]
    assert len(said) == 1
    assert said[0].startswith("--dataset x: 2 of 4 questions are longer than --max-prompt-tokens 1024")
    assert drop_long_prompts(rows, [tpl], tok, 0, "x", log=said.append) == rows  # 0: no limit
    with pytest.raises(DrZeroError, match="none is left; raise --max-prompt-tokens"):
        drop_long_prompts(rows[1:3], [tpl], tok, 1024, "--dataset x")


def test_every_template_counts_in_probe():
    """A question short under one template and long under another is over the limit."""
    tok = load_tokenizer("toy")
    short, wordy = get_template("none"), get_template("qwen_math")
    n = len(tok(wordy.render("1"), add_special_tokens=False)["input_ids"])
    rows = [{"problem": "1", "answer": "1"}]
    assert drop_long_prompts(rows, [short], tok, n - 1, "q", log=lambda _: None) == rows
    with pytest.raises(DrZeroError):
        drop_long_prompts(rows, [short, wordy], tok, n - 1, "q")


@pytest.mark.slow
def test_train_eval_and_probe_drop_over_long_questions(tmp_path, capsys):
    data = _questions(tmp_path / "q.jsonl", [HUGE, LONG])
    code = cli_main(["train", "--dataset", str(data), "--eval-datasets", str(data), "--eval-limit", "8",
                     "--max-steps", "1", "--prompts-per-step", "4", "--group-size", "2", "--max-new-tokens", "8",
                     "--no-progress", "--grader-workers", "1", "--output-dir", str(tmp_path / "run")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"--dataset {data}: 2 of 8 questions are longer than --max-prompt-tokens 1024" in out.out
    assert f"--eval-datasets {data}: 2 of 8 questions" in out.out

    code = cli_main(["eval", "--model", "toy", "--benchmarks", str(data), "--max-new-tokens", "8", "--device", "cpu",
                     "--grader-workers", "1", "--max-prompt-tokens", "1024", "--output", str(tmp_path / "eval")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "2 of 8 questions are longer than --max-prompt-tokens 1024" in " ".join(out.out.split())  # rich wraps
    samples = (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 6

    code = cli_main(["probe", "--model", "toy", "--questions", str(data), "--templates", "qwen_math", "--temperatures",
                     "1.0", "--n", "2", "--sample-questions", "2", "--max-new-tokens", "8", "--device", "cpu",
                     "--grader-workers", "1", "--max-prompt-tokens", "512", "--output", str(tmp_path / "probe")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"--questions {data}: 2 of 8 questions are longer than --max-prompt-tokens 512" in out.out


def test_eval_default_keeps_every_bundled_benchmark_question():
    """The paper's denominators stay whole: eval's default limit drops none of the five
    benchmarks' questions under its template, even with the toy models' near character-level
    tokenizer (the longest, an OlympiadBench question, is about 3,100 tokens there)."""
    from transformers import AutoTokenizer

    from drzero.config import EvalConfig
    from drzero.models import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path("toy"))
    limit = EvalConfig().max_prompt_tokens
    for name in ("aime24", "amc", "math500", "minerva", "olympiadbench"):
        rows = load_questions(name)
        kept = drop_long_prompts(rows, [TEMPLATES["qwen_math"]], tok, limit, name)
        assert len(kept) == len(rows), name
