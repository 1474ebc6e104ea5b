"""The toy task: synthetic arithmetic questions with worked solutions, and the
pretraining corpus that makes a tiny model behave like the paper's base models.

Questions come in four difficulty levels (rows ``{"problem", "answer", "level"}``):
1. addition/subtraction of numbers up to 60;  2. times tables (2-9 x 2-12);
3. three-number expressions with precedence;  4. linear equations ``a x + b = c``.
The ranges are small on purpose: a 2M-parameter model learns them only partly in a few
minutes of CPU pretraining, which is the point (a base model that is often wrong).

Solutions (``solve``) are step-by-step scratchpads ending in ``\\boxed{answer}``, with
- arithmetic slips at a controlled per-step rate (later steps use the wrong value), so
  the base model is often wrong and RL has something to fix;
- filler sentences of random count, unrelated to correctness, so length can drift;
- occasional self-verification ("Wait, let me check again ..."), which sometimes fixes a
  slip and sometimes re-affirms it.
Documents (``corpus``) mix plain question+solution text, the chat template, R1-style
conversations that usually drift into more questions, and pure question lists
(sentence completion), so the template decides whether the model answers.
"""

from __future__ import annotations

import random

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
CHECKS_OK = ("Wait, let me check again.", "Let me double-check this step.", "Let me verify again.")


def make_question(rng: random.Random, level: int) -> dict:
    """One question of the given level with its exact integer answer."""
    if level == 1:
        a, b = rng.randint(1, 60), rng.randint(1, 60)
        if rng.random() < 0.5:
            return {"problem": f"What is {a} + {b}?", "answer": str(a + b), "level": 1, "ops": [("+", a, b)]}
        a, b = max(a, b), min(a, b)
        return {"problem": f"What is {a} - {b}?", "answer": str(a - b), "level": 1, "ops": [("-", a, b)]}
    if level == 2:
        a, b = rng.randint(2, 9), rng.randint(2, 12)
        return {"problem": f"Compute {a} * {b}.", "answer": str(a * b), "level": 2, "ops": [("*", a, b)]}
    if level == 3:
        a, b, c = rng.randint(1, 30), rng.randint(2, 9), rng.randint(2, 9)
        if rng.random() < 0.5:
            return {"problem": f"Compute {a} + {b} * {c}.", "answer": str(a + b * c), "level": 3,
                    "ops": [("*", b, c), ("+", a, None)]}
        return {"problem": f"Compute ({a} + {b}) * {c}.", "answer": str((a + b) * c), "level": 3,
                "ops": [("+", a, b), ("*", None, c)]}
    x, a = rng.randint(1, 10), rng.randint(2, 7)
    b = rng.randint(1, 30)
    c = a * x + b
    return {"problem": f"Solve for x: {a}x + {b} = {c}.", "answer": str(x), "level": 4,
            "ops": [("-", c, b), ("/", None, a)]}


def _apply(op: str, a: int, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]


def _slip(rng: random.Random, value: int) -> int:
    return value + rng.choice([-10, -2, -1, 1, 2, 10])


def _arith_lines(rng: random.Random, op: str, a: int, b: int, error_rate: float) -> tuple[list[tuple[str, int, int, int]], int]:
    """Sub-steps ``(op, a, b, written result)`` computing ``a op b``; a two-digit second
    operand of + or - is split into tens and units (``37 - 19 = 37 - 10 - 9``), the
    scratchpad a small model can learn. Each sub-step slips with ``error_rate``."""
    if op in "+-" and b >= 10:
        tens, units = b - b % 10, b % 10
        first = _apply(op, a, tens)
        first = _slip(rng, first) if rng.random() < error_rate else first
        steps = [(op, a, tens, first)]
        if units:
            second = _apply(op, first, units)
            second = _slip(rng, second) if rng.random() < error_rate else second
            steps.append((op, first, units, second))
        return steps, steps[-1][3]
    value = _apply(op, a, b)
    value = _slip(rng, value) if rng.random() < error_rate else value
    return [(op, a, b, value)], value


def solve(q: dict, rng: random.Random, *, error_rate: float, reflect_rate: float, max_fillers: int = 3) -> tuple[list[str], int]:
    """Scratchpad sentences for question ``q`` and the final (possibly wrong) value."""
    lines = [rng.choice(FILLERS) for _ in range(rng.randint(0, max_fillers))]
    prev = None
    for op, a, b in q["ops"]:
        a = prev if a is None else a
        b = prev if b is None else b
        true = _apply(op, a, b)
        steps, value = _arith_lines(rng, op, a, b, error_rate)
        if len(steps) > 1:  # 37 - 19 = 37 - 10 - 9 = 27 - 9 = 18
            chain = f"{a} {op} {b} = {a} {op} {steps[0][2]} {op} {steps[1][2]} = {steps[0][3]} {op} {steps[1][2]} = {value}"
        else:  # 37 - 10 = 27, 4 * 6 = 24
            chain = f"{a} {op} {b} = {value}"
        if q["level"] == 4 and op == "-":
            lines.append(f"Subtract {b} from both sides: {q['ops'][1][2]}x = {chain}.")
        elif q["level"] == 4:
            lines.append(f"Divide both sides by {b}: x = {chain}.")
        else:
            lines.append(f"{chain}.")
        if rng.random() < reflect_rate:
            lines.append(rng.choice(CHECKS_OK))
            if value != true and rng.random() < 0.5:
                lines.append(f"No, {a} {op} {b} = {true}.")
                value = true
            else:
                lines.append(f"Yes, {a} {op} {b} = {value}.")
        if rng.random() < 0.15:
            lines.append(rng.choice(FILLERS))
        prev = value
    return lines, prev


def make_split(n: int, seed: int, levels=(1, 2, 3, 4), weights=(0.25, 0.25, 0.25, 0.25)) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        q = make_question(rng, rng.choices(levels, weights)[0])
        rows.append({"problem": q["problem"], "answer": q["answer"], "level": q["level"]})
    return rows


def _question_list(rng: random.Random, k: int) -> str:
    return "\n".join(make_question(rng, rng.randint(1, 4))["problem"] for _ in range(k))


def corpus(n_docs: int, seed: int, *, error_rate: float = 0.08, reflect_rate: float = 0.06, mix: dict | None = None) -> list[str]:
    """Pretraining documents (see module docstring); ``mix`` gives the share of each kind."""
    mix = mix or {"plain": 0.45, "chat": 0.25, "r1": 0.12, "list": 0.18}
    kinds, shares = zip(*mix.items())
    rng = random.Random(seed)
    r1, chat = TEMPLATES["r1"], TEMPLATES["qwen_math"]
    docs = []
    for _ in range(n_docs):
        kind = rng.choices(kinds, shares)[0]
        q = make_question(rng, rng.choices((1, 2, 3, 4), (0.3, 0.25, 0.25, 0.2))[0])
        steps, value = solve(q, rng, error_rate=error_rate, reflect_rate=reflect_rate)
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
