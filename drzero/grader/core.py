"""The one grader: training rewards, evaluation and probing all call ``grade``/``grade_batch``.

Every grade - extraction included - runs in a pre-warmed, killable worker process
(``sandbox.py``) under a wall-clock limit of ``timeout_s`` per item (at least
``MIN_TIMEOUT_S``), counted from the moment a warm worker takes the item; worker start-up
is never charged to an item. A timed-out item is incorrect with ``timed_out=True``.

Modes (``mode=``, see ``modes.py`` and docs/grader.md):
- ``"drzero"`` (default): our extraction and safe parser, with math-verify as the second
  opinion whenever our "not equal" is not certain;
- ``"math_verify"``: math-verify alone, as its documentation calls it;
- ``"paper"``: the paper's reference grader rules.

Nothing here or in the workers calls ``eval``, ``sympy.sympify`` or ``parse_expr`` on
model output.
"""

from __future__ import annotations

from drzero.grader.extract import ANSWER_FORMATS
from drzero.grader.sandbox import get_pool
from drzero.grader.verdict import Grade

GRADER_MODES = ("drzero", "math_verify", "paper")
DEFAULT_TIMEOUT_S = 5.0
MIN_TIMEOUT_S = 1.0  # the floor on a per-item limit: math-verify's own limits are whole seconds


def _check(answer_format: str, mode: str, timeout_s: float) -> float:
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer_format {answer_format!r}; expected one of {ANSWER_FORMATS}")
    if mode not in GRADER_MODES:
        raise ValueError(f"unknown grader mode {mode!r}; expected one of {GRADER_MODES}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    return max(float(timeout_s), MIN_TIMEOUT_S)


def grade_batch(
    responses: list[str],
    references: list,
    *,
    answer_format: str = "auto",
    mode: str = "drzero",
    workers: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Grade]:
    """Grade many responses in parallel across ``workers`` killable processes, each item
    within ``timeout_s`` (floor ``MIN_TIMEOUT_S``). ``references[i]`` is a string, a
    number, or a list (any element may match)."""
    if len(responses) != len(references):
        raise ValueError(f"{len(responses)} responses but {len(references)} references")
    limit = _check(answer_format, mode, timeout_s)
    args = [
        (r if isinstance(r, str) else ("" if r is None else str(r)), ref, answer_format, limit)
        for r, ref in zip(responses, references)
    ]
    results = get_pool(workers).map(mode, args, limit) if args else []
    return [g if g is not None else Grade(False, False, None, timed_out=True, method="timeout") for g in results]


def grade(
    response: str,
    reference,
    *,
    answer_format: str = "auto",
    mode: str = "drzero",
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Grade:
    """Grade one response against a reference (str, number, or list: any may match),
    in a killable worker within ``timeout_s``."""
    return grade_batch([response], [reference], answer_format=answer_format, mode=mode, workers=1, timeout_s=timeout_s)[0]


def warm_up(workers: int = 2) -> None:
    """Start the ``workers`` grader processes now and wait until they are ready, so the
    first batch does not wait for them (grading never charges start-up to an item)."""
    get_pool(workers).warm()
