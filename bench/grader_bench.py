"""Grader modes side by side on a hand-labelled corpus: agreement, balanced accuracy,
responses/s, and the wall-time ratio drzero / math-verify.

Each mode grades the whole corpus with ``grade_batch`` (``workers`` killable processes,
the same for every mode), each case under its own ``answer_format``. Workers are warmed
before timing; the modes take turns within each repeat, and the times reported are
medians over the repeats.

    python bench/grader_bench.py                       # tests/data/grader/corpus.jsonl
    python bench/grader_bench.py --repeats 5 --by category
    python bench/grader_bench.py --data other.jsonl    # any JSONL with response, reference, label

A row of the data needs ``response``, ``reference`` (str, number or list) and ``label``
(bool); ``answer_format`` defaults to ``auto``; ``--by`` names a field to break the
agreement down by (``category``, ``language``, ``source``, ...).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

from drzero.grader import GRADER_MODES, grade_batch, warm_up

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "grader" / "corpus.jsonl"


def grade_all(rows: list[dict], mode: str, workers: int, timeout_s: float) -> tuple[list, float]:
    """(grades in row order, wall seconds) for one mode over every row."""
    by_format = defaultdict(list)
    for i, row in enumerate(rows):
        by_format[row.get("answer_format", "auto")].append(i)
    grades: list = [None] * len(rows)
    t = time.perf_counter()
    for fmt, idx in by_format.items():
        out = grade_batch([rows[i]["response"] for i in idx], [rows[i]["reference"] for i in idx],
                          answer_format=fmt, mode=mode, workers=workers, timeout_s=timeout_s)
        for i, g in zip(idx, out):
            grades[i] = g
    return grades, time.perf_counter() - t


def scores(verdicts: list[bool], labels: list[bool]) -> tuple[float, float]:
    """(agreement, balanced accuracy = mean of the true-positive and true-negative rates)."""
    pos = [v for v, lab in zip(verdicts, labels) if lab]
    neg = [v for v, lab in zip(verdicts, labels) if not lab]
    agree = sum(v == lab for v, lab in zip(verdicts, labels)) / len(labels)
    tpr = sum(pos) / len(pos) if pos else 1.0
    tnr = sum(not v for v in neg) / len(neg) if neg else 1.0
    return agree, (tpr + tnr) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=CORPUS, help="labelled JSONL (default: the grader corpus)")
    ap.add_argument("--modes", default=",".join(GRADER_MODES), help="comma-separated grader modes")
    ap.add_argument("--workers", type=int, default=2, help="grader worker processes, for every mode")
    ap.add_argument("--timeout-s", type=float, default=5.0, help="per-item limit")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per mode (median reported)")
    ap.add_argument("--by", default=None, help="also break agreement down by this field")
    ap.add_argument("--show-wrong", default=None, help="list the cases this mode gets wrong")
    args = ap.parse_args()

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels = [bool(r["label"]) for r in rows]
    modes = args.modes.split(",")
    print(f"{len(rows)} cases from {args.data.name} ({sum(labels)} equal, {len(labels) - sum(labels)} not), "
          f"{args.workers} workers, {args.repeats} repeats")

    warm_up(args.workers)
    for mode in modes:  # warm each mode's code paths in the workers
        grade_all(rows[:20], mode, args.workers, args.timeout_s)
    times: dict[str, list[float]] = defaultdict(list)
    grades: dict[str, list] = {}
    for _ in range(args.repeats):
        for mode in modes:
            grades[mode], seconds = grade_all(rows, mode, args.workers, args.timeout_s)
            times[mode].append(seconds)

    print(f"{'mode':<13}{'agreement':>10}{'balanced':>10}{'FN':>5}{'FP':>5}{'timeouts':>9}{'resp/s':>9}{'median s':>10}")
    for mode in modes:
        verdicts = [g.correct for g in grades[mode]]
        agree, balanced = scores(verdicts, labels)
        fn = sum(lab and not v for v, lab in zip(verdicts, labels))
        fp = sum(v and not lab for v, lab in zip(verdicts, labels))
        median = statistics.median(times[mode])
        print(f"{mode:<13}{agree:>10.3f}{balanced:>10.3f}{fn:>5}{fp:>5}{sum(g.timed_out for g in grades[mode]):>9}"
              f"{len(rows) / median:>9.0f}{median:>10.2f}")
    if "drzero" in times and "math_verify" in times:
        ratio = statistics.median(times["drzero"]) / statistics.median(times["math_verify"])
        print(f"wall time drzero / math_verify: {ratio:.2f}x (medians of {args.repeats}; "
              f"per repeat: {', '.join(f'{a / b:.2f}' for a, b in zip(times['drzero'], times['math_verify']))})")

    if args.by:
        groups = sorted({str(r.get(args.by)) for r in rows})
        print(f"\nagreement by {args.by}:")
        print(f"{args.by:<20}{'n':>5}" + "".join(f"{m:>13}" for m in modes))
        for group in groups:
            idx = [i for i, r in enumerate(rows) if str(r.get(args.by)) == group]
            cells = "".join(f"{scores([grades[m][i].correct for i in idx], [labels[i] for i in idx])[0]:>13.3f}" for m in modes)
            print(f"{group:<20}{len(idx):>5}{cells}")
    if args.show_wrong:
        print(f"\ncases {args.show_wrong} gets wrong:")
        for g, r, lab in zip(grades[args.show_wrong], rows, labels):
            if g.correct != lab:
                print(f"  {r.get('id', '?')}: label {lab}, extracted {g.extracted!r}, method {g.method}")


if __name__ == "__main__":
    main()
