"""Where toy-v2's wrong-response length comes from, window by window, for training runs.

    python scripts/toy_anatomy.py runs/toy-v2-grpo runs/toy-v2-dr_grpo [--window 50]

Reads each run's ``samples.jsonl`` (the responses ``log_samples`` keeps per iteration)
and prints, for the wrong (reward 0) ones: how their parity check reads
(``drzero.toy.task.read_check``: passed / failed / ignored / misread / other / none), the failed
ones' number of verdicts and length, the truncated share, the mean length, and the ceiling
(``drzero.toy.task.length_ceiling``: the wrong responses' mean, as a multiple of the window's,
if every failed-check response ran to the run's token budget). docs/probe-and-report.md
("What Dr. GRPO changes", "Why GRPO stops near x1.3") reads the toy-v2 runs with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drzero.errors import DrZeroError
from drzero.report import read_jsonl, read_run_config, step_windows
from drzero.toy.task import check_anatomy, length_ceiling


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories (each with samples.jsonl)")
    ap.add_argument("--window", type=int, default=50, help="iterations per row")
    ap.add_argument("--budget", type=int, default=None,
                    help="token budget for the ceiling column (default: each run's max_new_tokens, from its config.yaml)")
    args = ap.parse_args(argv)
    if args.window < 1:
        ap.error("--window must be >= 1")
    if args.budget is not None and args.budget < 1:
        ap.error("--budget must be >= 1")
    print(f"{'run':28s} {'iters':>9s} {'wrong':>5s} {'len':>5s} {'trunc':>5s} {'passed':>6s} {'failed':>6s} {'ignored':>7s} "
          f"{'misread':>7s} {'other':>5s} {'none':>5s} {'verdicts/failed':>15s} {'len/failed':>10s} {'ceiling':>7s}")
    for run in args.runs:
        path = Path(run) / "samples.jsonl"
        if not path.is_file():
            print(f"error: {path} not found (a drzero train run directory has it)", file=sys.stderr)
            return 2
        budget = args.budget
        if budget is None:
            try:
                budget = int(read_run_config(run)["max_new_tokens"])
            except (DrZeroError, KeyError, TypeError, ValueError):
                print(f"error: {Path(run) / 'config.yaml'} gives no max_new_tokens; pass --budget", file=sys.stderr)
                return 2
        try:
            rows = read_jsonl(path)  # a last line torn by a kill is left out
            windows = [(lo, hi, check_anatomy(w)) for lo, hi, w in step_windows(rows, args.window)]
        except DrZeroError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except (KeyError, TypeError) as e:
            print(f"error: {path}: a sample without {e} (not a drzero train samples.jsonl)", file=sys.stderr)
            return 2
        for lo, hi, a in windows:
            if not a["wrong"]:
                continue
            v = a["failed_verdicts"]
            lf = a["length_failed"]
            ceiling = length_ceiling(a, budget)
            print(f"{Path(run).name:28s} {lo:4d}-{hi:<4d} {a['wrong']:5d} {a['length']:5.0f} "
                  f"{a['truncated']:5.2f} {a['share_passed']:6.2f} {a['share_failed']:6.2f} {a['share_ignored']:7.2f} "
                  f"{a['share_misread']:7.2f} "
                  f"{a['share_other']:5.2f} {a['share_none']:5.2f} {'-' if v is None else f'{v:.1f}':>15s} "
                  f"{'-' if lf is None else f'{lf:.0f}':>10s} {'x' + format(ceiling, '.2f'):>7s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
