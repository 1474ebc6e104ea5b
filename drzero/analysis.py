"""Pure response analyses shared by eval, probe, train logs and the toy model card:
answering detection, self-reflection keywords (paper Sec. 2.3), the unbiased pass@k, and
the bias monitor that watches a run's response lengths (paper Sec. 3.1)."""

from __future__ import annotations

import math
import re
import statistics
from math import comb

from drzero.grader.extract import cut_continuation, extract_answer_tag, extract_boxed, extract_phrase

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
    answer, an answer tag or an "answer is" phrase) before it stops answering (a new chat
    turn such as ``User:`` on a new line: the grader's ``cut_continuation``) instead of
    only continuing the text. The paper's judge counts "text that merely continues the
    prompt (for example by writing more questions)" as not answering (drzero.judge); this
    rule catches that only when the new questions open a new turn (a model that writes
    "Compute 3 + 4. The answer is odd." on the next line passes it). The paper's answering
    rate is judged by an LLM (``drzero probe --judge-endpoint``); this rule is its cheap
    stand-in."""
    text = cut_continuation(text)
    return any(fn(text) is not None for fn in (extract_boxed, extract_answer_tag, extract_phrase))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean_or_nan(values) -> float:
    """The mean of ``values``, NaN when there are none."""
    values = list(values)
    return statistics.fmean(values) if values else float("nan")


class BiasMonitor:
    """Warns when incorrect responses grow longer while correct ones do not (the length
    bias of GRPO, paper Sec. 3.1): compares the mean of the first and last windows, and
    warns once that comparison has held for ``patience`` iterations in a row. Both
    objectives can lengthen wrong responses for a few iterations early in training (toy-v2:
    Dr. GRPO seed 2, 114 -> 146 tokens at iteration 11, gone by 20); the bias persists.
    ``patience`` 5 warns on all nine recorded toy-v2 GRPO runs and on none of the nine
    Dr. GRPO ones (tests/test_probe_report.py; with 1, two Dr. GRPO runs warned once)."""

    def __init__(self, window: int = 5, growth: float = 1.25, patience: int = 5):
        self.window, self.growth, self.patience = window, growth, patience
        self.correct: list[float] = []
        self.incorrect: list[float] = []
        self.warned_at = -1
        self.streak = 0

    def state_dict(self) -> dict:
        return {"correct": list(self.correct), "incorrect": list(self.incorrect), "warned_at": self.warned_at,
                "streak": self.streak}

    def load_state_dict(self, state: dict) -> None:
        self.correct, self.incorrect = list(state["correct"]), list(state["incorrect"])
        self.warned_at = state["warned_at"]
        self.streak = state.get("streak", 0)  # checkpoints from before patience

    def update(self, step: int, len_correct: float, len_incorrect: float) -> str | None:
        if not math.isnan(len_correct):
            self.correct.append(len_correct)
        if not math.isnan(len_incorrect):
            self.incorrect.append(len_incorrect)
        w = self.window
        if len(self.incorrect) < 2 * w or len(self.correct) < 2 * w:
            return None
        inc0, inc1 = statistics.fmean(self.incorrect[:w]), statistics.fmean(self.incorrect[-w:])
        cor0, cor1 = statistics.fmean(self.correct[:w]), statistics.fmean(self.correct[-w:])
        biased = inc1 > self.growth * inc0 and cor1 < inc1 / inc0 * cor0 / self.growth ** 0.5
        self.streak = self.streak + 1 if biased else 0
        if self.streak >= self.patience and step - self.warned_at >= 2 * w:
            self.warned_at = step
            return (f"bias monitor: incorrect responses grew {inc0:.0f} -> {inc1:.0f} tokens while correct ones went "
                    f"{cor0:.0f} -> {cor1:.0f}; this is the length bias of per-response normalisation "
                    f"(GRPO, paper Sec. 3.1) -- consider --algo dr_grpo")
        return None
