"""The single grader of drzero: ``grade`` one response, ``grade_batch`` many in parallel.

    >>> from drzero.grader import grade
    >>> grade("so the answer is \\\\boxed{\\\\frac{1}{2}}", "0.5").correct
    True
"""

from drzero.grader.core import DEFAULT_TIMEOUT_S, Grade, grade, grade_batch
from drzero.grader.extract import ANSWER_FORMATS, extract_answer

__all__ = ["ANSWER_FORMATS", "DEFAULT_TIMEOUT_S", "Grade", "extract_answer", "grade", "grade_batch"]
