"""``Grade``: the verdict on one response, shared by every grader mode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Grade:
    """The verdict on one response.

    correct: the response's answer equals (one of) the reference(s).
    formatted: the answer format's own marker held an answer (a box for ``boxed``, a
        closed or trailing answer tag for ``answer_tag``, any marker for ``auto``; the
        paper mode uses the reference's stricter rules).
    extracted: the answer read from the response (None if none was found).
    timed_out: grading ran past its time limit (then ``correct`` is False and nothing
        was extracted).
    method: what decided: "string", "parser" or "unit" (the fast path), "math_verify",
        "paper", "timeout", or "none" (nothing to compare).
    """

    correct: bool
    formatted: bool
    extracted: str | None
    timed_out: bool = False
    method: str = "none"
