"""Pure response analyses shared by eval, probe, train logs and the toy model card:
answering detection, self-reflection keywords (paper Sec. 2.3), the unbiased pass@k."""

from __future__ import annotations

import re
from math import comb

from drzero.grader.extract import extract_answer_tag, extract_boxed, extract_phrase

# The paper's keyword pool for "aha moment" / self-reflection detection (Sec. 2.3).
REFLECTION_KEYWORDS = (
    "recheck", "rethink", "reassess", "reevaluate", "re-evaluate", "reevaluation", "re-examine", "reexamine",
    "reconsider", "reanalyze", "double-check", "check again", "think again", "verify again", "go over the steps",
)
_REFLECTION_RE = re.compile("|".join(re.escape(k) for k in REFLECTION_KEYWORDS), re.IGNORECASE)


def reflection_keywords(text: str) -> list[str]:
    """The keywords of the pool found in ``text`` (lower-cased, in order of appearance)."""
    return [m.group(0).lower() for m in _REFLECTION_RE.finditer(text)]


def is_answering(text: str) -> bool:
    """Rule-based answering detector: the response commits to a final answer (a boxed
    answer, an answer tag or an "answer is" phrase) instead of only continuing the text."""
    return any(fn(text) is not None for fn in (extract_boxed, extract_answer_tag, extract_phrase))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)
