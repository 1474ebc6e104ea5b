"""Grader throughput: drzero.grader vs math-verify's parse+verify, on the same inputs.

Inputs: every reference answer of the five bundled benchmarks (AIME24, AMC, MATH500,
Minerva, OlympiadBench), each rewritten the way models write answers (a boxed answer at
the end of a short solution, a decimal or ``\\dfrac`` form, ``x = ...``, a wrong answer).

    python bench/grader_bench.py            # all rewrites, ~1,560 references x 4
    python bench/grader_bench.py --limit 200

Prints responses/second for both, the ratio, and how often they agree.
"""

from __future__ import annotations

import argparse
import random
import re
import time

from drzero.data import load_benchmark
from drzero.grader import grade

BENCHMARKS = ("aime24", "amc", "math500", "minerva", "olympiadbench")
SOLUTION = "We simplify step by step. First, note the constraint; then combine terms.\n"


def rewrites(answer: str, rng: random.Random) -> list[tuple[str, bool]]:
    """(response, is-the-rewrite-equivalent) pairs for one reference answer."""
    out = [(f"{SOLUTION}Therefore the answer is $\\boxed{{{answer}}}$.", True)]
    if re.fullmatch(r"-?\d+", answer):
        n = int(answer)
        out.append((f"{SOLUTION}So we get $\\boxed{{{n}.0}}$", True))
        out.append((f"{SOLUTION}Hence $x = {n}$, i.e. \\boxed{{x = {n}}}.", True))
        out.append((f"{SOLUTION}The answer is $\\boxed{{{n + rng.choice([-2, -1, 1, 3])}}}$.", False))
    else:
        dfrac = answer.replace("\\frac", "\\dfrac")
        out.append((f"{SOLUTION}So the result is \\boxed{{{dfrac}}}", True))
        out.append((f"{SOLUTION}$$\\boxed{{ {answer} }}$$", True))
        out.append((f"{SOLUTION}The answer is $\\boxed{{{answer}+1}}$.", False))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="references per benchmark (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from math_verify import parse, verify

    rng = random.Random(args.seed)
    cases = []
    for name in BENCHMARKS:
        rows = load_benchmark(name)[: args.limit]
        for row in rows:
            ref = row["answer"]
            first = ref[0] if isinstance(ref, list) else ref
            for resp, label in rewrites(str(first), rng):
                cases.append((resp, ref, label))
    print(f"{len(cases)} (response, reference) pairs from {', '.join(BENCHMARKS)}")

    grade(cases[0][0], cases[0][1])  # warm imports and the worker, for both
    parse("$1$"), verify(parse("$1$"), parse("$1$"))

    t = time.perf_counter()
    ours = [grade(resp, ref).correct for resp, ref, _ in cases]
    t_ours = time.perf_counter() - t

    t = time.perf_counter()
    theirs = []
    for resp, ref, _ in cases:
        refs = ref if isinstance(ref, list) else [ref]
        answer = parse(resp)
        theirs.append(any(verify(parse(f"${r}$"), answer) for r in refs))
    t_theirs = time.perf_counter() - t

    labels = [label for *_, label in cases]
    acc = lambda preds: sum(p == l for p, l in zip(preds, labels)) / len(labels)  # noqa: E731
    rate_ours, rate_theirs = len(cases) / t_ours, len(cases) / t_theirs
    print(f"{'grader':<14}{'responses/s':>14}{'agree w/ label':>16}")
    print(f"{'drzero':<14}{rate_ours:>14.0f}{acc(ours):>16.3f}")
    print(f"{'math-verify':<14}{rate_theirs:>14.0f}{acc(theirs):>16.3f}")
    print(f"speedup {rate_ours / rate_theirs:.1f}x")


if __name__ == "__main__":
    main()
