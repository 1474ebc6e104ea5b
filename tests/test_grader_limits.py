"""Grader time limits (issue 17): extraction is linear on any input, the per-item limit
covers the whole grade (extraction included), and worker start-up is never charged to an
item (pre-warmed workers, a floor of ``MIN_TIMEOUT_S``)."""

import time

import pytest

from drzero.grader import MIN_TIMEOUT_S, grade, grade_batch
from drzero.grader import extract as extract_module
from drzero.grader.extract import extract_boxed, find_answers
from drzero.grader.sandbox import _close_pools


def _seconds(fn, *args, repeats: int = 3):
    """The best of ``repeats`` timings: a shared machine only ever adds time."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def test_unclosed_boxes_extract_in_linear_time():
    # 10,000 unclosed boxes took 19 s with the old per-box brace scan
    small, large = "\\boxed{" * 10_000, "\\boxed{" * 80_000
    assert _seconds(extract_boxed, small) < 0.5
    assert _seconds(find_answers, small, "boxed") < 0.5
    # 8x the input, well under 8^2 = 64x the time (allowing noise on a shared machine)
    ratio = _seconds(find_answers, large, "boxed") / max(_seconds(find_answers, small, "boxed"), 1e-3)
    assert ratio < 24, ratio


def test_unclosed_boxes_grade_within_the_limit():
    t = time.monotonic()
    g = grade("\\boxed{" * 10_000 + " the answer is \\boxed{5}", "5", timeout_s=2)
    assert time.monotonic() - t < 2.5 and not g.timed_out and g.correct


def test_the_parent_does_no_extraction(monkeypatch):
    """Extraction runs in the worker, under the item's limit: the calling process never
    extracts (these would raise if it did)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("extraction ran outside the worker")

    for name in ("find_answers", "extract_answer", "extract_boxed", "find_boxes"):
        monkeypatch.setattr(extract_module, name, forbidden)
    assert grade_batch(["so \\boxed{7}"], ["7"], workers=1)[0].correct


@pytest.mark.slow
def test_limit_covers_a_slow_extraction():
    """8 MB of braces takes the worker seconds to read; the item still comes back at its
    limit, timed out, instead of after the extraction finished."""
    huge = ("\\boxed{" + "{" * 20 + "x$ ") * (8 * 1024 * 1024 // 30)
    grade_batch(["warm"], ["1"], workers=1)
    t = time.monotonic()
    g = grade(huge, "5", timeout_s=1.0)
    assert g.timed_out and not g.correct
    assert time.monotonic() - t < 2.5


def test_timeout_floor():
    assert MIN_TIMEOUT_S == 1.0
    assert grade("\\boxed{\\log_2 8}", "3", timeout_s=0.01).correct  # raised to the floor
    with pytest.raises(ValueError, match="timeout_s"):
        grade("\\boxed{1}", "1", timeout_s=0)


@pytest.mark.parametrize("attempt", range(3))
def test_worker_startup_is_not_charged_to_the_item(attempt):
    """A fresh pool each time: start-up (about a second of imports and warm-up) happens
    before the item's limit starts, so correct answers - one our parser reads, one only
    math-verify reads - are graded correct at a 0.3 s limit (floored to 1 s) every time."""
    _close_pools()
    t = time.monotonic()
    grades = grade_batch(["\\boxed{\\log_2 8}", "\\boxed{\\lfloor 7.5 \\rfloor}"], ["3", "7"], workers=2, timeout_s=0.3)
    assert [(g.correct, g.timed_out, g.method) for g in grades] == [(True, False, "parser"), (True, False, "math_verify")], (
        grades, time.monotonic() - t)
