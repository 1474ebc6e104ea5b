"""One-factor-at-a-time sweep of drzero.simulate: when does GRPO's length bias show, and how much?

    python scripts/simulate_sweep.py --output runs/simulate-sweep      # ~10 min of one core

From the default world (drzero.simulate.SimulateConfig), vary one factor at a time and
train GRPO and Dr. GRPO (3 seeds each). Per setting it reports the end/start ratio of the
mean length of wrong (reward 0) and right (reward 1) responses, the drift of GRPO's
after-slip re-check logit, the first iteration at which GRPO's wrong length reaches 1.5x
its start, and the signal-to-noise ratio of GRPO's per-step gradient on that logit at the
start (mean / std over 300 sampled batches). Writes sweep.json and sweep.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from drzero.algo import group_advantages, policy_loss, resolve_objective
from drzero.simulate import (
    exact_stats,
    SLIPPED,
    ShapePolicy,
    SimulateConfig,
    question_slip_logits,
    run_simulate,
    sample_shapes,
    token_logprobs,
    world_of,
)

BASE = SimulateConfig(objectives="grpo,dr_grpo", seeds=3, control=False, curve_every=10)

# (factor, values): each value replaces the default of that field alone, or is a dict of fields
# (a longer base path moves the budget with it, so that truncation stays as rare as at the default)
FACTORS = [
    ("lr", [0.001, 0.002, 0.003, 0.005, 0.01]),
    ("iterations", [100, 200, 400, 800]),
    ("group_size", [2, 4, 8, 16]),
    ("questions", [4, 16, 64]),
    ("slip_visibility", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("slip_rate", [0.2, 0.35, 0.5, 0.65, 0.8]),
    ("loop_tokens", [5, 10, 20, 40]),
    ("path_tokens", [{"path_tokens": (30, 60)}, {"path_tokens": (100, 130), "max_new_tokens": 370},
                     {"path_tokens": (200, 230), "max_new_tokens": 470}]),
    ("fix_prob", [0.0, 0.2, 0.5]),
    ("repeat_init", [0.001, 0.01, 0.05]),
    ("train_skill", [False, True]),
]


def gradient_snr(cfg: SimulateConfig, objective_name: str, batches: int = 300, seed: int = 0) -> float:
    """mean / std of the per-step gradient on the after-slip re-check logit at the start."""
    world, slip_logits = world_of(cfg), question_slip_logits(cfg)
    objective = resolve_objective(objective_name, max_new_tokens=cfg.max_new_tokens)
    policy = ShapePolicy(cfg.loop_init, cfg.repeat_init)
    generator = torch.Generator().manual_seed(seed)
    grads = []
    for _ in range(batches):
        shapes = sample_shapes(policy, slip_logits, cfg.group_size, world, generator)
        adv = group_advantages(shapes.reward, cfg.group_size, scale=objective.advantage_scale, baseline=objective.baseline)
        logprobs, mask = token_logprobs(policy, shapes, slip_logits, cfg.group_size, world)
        loss, _ = policy_loss(objective, logprobs, logprobs.detach(), adv, mask)
        policy.zero_grad()
        loss.backward()
        grads.append(-policy.loop_logits.grad[SLIPPED, 0].item())  # ascent direction: + = more re-checks
    g = torch.tensor(grads, dtype=torch.float64)
    return (g.mean() / g.std()).item() if g.std() > 0 else 0.0  # 0: no visible slips, no gradient


DRIFTS = (0.5, 1.0, 1.5, 2.0, 3.0)


def drift_table() -> list[str]:
    """Exact wrong-length ratio when only the after-slip re-check logit moves by a given drift
    (everything else at the start): the link between what a trained model's after-slip
    behaviour does and the length effect, per loop length and slip visibility."""
    lines = ["| loop_tokens | slip_visibility | start wrong length | " + " | ".join(f"drift {d:+g}" for d in DRIFTS) + " |",
             "|---|---|---|" + "---|" * len(DRIFTS)]
    for loop_tokens in (10, 20, 40):
        for visibility in (1.0, 0.5, 0.25):
            cfg = replace(BASE, loop_tokens=loop_tokens, slip_visibility=visibility)
            world, slip_logits = world_of(cfg), question_slip_logits(cfg)
            lengths = []
            for drift in (0.0, *DRIFTS):
                policy = ShapePolicy(cfg.loop_init, cfg.repeat_init)
                with torch.no_grad():
                    policy.loop_logits[SLIPPED, 0] += drift
                lengths.append(exact_stats(policy, slip_logits, world)["incorrect_length"])
            lines.append(f"| {loop_tokens} | {visibility:g} | {lengths[0]:.0f} | "
                         + " | ".join(f"x{x / lengths[0]:.2f}" for x in lengths[1:]) + " |")
    return lines


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def measure(cfg: SimulateConfig) -> dict:
    result = run_simulate(cfg)
    row = {}
    for name, c in result["curves"].items():
        for key, short in (("incorrect_length", "wrong"), ("correct_length", "right")):
            ratios = torch.tensor([s[-1] / s[0] for s in c[key]], dtype=torch.float64)
            row[f"{name}_{short}_ratio"] = ratios.mean().item()
            row[f"{name}_{short}_ratio_std"] = ratios.std().item()
        row[f"{name}_accuracy_end"] = sum(s[-1] for s in c["accuracy"]) / len(c["accuracy"])
    g = result["curves"]["grpo"]
    row["grpo_start_wrong"] = g["incorrect_length"][0][0]
    row["grpo_start_right"] = g["correct_length"][0][0]
    row["accuracy_start"] = g["accuracy"][0][0]
    row["grpo_after_slip_logit_drift"] = sum(_logit(s[-1]) - _logit(s[0]) for s in g["recheck_after_slip"]) / len(g["recheck_after_slip"])
    mean_wrong = torch.tensor(g["incorrect_length"]).mean(0)  # [points]
    hit = (mean_wrong >= 1.5 * mean_wrong[0]).nonzero()
    row["grpo_iterations_to_1.5x"] = g["iteration"][hit[0].item()] if len(hit) else None
    row["grpo_snr"] = gradient_snr(cfg, "grpo")
    row["seconds"] = result["seconds"]
    return row


def _fmt(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return f"{v[0]}/{v[1]}" if isinstance(v, tuple) else str(v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/simulate-sweep")
    parser.add_argument("--only", default=None, help="comma-separated factors to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    rows = []
    t0 = time.perf_counter()
    for factor, values in FACTORS:
        if only and factor not in only:
            continue
        for value in values:
            cfg = replace(BASE, **(value if isinstance(value, dict) else {factor: value}))
            row = {"factor": factor, "value": value, **measure(cfg)}
            rows.append(row)
            print(f"{factor}={_fmt(value)}: GRPO wrong x{row['grpo_wrong_ratio']:.2f} right x{row['grpo_right_ratio']:.2f}"
                  f" | Dr. GRPO wrong x{row['dr_grpo_wrong_ratio']:.2f} right x{row['dr_grpo_right_ratio']:.2f}"
                  f" | snr {row['grpo_snr']:.3f} | {row['seconds']:.0f}s", flush=True)
            (out / "sweep.json").write_text(json.dumps({"base": BASE.__dict__, "rows": rows}, indent=1, default=str) + "\n")
    lines = [
        "| factor | value | start wrong / right (tokens) | GRPO wrong end/start | GRPO right end/start "
        "| Dr. GRPO wrong | Dr. GRPO right | GRPO after-slip logit drift | GRPO iters to 1.5x wrong | GRPO SNR/step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['factor']} | {_fmt(r['value'])} | {r['grpo_start_wrong']:.0f} / {r['grpo_start_right']:.0f} "
            f"| {r['grpo_wrong_ratio']:.2f} ± {r['grpo_wrong_ratio_std']:.2f} | {r['grpo_right_ratio']:.2f} ± {r['grpo_right_ratio_std']:.2f} "
            f"| {r['dr_grpo_wrong_ratio']:.2f} ± {r['dr_grpo_wrong_ratio_std']:.2f} | {r['dr_grpo_right_ratio']:.2f} ± {r['dr_grpo_right_ratio_std']:.2f} "
            f"| {r['grpo_after_slip_logit_drift']:+.2f} | {r['grpo_iterations_to_1.5x'] or '-'} | {r['grpo_snr']:.3f} |")
    lines += ["", "Wrong-length ratio when only the after-slip re-check logit moves (exact, default world otherwise):", ""]
    lines += drift_table()
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    print(f"{time.perf_counter() - t0:.0f}s; wrote {out}/sweep.md and sweep.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
