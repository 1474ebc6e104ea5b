"""The single grader of drzero: ``grade`` one response, ``grade_batch`` many in parallel.

    >>> from drzero.grader import grade
    >>> grade("so the answer is \\\\boxed{\\\\frac{1}{2}}", "0.5").correct
    True

``Grader`` bundles the settings (rules, worker processes, time limit) that train, eval and
probe pass around; calling it grades a batch.
"""

from dataclasses import dataclass

from drzero.grader.core import DEFAULT_TIMEOUT_S, Grade, grade, grade_batch
from drzero.grader.extract import ANSWER_FORMATS, extract_answer


@dataclass(frozen=True)
class Grader:
    """How responses are graded: ``workers`` killable processes, ``timeout_s`` per item."""

    workers: int = 2
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __call__(self, responses: list[str], references: list, answer_format: str) -> list[Grade]:
        return grade_batch(responses, references, answer_format=answer_format, workers=self.workers,
                           timeout_s=self.timeout_s)


__all__ = ["ANSWER_FORMATS", "DEFAULT_TIMEOUT_S", "Grade", "Grader", "extract_answer", "grade", "grade_batch"]
