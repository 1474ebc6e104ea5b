"""The toy task: synthetic arithmetic questions with worked solutions, and the
pretraining corpus that makes a tiny model behave like the paper's base models.

Questions add and subtract one- and two-digit numbers and say whether the answer is
odd or even (``Compute 47 - 19 + 6. The answer is even.``). The level (1-4) is the
number of arithmetic sub-steps: a two-digit operand is split into tens and units
(``47 - 19 = 47 - 10 - 9.``) and each sub-step is one sentence (``47 - 10 = 37.``).
Every number stays below 100 and every sentence needs only the few before it, so a
2M-parameter model learns the task in minutes of CPU pretraining. What makes it often
wrong is that the corpus slips at a fixed rate per sub-step (later steps use the wrong
value), which it imitates when sampling: the more sub-steps, the more often it is wrong.

The parity in the question is what lets the model *see* that it went wrong. A solution
ends with a check of its result against it (``Check: 28 is even. Yes.`` or ``Check: 27
is odd, not even.``); most slips are odd, so most wrong results fail the check. Seeing
an error in one's own arithmetic would need the model to recompute and compare numbers,
which a model this small does not learn in minutes;
reading the last digit of a number is easy. What follows the check depends on what it
found, because GRPO's length bias (paper Sec. 3) can only act on length choices made
*after* a response has visibly gone wrong (docs/simulate.md works through why):
- after a failed check, the solution often re-checks in a loop that repeats the
  contradiction ("Wait, let me check again. 27 is odd, not even." a geometric number
  of times), rarely falls into a repetition that runs past any sensible budget, and
  then answers with the wrong value anyway: checks never fix anything, so the loops
  change length, not reward;
- after a passed check it re-checks less often, with shorter loops, and never repeats;
- filler sentences of random count, unrelated to correctness.

Documents (``corpus``) mix plain question+solution text, the chat template, R1-style
conversations that usually drift into more questions, and pure question lists
(sentence completion), so the template decides whether the model answers.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from drzero.templates import TEMPLATES

FILLERS = (
    "Let me think about this step by step.",
    "We need to be careful with the arithmetic here.",
    "First, let us read the question again.",
    "This is a standard calculation.",
    "We work it out slowly.",
    "Let us write down what we know.",
    "Keep track of each intermediate result.",
)
# Re-check openers: the first three contain a keyword of the paper's reflection pool
# (drzero.analysis.REFLECTION_KEYWORDS), the others do not, so the keyword rate stays moderate.
CHECKS = (
    "Wait, let me check again.",
    "Let me double-check this.",
    "Let me verify again.",
    "Hmm, is that right?",
    "Let me look at that once more.",
    "Wait, let me see.",
)
CHECK_WEIGHTS = (0.15, 0.08, 0.07, 0.25, 0.2, 0.25)
LEVELS = (1, 2, 3, 4)  # number of arithmetic sub-steps
PHRASINGS = ("Compute {}.", "What is {}?", "Evaluate {}.")


@dataclass(frozen=True)
class SolutionStyle:
    """The rates of the corpus solutions: a slip per sub-step, then after the final
    parity check a re-check loop, a repetition or nothing, with rates that depend on
    whether the check failed. A loop goes on with ``loop_on_*`` probability after each
    round (a geometric number of rounds)."""

    error_rate: float = 0.22  # per sub-step
    loop_after_fail: float = 0.4  # P(re-check loop | the parity check failed)
    loop_on_after_fail: float = 0.5
    repeat_after_fail: float = 0.04  # degenerate repetition of the failed check
    loop_after_pass: float = 0.06
    loop_on_after_pass: float = 0.2
    repeats: tuple[int, int] = (30, 45)  # sentences in a repetition (~8 tokens each: past 256)
    max_fillers: int = 2
    filler_after_step: float = 0.05


def _operand(rng: random.Random, total: int, two_digit: bool) -> tuple[str, int]:
    """An operation on ``total`` that keeps the result in 0..99: a digit 2-9, or a
    two-digit number 11-39 with a non-zero units digit."""
    while True:
        b = rng.randint(11, 39) if two_digit else rng.randint(2, 9)
        if two_digit and b % 10 == 0:
            continue
        ops = [op for op, r in (("+", total + b), ("-", total - b)) if 0 <= r <= 99]
        if ops:
            return rng.choice(ops), b


def _parity(value: int) -> str:
    return "even" if value % 2 == 0 else "odd"


def make_question(rng: random.Random, level: int) -> dict:
    """One question with ``level`` arithmetic sub-steps and its exact answer: level 1 is
    ``a +- digit``, 2 is ``a +- bc``, 3 adds a digit to that, 4 a second two-digit
    number. ``ops`` lists ``(op, operand)`` after the ``start`` number."""
    shapes = {1: (False,), 2: (True,), 3: (True, False), 4: (True, True)}[level]
    if level == 3 and rng.random() < 0.5:
        shapes = (False, True)
    start = rng.randint(10, 60)
    total, ops = start, []
    for two_digit in shapes:
        op, b = _operand(rng, total, two_digit)
        total = total + b if op == "+" else total - b
        ops.append((op, b))
    expr = str(start) + "".join(f" {op} {b}" for op, b in ops)
    problem = rng.choice(PHRASINGS).format(expr) + f" The answer is {_parity(total)}."
    return {"problem": problem, "answer": str(total), "level": level, "start": start, "ops": ops}


def _slip(rng: random.Random, value: int) -> int:
    return value + rng.choice([-1, 1, -1, 1, -3, 3, -2, 2])  # mostly odd: the parity check sees them


def _loop(rng: random.Random, verdict: str, go_on: float) -> list[str]:
    """Re-check rounds that repeat the check's verdict ("27 is odd, not even."): one,
    then another with probability ``go_on`` after each."""
    lines = [rng.choices(CHECKS, CHECK_WEIGHTS)[0], verdict]
    while rng.random() < go_on:
        lines += [rng.choices(CHECKS, CHECK_WEIGHTS)[0], verdict]
    return lines


def solve(q: dict, rng: random.Random, style: SolutionStyle = SolutionStyle()) -> tuple[list[str], int]:
    """Scratchpad sentences for question ``q`` and the final (possibly wrong) value."""
    lines = rng.sample(FILLERS, rng.randint(0, style.max_fillers))
    value = q["start"]
    for op, b in q["ops"]:
        if b >= 10:  # 47 - 19 = 47 - 10 - 9. then two sub-steps
            tens, units = b - b % 10, b % 10
            lines.append(f"{value} {op} {b} = {value} {op} {tens} {op} {units}.")
            parts = (tens, units)
        else:
            parts = (b,)
        for part in parts:
            true = value + part if op == "+" else value - part
            new = _slip(rng, true) if rng.random() < style.error_rate else true
            lines.append(f"{value} {op} {part} = {new}.")
            value = new
        if rng.random() < style.filler_after_step:
            lines.append(rng.choice(FILLERS))
    want = _parity(int(q["answer"]))
    got = _parity(value)
    u = rng.random()
    if got == want:
        verdict = f"{value} is {got}."
        lines += [f"Check: {verdict} Yes."]
        if u < style.loop_after_pass:
            lines += _loop(rng, verdict, style.loop_on_after_pass)
    else:  # the check fails: visible text that the response went wrong; it goes on anyway
        verdict = f"{value} is {got}, not {want}."
        lines += [f"Check: {verdict}"]
        if u < style.repeat_after_fail:
            lines += [verdict] * rng.randint(*style.repeats)
        elif u < style.repeat_after_fail + style.loop_after_fail:
            lines += _loop(rng, verdict, style.loop_on_after_fail)
    return lines, value


def make_split(n: int, seed: int, levels=LEVELS) -> list[dict]:
    """``n`` question rows (with repeats), levels equally likely."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        q = make_question(rng, rng.choice(levels))
        rows.append({"problem": q["problem"], "answer": q["answer"], "level": q["level"]})
    return rows


