"""The single grader of drzero: ``grade`` one response, ``grade_batch`` many in parallel.

    >>> from drzero.grader import grade
    >>> grade("so the answer is \\\\boxed{\\\\frac{1}{2}}", "0.5").correct
    True

``mode`` picks the rules: ``"drzero"`` (default), ``"math_verify"`` or ``"paper"``
(``GRADER_MODES``; docs/grader.md). ``Grader`` bundles the settings (mode, worker
processes, time limit) that train, eval and probe pass around; calling it grades a batch.
"""

from dataclasses import dataclass

from drzero.grader.core import DEFAULT_TIMEOUT_S, GRADER_MODES, MIN_TIMEOUT_S, grade, grade_batch, warm_up
from drzero.grader.extract import ANSWER_FORMATS, extract_answer
from drzero.grader.verdict import Grade


@dataclass(frozen=True)
class Grader:
    """How responses are graded: ``mode`` (one of ``GRADER_MODES``), ``workers`` killable
    processes, ``timeout_s`` per item (at least ``MIN_TIMEOUT_S``)."""

    workers: int = 2
    timeout_s: float = DEFAULT_TIMEOUT_S
    mode: str = "drzero"

    def __post_init__(self):
        if self.mode not in GRADER_MODES:
            raise ValueError(f"unknown grader mode {self.mode!r}; expected one of {GRADER_MODES}")

    def __call__(self, responses: list[str], references: list, answer_format: str) -> list[Grade]:
        return grade_batch(responses, references, answer_format=answer_format, mode=self.mode,
                           workers=self.workers, timeout_s=self.timeout_s)


__all__ = [
    "ANSWER_FORMATS", "DEFAULT_TIMEOUT_S", "GRADER_MODES", "MIN_TIMEOUT_S", "Grade", "Grader", "extract_answer",
    "grade", "grade_batch", "warm_up",
]
