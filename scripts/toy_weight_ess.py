"""How evenly each objective spreads its gradient over the tokens of a run's rollouts.

    python scripts/toy_weight_ess.py RUN ... [--window 100]

For every logged iteration of a ``drzero train`` run (``weights.jsonl``: each rollout's
length and reward), the per-token weight each objective would give those same rollouts,
``drzero.algo.group_advantages`` then ``drzero.algo.bias_weights``:

- ``grpo``: A_i / |o_i| with A_i scaled by 1 / std_group;
- ``std_only``: the 1/std scaling with Dr. GRPO's constant C;
- ``len_only``: 1 / |o_i| without the 1/std scaling;
- ``dr_grpo``: (R_i - mean) / C.

and its relative effective sample size over tokens, ESS = (sum |w|)^2 / (n sum w^2)
(1 when every token weighs the same, 1/n when one token carries it all), averaged over
the iterations of each window. docs/probe-and-report.md ("Five seeds a side") reads the
toy-v2 recipes' runs with it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from drzero.algo import bias_weights, group_advantages
from drzero.analysis import mean_or_nan
from drzero.errors import DrZeroError
from drzero.report import read_jsonl, read_run_config, step_windows

VARIANTS = {  # name: (advantage scale, aggregation)
    "grpo": ("group", "seq_mean_token_mean"),
    "std_only": ("group", "seq_mean_token_sum_norm"),
    "len_only": ("none", "seq_mean_token_mean"),
    "dr_grpo": ("none", "seq_mean_token_sum_norm"),
}


def token_ess(weights: torch.Tensor, lengths: torch.Tensor) -> float:
    """Relative effective sample size of per-response weights ``[N]`` repeated over each
    response's ``lengths`` tokens; nan when every weight is zero."""
    w, n = weights.abs().double(), lengths.double()
    total, squares = (w * n).sum(), (w * w * n).sum()
    return float(total * total / (n.sum() * squares)) if squares > 0 else float("nan")


def step_ess(lengths: list[float], rewards: list[float], group_size: int, budget: float) -> dict[str, float]:
    """``token_ess`` of one iteration's rollouts under each of ``VARIANTS``."""
    lens, rew = torch.tensor(lengths, dtype=torch.float64), torch.tensor(rewards, dtype=torch.float64)
    out = {}
    for name, (scale, aggregation) in VARIANTS.items():
        adv = group_advantages(rew, group_size, scale=scale)
        out[name] = token_ess(bias_weights(adv, lens, aggregation=aggregation, constant_normalizer=budget), lens)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="drzero train run directories (weights.jsonl, config.yaml)")
    ap.add_argument("--window", type=int, default=100, help="iterations per row")
    args = ap.parse_args(argv)
    if args.window < 1:
        ap.error("--window must be >= 1")
    print(f"{'run':28s} {'iters':>9s} " + " ".join(f"{v:>9s}" for v in VARIANTS))
    for run in args.runs:
        path = Path(run) / "weights.jsonl"
        if not path.is_file():
            print(f"error: {path} not found (drzero train writes it)", file=sys.stderr)
            return 2
        try:
            cfg = read_run_config(run)
            group_size, budget = int(cfg["group_size"]), float(cfg["max_new_tokens"])
            rows = read_jsonl(path)  # a last line torn by a kill is left out
            per_step = [(r["step"], step_ess(r["length"], r["reward"], group_size, budget)) for r in rows]
        except DrZeroError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except (KeyError, TypeError, ValueError) as e:
            print(f"error: {run}: {e} (not a drzero train run's weights.jsonl and config.yaml)", file=sys.stderr)
            return 2
        for lo, hi, window in step_windows([{"step": s, "ess": e} for s, e in per_step], args.window):
            if window:
                means = [mean_or_nan(r["ess"][v] for r in window if not math.isnan(r["ess"][v])) for v in VARIANTS]
                print(f"{Path(run).name:28s} {f'{lo}-{hi}':>9s} " + " ".join(f"{m:9.3f}" for m in means))
    return 0


if __name__ == "__main__":
    sys.exit(main())
