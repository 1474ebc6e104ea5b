"""The one grader: training rewards, evaluation and probing all call ``grade``/``grade_batch``.

Decision path for one (response, reference) pair:
1. extract the final answer (``extract.py``), normalise both sides (``normalize.py``);
2. equal strings -> correct;
3. the safe parser (``parse.py``): exact rational arithmetic, numeric identity testing
   for symbolic expressions, tuples/sets/intervals/matrices/equations structurally.
   Where it understands both sides, its verdict is final (fast, and right on cases
   math-verify gets wrong, e.g. ordered tuples vs open intervals);
4. otherwise math-verify's LaTeX parser (never its ``parse_expr`` path, which calls
   ``eval``), inside a killable worker process with a wall-clock timeout.

Nothing here calls ``eval``, ``sympy.sympify`` or ``parse_expr`` on model output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from drzero.grader.extract import ANSWER_FORMATS, extract_answer
from drzero.grader.normalize import normalize
from drzero.grader.parse import Text, TooComplex, parse_value, values_equal

DEFAULT_TIMEOUT_S = 5.0
MAX_PARSE_CHARS = 1000  # longer answers are only compared as normalised strings


@dataclass(frozen=True)
class Grade:
    """The verdict on one response.

    correct: the extracted answer equals (one of) the reference(s).
    formatted: a final answer could be extracted under the answer format.
    extracted: that answer (None if not formatted).
    timed_out: the comparison ran past its time limit (then ``correct`` is False).
    method: which stage decided: "none", "string", "parser", "math_verify", "timeout".
    """

    correct: bool
    formatted: bool
    extracted: str | None
    timed_out: bool = False
    method: str = "none"


def _references(reference) -> list[str]:
    if isinstance(reference, (list, tuple)):
        refs = [r for r in reference if r is not None]
    else:
        refs = [reference]
    out = []
    for r in refs:
        if isinstance(r, float) and r.is_integer():
            r = int(r)
        r = str(r).strip()
        if "\\boxed" in r or "\\fbox" in r:
            r = extract_answer(r, "boxed") or r
        out.append(r)
    return out


def _contains_text(value) -> bool:
    if isinstance(value, Text):
        return True
    for attr in ("items", "rows"):
        if hasattr(value, attr):
            return any(_contains_text(x) if not isinstance(x, tuple) else any(map(_contains_text, x)) for x in getattr(value, attr))
    if hasattr(value, "lhs"):
        return _contains_text(value.lhs) or _contains_text(value.rhs)
    return False


def compare_fast(pred: str, ref: str) -> tuple[bool | None, str]:
    """(verdict, method) from stages 2-3; verdict None means "undecided, ask math-verify"."""
    npred, nref = normalize(pred), normalize(ref)
    if npred == nref:
        return True, "string"
    if not npred or len(npred) > MAX_PARSE_CHARS or len(nref) > MAX_PARSE_CHARS:
        return False, "string"
    try:
        vpred, vref = parse_value(npred), parse_value(nref)
        if values_equal(vpred, vref):
            return True, "parser"
    except TooComplex:
        return False, "parser"
    except (RecursionError, ValueError, ZeroDivisionError, OverflowError, KeyError):
        return None, "parser"
    if not _contains_text(vpred) and not _contains_text(vref):
        return False, "parser"
    return None, "parser"


def compare_math_verify(pred: str, ref: str) -> bool:
    """math-verify on LaTeX only. Runs in a worker process (``sandbox.py``), whose main
    thread makes math-verify's own signal-based timeouts usable as a first guard."""
    from math_verify import LatexExtractionConfig, parse, verify

    in_worker = os.environ.get("DRZERO_GRADER_WORKER") == "1"
    timeout = 3 if in_worker else None
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    try:
        gold = parse(f"${normalize(ref)}$", extraction_config=config, parsing_timeout=timeout)
        answer = parse(f"${normalize(pred)}$", extraction_config=config, parsing_timeout=timeout)
        if not gold or not answer:
            return False
        return bool(verify(gold, answer, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - math-verify failing on odd input means "not equal"
        return False


def grade_inline(response: str, reference, answer_format: str = "auto") -> Grade:
    """``grade`` with every stage in this process (used inside sandbox workers)."""
    return _grade(response, reference, answer_format, fallback=lambda p, r: compare_math_verify(p, r))


def _grade(response, reference, answer_format, fallback) -> Grade:
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer_format {answer_format!r}; expected one of {ANSWER_FORMATS}")
    if not isinstance(response, str):
        response = "" if response is None else str(response)
    extracted = extract_answer(response, answer_format)
    if extracted is None:
        return Grade(False, False, None)
    undecided = []
    for ref in _references(reference):
        verdict, method = compare_fast(extracted, ref)
        if verdict:
            return Grade(True, True, extracted, method=method)
        if verdict is None:
            undecided.append(ref)
    for ref in undecided:
        result = fallback(extracted, ref)
        if result is None:
            return Grade(False, True, extracted, timed_out=True, method="timeout")
        if result:
            return Grade(True, True, extracted, method="math_verify")
    return Grade(False, True, extracted, method="math_verify" if undecided else "parser")


def _sandboxed_fallback(timeout_s: float):
    from drzero.grader.sandbox import get_pool

    def run(pred, ref):
        return get_pool(1).map("compare_math_verify", [(pred, ref)], timeout_s)[0]

    return run


def grade(response: str, reference, *, answer_format: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> Grade:
    """Grade one response against a reference (str, number, or list: any may match).

    Fast cases are decided in this process by bounded code; the rest go to a killable
    worker process with a ``timeout_s`` wall-clock limit.
    """
    if os.environ.get("DRZERO_GRADER_WORKER") == "1":
        return grade_inline(response, reference, answer_format)
    return _grade(response, reference, answer_format, _sandboxed_fallback(timeout_s))


def grade_batch(
    responses: list[str],
    references: list,
    *,
    answer_format: str = "auto",
    workers: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Grade]:
    """Grade many responses: the fast path here, undecided items in parallel across
    ``workers`` killable processes with a per-item ``timeout_s``. A timed-out item is
    incorrect with ``timed_out=True``; the pool replaces the worker and goes on."""
    if len(responses) != len(references):
        raise ValueError(f"{len(responses)} responses but {len(references)} references")
    grades: list[Grade | None] = []
    slow: list[int] = []
    for i, (resp, ref) in enumerate(zip(responses, references)):
        needs_fallback = []
        g = _grade(resp, ref, answer_format, fallback=lambda p, r: needs_fallback.append(1) or False)
        if needs_fallback and not g.correct:
            slow.append(i)
            grades.append(None)
        else:
            grades.append(g)
    if slow:
        from drzero.grader.sandbox import get_pool

        results = get_pool(workers).map(
            "grade_inline", [(responses[i], references[i], answer_format) for i in slow], timeout_s
        )
        for i, result in zip(slow, results):
            if result is None:
                extracted = extract_answer(responses[i] or "", answer_format)
                result = Grade(False, extracted is not None, extracted, timed_out=True, method="timeout")
            grades[i] = result
    return grades  # type: ignore[return-value]