def make_splits(seed: int = 1234, train_rows: int = 6000, test_rows: int = 500) -> tuple[list[dict], list[dict]]:
    """The fixed train/test question splits shipped with the package: unique questions,
    the test split disjoint from the train split."""
    test, seen = [], set()
    for r in make_split(test_rows * 4, seed + 1):
        if r["problem"] not in seen and len(test) < test_rows:
            seen.add(r["problem"])
            test.append(r)
    train = []
    for r in make_split(train_rows * 6, seed):
        if r["problem"] not in seen and len(train) < train_rows:
            seen.add(r["problem"])
            train.append(r)
    if len(train) < train_rows or len(test) < test_rows:
        raise ValueError(f"only {len(train)}/{len(test)} unique questions; widen the ranges")
    return train, test


def _question_list(rng: random.Random, k: int) -> str:
    return "\n".join(make_question(rng, rng.choice(LEVELS))["problem"] for _ in range(k))


def corpus(n_docs: int, seed: int, *, style: SolutionStyle = SolutionStyle(), mix: dict | None = None) -> list[str]:
    """Pretraining documents (see module docstring); ``mix`` gives the share of each kind."""
    mix = mix or {"plain": 0.45, "chat": 0.25, "r1": 0.12, "list": 0.18}
    kinds, shares = zip(*mix.items())
    rng = random.Random(seed)
    r1, chat = TEMPLATES["r1"], TEMPLATES["qwen_math"]
    docs = []
    for _ in range(n_docs):
        kind = rng.choices(kinds, shares)[0]
        q = make_question(rng, rng.choice(LEVELS))
        steps, value = solve(q, rng, style)
        body = " ".join(steps)
        if kind == "plain":
            # sentence completion is common in raw text: sometimes the next question follows
            if rng.random() < 0.2:
                docs.append(q["problem"] + "\n" + _question_list(rng, rng.randint(2, 4)))
            else:
                docs.append(f"{q['problem']}\n{body} So the answer is \\boxed{{{value}}}.")
        elif kind == "chat":
            docs.append(chat.render(q["problem"]) + f"{body} The final answer is \\boxed{{{value}}}.<|im_end|>")
        elif kind == "r1":
            prompt = r1.render(q["problem"])
            if rng.random() < 0.35:
                docs.append(prompt + f" {body} </think> <answer> {value} </answer>")
            else:  # the base model does not know the format: it drifts into new questions
                docs.append(prompt + " " + rng.choice(FILLERS) + "\nUser: " + _question_list(rng, rng.randint(2, 3)))
        else:
            docs.append(_question_list(rng, rng.randint(3, 6)))
    return docs


