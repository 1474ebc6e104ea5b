"""How often toy-v2 responses slip in their arithmetic, per sub-step, for eval outputs or training runs.

    python scripts/toy_slips.py EVAL_DIR_OR_RUN ... [--window 100]

Reads each folder's ``samples.jsonl``: a ``drzero eval --output`` folder (held-out
responses, one row per answer) or a ``drzero train`` run (the rollouts ``log_samples``
keeps, in windows of ``--window`` iterations). For each it prints the responses, their
accuracy (eval) or reward (train), the sub-steps per response and the share of sub-steps
that slipped (``drzero.toy.task.arithmetic_slips``), and how many hit the token limit.
docs/probe-and-report.md ("Why GRPO ends less accurate") reads the toy-v2 recipes' runs
with it: their sampled slips fall alike under both objectives, their greedy ones do not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drzero.errors import DrZeroError
from drzero.data import read_jsonl as read_eval_jsonl
from drzero.report import read_jsonl as read_run_jsonl
from drzero.report import step_windows
from drzero.toy.task import arithmetic_slips


def summarize(rows: list[dict]) -> dict:
    """Responses, accuracy (eval rows' ``correct``, else ``reward``), sub-steps per
    response, slips per sub-step and the truncated count of ``samples.jsonl`` rows."""
    steps = slips = 0
    for r in rows:
        n, w = arithmetic_slips(r["response"])
        steps, slips = steps + n, slips + w
    score = [float(r["correct"]) if "correct" in r else float(r["reward"]) for r in rows]
    return {"n": len(rows), "accuracy": sum(score) / len(rows), "steps_per_response": steps / len(rows),
            "slip_rate": slips / steps if steps else float("nan"),
            "truncated": sum(r.get("finish_reason") == "length" for r in rows)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="drzero eval --output folders or drzero train runs (each with samples.jsonl)")
    ap.add_argument("--window", type=int, default=100, help="iterations per row, for training runs")
    args = ap.parse_args(argv)
    if args.window < 1:
        ap.error("--window must be >= 1")
    print(f"{'folder':28s} {'iters':>9s} {'n':>5s} {'acc/reward':>10s} {'steps/resp':>10s} {'slips/step':>10s} {'truncated':>9s}")
    for folder in args.folders:
        path = Path(folder) / "samples.jsonl"
        if not path.is_file():
            print(f"error: {path} not found (drzero eval --output and drzero train write it)", file=sys.stderr)
            return 2
        try:
            run = (Path(folder) / "metrics.jsonl").is_file()
            rows = read_run_jsonl(path) if run else read_eval_jsonl(path)  # a run's last line torn by a kill is left out
            if run:  # windows of iterations
                groups = [(f"{lo}-{hi}", w) for lo, hi, w in step_windows(rows, args.window)]
            else:
                groups = [("eval", rows)]
            table = [(label, summarize(g)) for label, g in groups if g]
        except DrZeroError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except (KeyError, TypeError) as e:
            print(f"error: {path}: a row without {e} (not drzero eval or train samples)", file=sys.stderr)
            return 2
        for label, s in table:
            print(f"{Path(folder).name:28s} {label:>9s} {s['n']:5d} {s['accuracy']:10.3f} {s['steps_per_response']:10.2f} "
                  f"{s['slip_rate']:10.4f} {s['truncated']:9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
