"""The ``drzero`` mode's fast path: bounded, in-process comparison of answer strings.

``compare_fast(pred, ref)`` normalises both sides (``normalize.py``), then compares equal
strings, then parsed values (``parse.py``). It answers "equal", "not equal and certain"
(both sides are plain numbers; or structures of the same numbers that differ only in
order, repetition or brackets; or their units differ) or "not equal, not certain"
(structures of other numbers, variables, words or LaTeX our parser does not read): only
the last goes on to math-verify (issue 33's union rule).

``reference_answers`` reads references the way the grader needs them: a reference that
is a whole solution is reduced to its boxed answer(s) or its closing phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drzero.grader.extract import extract_box_group, extract_boxed, extract_closing, extract_phrase, find_boxes, prose_words
from drzero.grader.normalize import Normalized, normalize_answer
from drzero.grader.parse import TooComplex, is_plain_number, parse_value, same_numbers_reordered, values_equal

MAX_PARSE_CHARS = 1000  # longer answers are only compared as normalised strings
_CALL_RE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z](?:_\{?\w+\}?)?\s*\(")


@dataclass(frozen=True)
class Verdict:
    """``equal``; and for a "not equal", whether it is ``certain`` (final)."""

    equal: bool
    certain: bool
    method: str = "parser"


def compare_fast(pred: str, ref: str) -> Verdict:
    """Compare one answer string with one reference string (see module docstring)."""
    if pred.strip() and pred.strip() == ref.strip():
        return Verdict(True, True, "string")
    npred, nref = normalize_answer(pred), normalize_answer(ref)
    if npred.unit and nref.unit and npred.unit != nref.unit:
        return Verdict(False, True, "unit")  # 15 m is not 15 cm; no conversions
    certain = True
    for p in _readings_against(npred, nref):
        for r in _readings_against(nref, npred):
            if p and p == r:
                return Verdict(True, True, "string")
            if not p or not r or len(p) > MAX_PARSE_CHARS or len(r) > MAX_PARSE_CHARS:
                certain = False
                continue
            try:
                vp, vr = parse_value(p), parse_value(r)
                if values_equal(vp, vr):
                    # f(x), I(0): equal only if also equal with those read as function calls
                    if not (_CALL_RE.search(p) or _CALL_RE.search(r)) or values_equal(
                        parse_value(p, calls=True), parse_value(r, calls=True)
                    ):
                        return Verdict(True, True)
                    certain = False
                    continue
            except TooComplex:
                continue  # a power tower or 10,000 nested brackets: not equal, and final
            except (RecursionError, ValueError, ZeroDivisionError, OverflowError, KeyError):
                certain = False
                continue
            if not (is_plain_number(vp) and is_plain_number(vr)) and not same_numbers_reordered(vp, vr):
                certain = False
    return Verdict(False, certain)


def _readings_against(a: Normalized, b: Normalized) -> tuple[str, ...]:
    """The readings of ``a`` to compare with ``b``: a lone ``d,dd`` is read as a decimal
    only against a side without commas (``1000,99`` vs ``1000.99``); against a list or
    another ``d,dd`` it is a list (``1,30`` is not ``1,3``)."""
    if not a.alternatives:
        return (a.text,)
    if b.alternatives or "," in b.text:
        return a.alternatives
    return a.readings


def reference_strings(reference) -> list[str]:
    """A reference (str, number, or list where any may match) as stripped strings; a
    float that is a whole number is written as an integer (AMC's ``142.0`` -> ``142``)."""
    refs = reference if isinstance(reference, (list, tuple)) else [reference]
    out = []
    for r in refs:
        if r is None:
            continue
        if isinstance(r, float) and r.is_integer():
            r = int(r)
        out.append(str(r).strip())
    return out


def reference_answers(reference) -> list[str]:
    """The answer strings a reference stands for (any may match): a list's elements; a
    number's text; a reference holding boxes -> all its boxes (``\\boxed{2}`` or
    ``\\boxed{3}`` -> ``2, 3``); a solution without a box -> its closing answer phrase."""
    out = []
    for r in reference_strings(reference):
        boxes = find_boxes(r)
        if len(boxes) > 1:
            group = extract_box_group(r)
            r = ", ".join(group) if group else ", ".join(b.content for b in boxes)
        elif boxes:
            r = extract_boxed(r) or r
        elif prose_words(r) >= 4:
            r = extract_phrase(r) or extract_closing(r) or r
        out.append(r)
    return out