CHECK_OUTCOMES = ("passed", "failed", "ignored", "misread", "other", "none")
_CHECK = re.compile(r"Check: (-?\d+) is (odd|even)(, not (odd|even))?")


def read_check(question: str, response: str) -> str:
    """What a response's parity check says, against the parity the question asks for:
    ``passed`` (``Check: 28 is even. Yes.``: the number's true parity, as asked), ``failed``
    (``Check: 27 is odd, not even.``: visibly wrong, the branch re-check loops follow),
    ``ignored`` (the number's true parity, not the one asked, without saying so: ``Check:
    27 is odd. Yes.`` for an even question), ``misread`` (a parity the number does not
    have, so a wrong result "passes": ``Check: 27 is even. Yes.``), ``other`` (a check
    without a number verdict, ``Check this step.``), ``none`` (no check). The corpus writes
    only ``passed`` and ``failed`` checks; anything else is something training taught the
    model (docs/probe-and-report.md, "What Dr. GRPO changes"). Only the first check is read."""
    at = response.find("Check")
    if at < 0:
        return "none"
    m = _CHECK.match(response, at)
    if not m:
        return "other"
    value, claimed = int(m.group(1)), m.group(2)
    if claimed != _parity(value):
        return "misread"
    if m.group(3):
        return "failed"
    asked = re.search(r"The answer is (odd|even)\.", question)
    return "ignored" if asked and asked.group(1) != claimed else "passed"


def check_anatomy(samples: list[dict]) -> dict:
    """Where the length of wrong (reward 0) responses comes from, for a list of training
    samples (``samples.jsonl`` rows: question, response, reward, length, finish_reason):
    the share of each ``read_check`` outcome, the failed ones' mean number of verdicts
    ("27 is odd, not even." repeated by re-check loops or a repetition), their mean length
    by outcome, and the truncated share."""
    wrong = [r for r in samples if not r["reward"]]
    out: dict = {"wrong": len(wrong)}
    if not wrong:
        return out
    outcome = [read_check(r["question"], r["response"]) for r in wrong]
    for name in CHECK_OUTCOMES:
        rows = [r for r, o in zip(wrong, outcome) if o == name]
        out[f"share_{name}"] = len(rows) / len(wrong)
        out[f"length_{name}"] = sum(r["length"] for r in rows) / len(rows) if rows else None
    failed = [r["response"] for r, o in zip(wrong, outcome) if o == "failed"]
    out["failed_verdicts"] = sum(len(re.findall(r"is (?:odd|even), not", t)) for t in failed) / len(failed) if failed else None
    out["truncated"] = sum(r.get("finish_reason") == "length" for r in wrong) / len(wrong)
    out["length"] = sum(r["length"] for r in wrong) / len(wrong)
    return out


def length_ceiling(anatomy: dict, budget: int) -> float | None:
    """How far GRPO's length bias can lengthen toy-v2's wrong responses, as a multiple of
    their mean length in ``anatomy`` (``check_anatomy``'s output): the mean if every
    response with a *failed* check ran to ``budget`` tokens while the other outcomes kept
    their shares and lengths. Only a failed check makes a wrong response visibly wrong to
    the model, so only that branch has a length choice the bias acts on; a wrong response
    whose check passed looks right and is shortened along with the right ones. None
    without wrong responses."""
    if not anatomy.get("wrong"):
        return None
    rest = sum(anatomy[f"share_{o}"] * anatomy[f"length_{o}"] for o in CHECK_OUTCOMES
               if o != "failed" and anatomy[f"length_{o}"] is not None)
    return (anatomy["share_failed"] * budget + rest) / anatomy["length"]


_SUB_STEP = re.compile(r"(-?\d+) ([+-]) (\d+) = (-?\d+)\.")


def sub_steps(response: str) -> list[tuple[re.Match, int]]:
    """The arithmetic sub-steps of a response's working before its first check, each with
    its right value: every ``a +- b = c.`` sentence (``47 - 10 = 37.``; group 4 is ``c``)
    and ``a +- b``. The split sentences (``47 - 19 = 47 - 10 - 9.``) are not sub-steps."""
    out = []
    for m in _SUB_STEP.finditer(response.split("Check")[0]):
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        out.append((m, a + b if op == "+" else a - b))
    return out


def arithmetic_slips(response: str) -> tuple[int, int]:
    """(sub-steps, wrong sub-steps) in a response's working (``sub_steps``): a slip is a
    sub-step whose result is not its right value."""
    steps = sub_steps(response)
    return len(steps), sum(int(m.group(4)) != true for m, true in steps)
