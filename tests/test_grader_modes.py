"""Grader modes: the API (``mode=``, ``GRADER_MODES``, ``Grader``) and the paper mode's
rules, table-driven. The paper rows are what the paper's reference grader
(sail-sg/understand-r1-zero ``math_grader.py``) does with each response, read off its
rules: R1 answers only from a closed ``<answer>`` after exactly ``</think> <answer>``;
the last ``\\boxed{`` with braces counted; ``\\fbox``, ``\\boxed 5`` and unclosed boxes
unformatted."""

import pytest

from drzero.grader import GRADER_MODES, Grader, grade, grade_batch

THINK = "<think>2 + 2 = 4</think>"
PAPER = [  # (response, reference, answer_format, formatted, correct)
    (f"{THINK} <answer>4</answer>", "4", "answer_tag", True, True),
    (f"{THINK} <answer> 4 </answer>", "4", "answer_tag", True, True),
    (f"{THINK}\n<answer>4</answer>", "4", "answer_tag", False, False),  # a newline, not one space
    (f"{THINK}<answer>4</answer>", "4", "answer_tag", False, False),
    (f"{THINK} <answer>4", "4", "answer_tag", False, False),  # not closed
    (f"{THINK} <answer>\\boxed{{4}}</answer>", "4", "answer_tag", True, True),
    (f"{THINK} <answer>\\boxed{{4</answer>", "4", "answer_tag", True, False),  # unreadable box: formatted, wrong
    (f"{THINK} <answer>5</answer>", "4", "answer_tag", True, False),
    ("so \\boxed{4}.", "4", "boxed", True, True),
    ("\\boxed{3} then \\boxed{4}", "4", "boxed", True, True),
    ("\\boxed{3} then \\boxed{4}", "3", "boxed", True, False),  # the last box only
    ("\\fbox{4}", "4", "boxed", False, False),
    ("\\boxed 4", "4", "boxed", False, False),
    ("\\boxed {4}", "4", "boxed", False, False),
    ("the answer is \\boxed{4", "4", "boxed", False, False),
    ("the answer is 4", "4", "boxed", False, False),
    ("\\boxed{\\frac{1}{2}}", "0.5", "boxed", True, True),
    ("\\boxed{0.5}", "\\frac12", "boxed", True, True),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}", "boxed", True, True),
    ("\\boxed{(1,2)}", "(2,1)", "boxed", True, False),
    ("\\boxed{x = 5}", "5", "boxed", True, True),  # "k = " prefixes are dropped
    ("\\boxed{5\\text{ cm}}", "5", "boxed", True, True),
    ("\\boxed{10\\%}", "10", "boxed", True, True),
    ("\\boxed{4}", "So the answer is $\\boxed{4}$.", "boxed", True, True),  # boxed reference: its box
    ("\\boxed{142}", 142.0, "boxed", True, True),
    ("\\boxed{3}", ["1", "3"], "boxed", True, True),
    ("\\boxed{1\\,000}", "1000", "boxed", True, True),
]


@pytest.mark.parametrize("response,reference,fmt,formatted,correct", PAPER)
def test_paper_mode_rules(response, reference, fmt, formatted, correct):
    g = grade(response, reference, answer_format=fmt, mode="paper")
    assert (g.formatted, g.correct) == (formatted, correct), g


def test_paper_mode_batch_matches_single():
    rows = PAPER[:12]
    batch = grade_batch([r[0] for r in rows], [r[1] for r in rows], answer_format="answer_tag", mode="paper", workers=2)
    single = [grade(r[0], r[1], answer_format="answer_tag", mode="paper") for r in rows]
    assert batch == single


def test_drzero_reads_what_the_paper_mode_refuses():
    """The same responses, drzero mode: a newline after </think>, an unclosed tag and an
    unboxed answer are still read (``formatted`` says whether the format was followed)."""
    assert grade(f"{THINK}\n<answer>4</answer>", "4", answer_format="answer_tag").correct
    assert grade(f"{THINK} <answer>4", "4", answer_format="answer_tag").correct
    g = grade("the answer is 4", "4", answer_format="boxed")
    assert (g.formatted, g.correct) == (False, True)
    assert not grade("the answer is 5", "4", answer_format="boxed").correct


def test_modes_api():
    for mode in GRADER_MODES:
        assert grade("so \\boxed{\\frac12}", "0.5", mode=mode).correct
        assert not grade("so \\boxed{\\frac13}", "0.5", mode=mode).correct
    with pytest.raises(ValueError, match="grader mode"):
        grade("\\boxed{1}", "1", mode="sympy")
    with pytest.raises(ValueError, match="grader mode"):
        Grader(mode="strict")


def test_grader_settings_object():
    grader = Grader(workers=2, timeout_s=3.0, mode="paper")
    assert (grader.workers, grader.timeout_s, grader.mode) == (2, 3.0, "paper")
    assert Grader().mode == "drzero"
    grades = grader([f"{THINK}\n<answer>4</answer>", f"{THINK} <answer>4</answer>"], ["4", "4"], "answer_tag")
    assert [g.correct for g in grades] == [False, True]
    grades = Grader(mode="drzero")([f"{THINK}\n<answer>4</answer>"], ["4"], "answer_tag")
    assert grades[0].correct
