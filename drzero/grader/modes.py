"""The three grader modes, each grading one response completely in the current process.

``JOBS`` maps a mode name to its function; sandbox workers run exactly these (the only
entry points a worker accepts), under the caller's wall-clock limit.

- ``drzero`` (default): the union. Our extraction (``extract.find_answers``) and fast,
  bounded comparison (``compare.py``) decide when they say "equal", and when they say
  "not equal" with certainty (numbers against numbers, different units). Otherwise
  math-verify judges the extracted answer(s) and the whole response with its own
  extraction; either saying "equal" makes the response correct.
- ``math_verify``: math-verify alone, called as its documentation shows
  (``verify(parse(gold), parse(response))``, gold in ``$...$``), with our safe
  plain-expression reader in place of its ``parse_expr`` (``mv.py``).
- ``paper``: the paper's reference grader rules (``paper.py``).
"""

from __future__ import annotations

import time

from drzero.grader.compare import compare_fast, reference_answers, reference_strings
from drzero.grader.extract import Answers, find_answers, is_unfinished
from drzero.grader.paper import grade_paper
from drzero.grader.verdict import Grade

TAIL_CHARS = 400  # how much of a response without answer markers math-verify reads


def _math_verify_any(answers: Answers, refs: list[str], budget_s: float) -> bool:
    """math-verify on each candidate answer and on the whole response, against each
    reference; True if any pair verifies. Each math-verify call has its own 1 s alarm, and
    no new call starts once ``budget_s`` is spent, so a slow case ends as "not equal"
    well inside the item's limit instead of getting its worker killed."""
    from drzero.grader import mv  # sympy + math-verify: only ever imported in workers

    deadline = time.monotonic() + budget_s
    golds = [g for g in (mv.parse(mv.gold_text(r), parsing_timeout=1) for r in refs) if g]
    if not golds:
        return False
    # math-verify reads the whole response when we found an answer marker; otherwise only
    # its closing part, where an answer a reader would take is stated
    scope = answers.text if answers.scope is None else answers.scope
    whole = scope if answers.reliable or len(scope) <= TAIL_CHARS else scope[-TAIL_CHARS:]
    texts = [mv.gold_text(c) for c in answers.candidates[:3]] + [whole]
    for text in texts:
        if time.monotonic() > deadline:
            return False
        pred = mv.parse(text, parsing_timeout=1)
        if pred and any(time.monotonic() < deadline and mv.verify(g, pred, timeout_seconds=1) for g in golds):
            return True
    return False


def fast_grade(response: str, reference, answer_format: str) -> tuple[Grade | None, Answers, list[str]]:
    """The ``drzero`` mode's fast path: (grade, answers, references). ``grade`` is None
    when the fast path is not certain; the caller then asks math-verify."""
    answers = find_answers(response if isinstance(response, str) else str(response or ""), answer_format)
    refs = reference_answers(reference)
    extracted = answers.candidates[0] if answers.candidates else None
    certain = answers.reliable and bool(answers.candidates)
    if extracted is not None and extracted in reference_strings(reference):  # the reference itself, before reducing it
        return Grade(True, answers.formatted, extracted, method="string"), answers, refs
    for i, candidate in enumerate(answers.candidates):
        for ref in refs:
            verdict = compare_fast(candidate, ref)
            if verdict.equal:
                return Grade(True, answers.formatted, extracted, method=verdict.method), answers, refs
            if i == 0:  # the most trusted reading decides whether "not equal" is final
                certain = certain and verdict.certain
    if certain or not refs:
        return Grade(False, answers.formatted, extracted, method="parser" if refs else "none"), answers, refs
    return None, answers, refs


def grade_drzero(response: str, reference, answer_format: str, limit_s: float = 5.0) -> Grade:
    grade, answers, refs = fast_grade(response, reference, answer_format)
    if grade is not None:
        return grade
    if not answers.candidates and (is_unfinished(answers.text) or answers.scope == ""):
        return Grade(False, False, None, method="none")  # cut off, or only set a task, before answering
    extracted = answers.candidates[0] if answers.candidates else None
    correct = _math_verify_any(answers, refs, budget_s=0.6 * limit_s)
    return Grade(correct, answers.formatted, extracted, method="math_verify")


def grade_math_verify(response: str, reference, answer_format: str, limit_s: float = 5.0) -> Grade:
    """math-verify alone; ``answer_format`` is not used (math-verify finds the answer
    anywhere); ``formatted`` means it found something to parse. Its own timeouts are its
    defaults (5 s per call), or the item's limit if that is shorter."""
    from drzero.grader import mv

    parsing_timeout = max(1, min(5, int(limit_s)))
    correct, parsed = mv.math_verify_equal(response if isinstance(response, str) else str(response or ""), reference, parsing_timeout)
    extracted = str(parsed[-1]) if parsed else None
    return Grade(correct, bool(parsed), extracted, method="math_verify")


def grade_paper_mode(response: str, reference, answer_format: str, limit_s: float = 5.0) -> Grade:
    """The paper's rules; math-verify calls get the reference's 1 s limits."""
    return grade_paper(response if isinstance(response, str) else str(response or ""), reference, answer_format, 1)


# Every job takes (response, reference, answer_format, limit_s) and returns a Grade.
JOBS = {
    "drzero": grade_drzero,
    "math_verify": grade_math_verify,
    "paper": grade_paper_mode,
}
