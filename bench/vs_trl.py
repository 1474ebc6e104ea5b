"""drzero vs Hugging Face TRL's GRPOTrainer on identical work, in one run.

Needs the extra `trl` (``pip install -e ".[trl]"``); installs nothing itself.

Both train the bundled toy base model on the toy questions with Dr. GRPO (TRL:
``loss_type="dr_grpo"``, ``scale_rewards="none"``, ``beta=0``), drzero's grader as the
reward, the same template (r1, generation stopping at ``</answer>`` in both), group size, prompts per step, max new tokens,
learning rate and seed, on this machine (CPU), alternating between the two trainers
round by round. Held-out greedy accuracy on the toy test split is measured every
``--eval-every`` steps, outside the timed work, for both with the same evaluator.

    python bench/vs_trl.py                     # defaults below
    python bench/vs_trl.py --steps 30 --rounds 1

Prints per trainer: seconds per step (median, min, max), the per-phase breakdown
(generate, grade, train, other), the wall time to reach --threshold accuracy, then the
ratios drzero/TRL, ending with ``step_time_ratio R`` and ``time_to_accuracy_ratio R``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from drzero.evaluate import evaluate_rows
from drzero.grader import Grader
from drzero.grader import grade_batch
from drzero.models import load_model_and_tokenizer
from drzero.rollout.hf import HFEngine
from drzero.templates import TEMPLATES
from drzero.data import load_toy_split as load_split

TEMPLATE = TEMPLATES["r1"]  # the toy default: RL has to teach the format, accuracy moves fast


def held_out_accuracy(model, tokenizer, rows, max_new_tokens) -> float:
    engine = HFEngine(model, tokenizer, batch_size=256)
    res = evaluate_rows(engine, rows, TEMPLATE, n=1, temperature=0.0, max_new_tokens=max_new_tokens, grader=Grader(workers=2))
    return res.metrics["accuracy"]


def run_drzero(args, eval_rows, out: Path) -> dict:
    from drzero.config import TrainConfig
    from drzero.train import train

    cfg = TrainConfig(model="toy", algo="dr_grpo", template=TEMPLATE.name, dataset="toy:train", output_dir=str(out),
                      max_steps=args.steps, prompts_per_step=args.prompts, group_size=args.group, micro_batch_size=32,
                      max_new_tokens=args.max_new_tokens, lr=args.lr, seed=args.seed, eval_datasets="toy:test",
                      eval_limit=args.eval_questions, eval_every=args.eval_every, save_every=0, progress=False,
                      grader_workers=2)
    train(cfg)
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "time/step" in m and m["step"] > 0]
    per_step, phases, reach, wall = [], {"generate": [], "grade": [], "train": [], "other": []}, None, 0.0
    for m in steps:
        t = m["time/step"] - m.get("time/eval", 0.0)
        per_step.append(t)
        wall += t
        for p in ("generate", "grade", "train"):
            phases[p].append(m[f"time/{p}"])
        phases["other"].append(t - m["time/generate"] - m["time/grade"] - m["time/train"])
        acc = m.get("eval/toy:test/accuracy")
        if acc is not None and reach is None and acc >= args.threshold:
            reach = wall
    base = next(m["eval/toy:test/accuracy"] for m in metrics if m["step"] == 0)
    final = [m["eval/toy:test/accuracy"] for m in metrics if "eval/toy:test/accuracy" in m][-1]
    return {"per_step": per_step, "phases": phases, "time_to_threshold": reach, "base_acc": base, "final_acc": final}


def run_trl(args, eval_rows, out: Path) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = load_model_and_tokenizer("toy")
    rows = load_split("train")
    dataset = Dataset.from_list([{"prompt": TEMPLATE.render(r["problem"]), "answer": r["answer"]} for r in rows])
    timing = {"generate": 0.0, "grade": 0.0}

    def reward(completions, answer, **kwargs):
        t = time.perf_counter()
        grades = grade_batch(list(completions), list(answer), answer_format=TEMPLATE.answer_format, workers=2)
        timing["grade"] += time.perf_counter() - t
        return [float(g.correct) for g in grades]

    original_generate = model.generate

    def timed_generate(*a, **kw):
        t = time.perf_counter()
        try:  # transformers needs the tokenizer to apply stop strings
            return original_generate(*a, tokenizer=tokenizer, **kw)
        finally:
            timing["generate"] += time.perf_counter() - t

    model.generate = timed_generate
    record = {"per_step": [], "phases": {"generate": [], "grade": [], "train": [], "other": []}, "time_to_threshold": None}
    state = {"t0": None, "wall": 0.0}

    class Clock(TrainerCallback):
        def on_step_begin(self, a, s, c, **kw):
            timing["generate"] = timing["grade"] = 0.0
            state["t0"] = time.perf_counter()

        def on_step_end(self, a, s, c, **kw):
            dt = time.perf_counter() - state["t0"]
            state["wall"] += dt
            record["per_step"].append(dt)
            record["phases"]["generate"].append(timing["generate"])
            record["phases"]["grade"].append(timing["grade"])
            record["phases"]["other"].append(0.0)
            record["phases"]["train"].append(dt - timing["generate"] - timing["grade"])
            if s.global_step % args.eval_every == 0 or s.global_step == args.steps:
                acc = held_out_accuracy(model, tokenizer, eval_rows, args.max_new_tokens)
                record.setdefault("evals", []).append((s.global_step, acc))
                if acc >= args.threshold and record["time_to_threshold"] is None:
                    record["time_to_threshold"] = state["wall"]

    config = GRPOConfig(
        output_dir=str(out), loss_type="dr_grpo", scale_rewards="none", beta=0.0, num_generations=args.group,
        per_device_train_batch_size=args.prompts * args.group, gradient_accumulation_steps=1, num_iterations=1,
        max_completion_length=args.max_new_tokens, learning_rate=args.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, adam_beta2=0.999, max_grad_norm=1.0, temperature=1.0, top_p=1.0,
        seed=args.seed, max_steps=args.steps, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        bf16=False, disable_dropout=True, generation_kwargs={"stop_strings": list(TEMPLATE.stop)},
    )
    record["base_acc"] = held_out_accuracy(model, tokenizer, eval_rows, args.max_new_tokens)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=dataset, processing_class=tokenizer,
                          callbacks=[Clock()])
    trainer.train()
    record["final_acc"] = record["evals"][-1][1]
    return record


def summarize(name: str, runs: list[dict]) -> dict:
    per_step = [t for r in runs for t in r["per_step"]]
    phases = {p: statistics.fmean([t for r in runs for t in r["phases"][p]]) for p in ("generate", "grade", "train", "other")}
    reach = [r["time_to_threshold"] for r in runs]
    reach_med = statistics.median(reach) if all(x is not None for x in reach) else None
    s = {"name": name, "median": statistics.median(per_step), "min": min(per_step), "max": max(per_step), "phases": phases,
         "time_to_threshold": reach_med, "base_acc": runs[0]["base_acc"], "final_acc": statistics.fmean(r["final_acc"] for r in runs)}
    step = statistics.fmean(per_step)
    outside = phases["other"] + phases["grade"]
    print(f"{name:<8} step s: median {s['median']:.2f}  min {s['min']:.2f}  max {s['max']:.2f} | "
          f"generate {phases['generate']:.2f}  grade {phases['grade']:.2f}  train {phases['train']:.2f}  other {phases['other']:.2f} "
          f"({100 * outside / step:.1f}% outside generation and forward/backward) | accuracy {s['base_acc']:.3f} -> {s['final_acc']:.3f} | "
          f"time to {args_threshold:.2f}: {'%.1f s' % reach_med if reach_med is not None else 'not reached'}")
    return s


def main():
    global args_threshold
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (drzero, TRL, drzero, TRL, ...)")
    ap.add_argument("--prompts", type=int, default=16, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="samples per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--eval-questions", type=int, default=200)
    ap.add_argument("--threshold", type=float, default=0.4, help="held-out greedy accuracy to reach (base model: 4%%)")
    args = ap.parse_args()
    args_threshold = args.threshold
    torch.set_num_threads(2)
    eval_rows = load_split("test")[: args.eval_questions]
    results = {"drzero": [], "trl": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}: drzero", flush=True)
            results["drzero"].append(run_drzero(args, eval_rows, Path(tmp) / f"drzero-{r}"))
            print(f"round {r + 1}/{args.rounds}: TRL GRPOTrainer", flush=True)
            results["trl"].append(run_trl(args, eval_rows, Path(tmp) / f"trl-{r}"))
    print()
    ours, theirs = summarize("drzero", results["drzero"]), summarize("trl", results["trl"])
    step_ratio = ours["median"] / theirs["median"]
    if ours["time_to_threshold"] is not None and theirs["time_to_threshold"] is not None:
        tta = ours["time_to_threshold"] / theirs["time_to_threshold"]
    elif ours["time_to_threshold"] is not None:
        tta = 0.0  # TRL never reached the threshold within the step budget
    else:
        tta = float("inf")
    print(f"step_time_ratio {step_ratio:.3f}")
    print(f"time_to_accuracy_ratio {tta:.3f}")


if __name__ == "__main__":
    main()
