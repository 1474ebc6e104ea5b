"""The grader sees untrusted text: it must never execute it, hang, crash or blow memory."""

import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drzero.grader import GRADER_MODES, grade, grade_batch

CORPUS = Path(__file__).parent / "data" / "grader" / "corpus.jsonl"
LEXED_NUMBER = re.compile(r"Integer \(\d+ \)|Float \('[\d.]+' \)")

# grade()'s own limit is 5 s; the bound is what catches a hang or an exponential blow-up (minutes,
# or forever), with room for a busy shared machine, where 5 s of worker time took up to 23 s of wall
# time (load ~20 on 2 cores)
BOUND_S = 30.0

MATHY = st.lists(
    st.sampled_from(list("0123456789+-*/^(){}[],.=\\$ xyeπ!%") + ["\\frac", "\\sqrt", "\\boxed{", "\\pi", "\\left(", "}"]),
    max_size=40,
).map("".join)


def _timed(fn, *args, **kwargs):
    t = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - t


def _payloads(marker) -> list[str]:
    """Each of these creates ``marker`` if any grading path evaluates it with Python
    ``eval`` (directly, or through ``sympy.sympify`` / ``parse_expr``, which call it)."""
    touch = f"__import__('os').system('touch {marker}')"
    write = f"open('{marker}', 'w').write('x')"
    return [
        f"\\boxed{{{touch}}}",
        f"The answer is {touch}",
        f"\\boxed{{{write}}}",
        f"<think>hmm</think> <answer>{write}</answer>",
        f"Final Answer: The final answer is ${touch}$. I hope it is correct.",
        touch,
        write,
    ]


def test_payloads_are_real(tmp_path):
    """The payloads do write the marker when evaluated: a test that they never do can fail."""
    marker = tmp_path / "pwned"
    for payload in _payloads(marker)[-2:]:
        eval(payload)  # noqa: S307 - on purpose: proves the payload has an effect
        assert marker.exists()
        marker.unlink()


def test_code_injection_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = _payloads(marker)
    for mode in GRADER_MODES:
        for p in payloads:
            assert not grade(p, "1", mode=mode).correct
            assert not grade("\\boxed{1}", p, mode=mode).correct  # references too
        for fmt in ("auto", "boxed", "answer_tag"):
            grade_batch(payloads, ["1"] * len(payloads), answer_format=fmt, mode=mode, workers=2)
    assert not marker.exists()


@pytest.mark.slow
def test_no_model_text_reaches_eval(monkeypatch):
    """sympy's ``eval_expr`` (what ``parse_expr`` and ``sympify`` run) only ever sees a bare
    number that latex2sympy's lexer already read (``Integer (12 )``): no model text, in
    any mode, on the corpus and the payloads. Runs the modes in this process to watch."""
    import sympy.parsing.sympy_parser as sympy_parser

    from drzero.grader import mv  # noqa: F401 - import sympy and math-verify before spying
    from drzero.grader.modes import JOBS

    import sympy.physics.units  # noqa: F401 - simplify() imports it lazily; its constants run sympify
    seen = []
    real = sympy_parser.eval_expr

    def spy(code, local_dict, global_dict):
        seen.append(code if isinstance(code, str) else f"<compiled {code!r}>")  # parse_expr(evaluate=False)
        return real(code, local_dict, global_dict)

    monkeypatch.setattr(sympy_parser, "eval_expr", spy)
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()][::3]
    cases = [(r["response"], r["reference"], r["answer_format"]) for r in rows]
    cases += [(p, "1", fmt) for p in _payloads("/nonexistent/x") for fmt in ("auto", "boxed")]
    cases += [("The answer is 1/2 + 3*4", "12.5", "auto"), ("answer: 2^10", "1024", "auto")]  # plain expressions
    for job in JOBS.values():
        for response, reference, fmt in cases:
            job(response, reference, fmt)
    offenders = [code for code in seen if not LEXED_NUMBER.fullmatch(code)]
    assert seen and not offenders, offenders[:5]


def test_power_tower_returns_quickly():
    for payload in ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{9**9**9**9}", "\\boxed{10^{10^{10}}}", "\\boxed{(10^{100})!}", "\\boxed{2^{2^{2^{2^{2^{2}}}}}}"]:
        g, dt = _timed(grade, payload, "81")
        assert not g.correct and dt < BOUND_S, (payload, dt)


@pytest.mark.slow
def test_huge_and_deep_inputs_return_quickly():
    cases = [
        "x" * 1_000_000 + "\\boxed{5}",
        "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
        "\\boxed{" + "(" * 10_000 + "1" + ")" * 10_000 + "}",
        "{" * 10_000,
        "\\boxed{" * 5000,
        "$" * 100_000,
        "the answer is " + "1+" * 100_000 + "1",
        "\\frac" * 50_000,
        "Compute 1. " * 100_000,  # 100,000 task sentences to drop (extract.drop_trailing_tasks)
        "Compute " + "1 + " * 200_000 + "1",
        "So $x = 42$.\nCompute " + "\\( x " * 40_000 + ".",  # unclosed math in a would-be task sentence
    ]
    for c in cases:
        g, dt = _timed(grade, c, "5")
        assert dt < BOUND_S, (c[:40], dt)
        assert not g.timed_out, c[:40]  # decided inside the item's limit, not cut off by it
    g = grade("x" * 1_000_000 + "\\boxed{5}", "5")
    assert g.correct


def test_batch_timeout_is_reported_and_pool_recovers():
    # latex2sympy builds 9^999999999 in C, where no signal can stop it: only the kill does
    hard = "\\boxed{\\gcd(9^{999999999}, 6)}"
    t = time.monotonic()
    grades = grade_batch([hard, "\\boxed{2}"], ["3", "2"], workers=1, timeout_s=1.0)
    assert time.monotonic() - t < BOUND_S
    assert grades[0].correct is False and grades[0].timed_out
    assert grades[1].correct
    again = grade_batch(["\\boxed{\\frac{1}{2}}"], ["0.5"], workers=1)
    assert again[0].correct


def test_grade_batch_matches_grade():
    responses = ["\\boxed{1/2}", "\\boxed{(1,2)}", "<answer>3</answer>", "nothing", "\\boxed{x^2-1}"]
    references = ["0.5", "(2,1)", "3", "1", "(x-1)(x+1)"]
    batch = grade_batch(responses, references, workers=2)
    single = [grade(r, ref) for r, ref in zip(responses, references)]
    assert [g.correct for g in batch] == [g.correct for g in single] == [True, False, True, False, True]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.text(max_size=40))
def test_grade_never_raises_on_arbitrary_text(response, reference):
    g, dt = _timed(grade, response, reference)
    assert isinstance(g.correct, bool) and dt < BOUND_S


@settings(max_examples=300, deadline=None)
@given(MATHY, MATHY)
def test_grade_never_raises_on_math_like_text(a, b):
    g, dt = _timed(grade, "\\boxed{" + a + "}", b)
    assert isinstance(g.correct, bool) and dt < BOUND_S
    if g.extracted is not None and g.extracted == a.strip():  # an answer always equals itself
        assert grade("\\boxed{" + a + "}", a).correct
