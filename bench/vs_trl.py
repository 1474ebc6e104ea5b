"""drzero vs Hugging Face TRL's GRPOTrainer on identical work, in alternating rounds.

Needs the extra `trl` (``pip install -e ".[trl]"``); installs nothing itself.

    python bench/vs_trl.py --rounds 3          # drzero, TRL, drzero, TRL, drzero, TRL
    python bench/vs_trl.py --rounds 1 --steps 10

Both train the bundled toy base model on the toy questions with Dr. GRPO (TRL:
``loss_type="dr_grpo"``, ``scale_rewards="none"``, ``beta=0``), drzero's grader as the
reward, the same template (r1, generation stopping at ``</answer>`` in both), group size,
prompts per step, max new tokens, learning rate, seed and torch threads, on this machine.

Each run is its own subprocess, so each side's peak resident memory (the trainer
process's ``ru_maxrss``, read when training ends) is its own. Rounds alternate the two
sides so that a change in the machine's load hits both.

Time to accuracy, read every step at no cost to the timed run: every run saves its
weights after every step (outside the timed work; the model is 7 MB), and after the run
this process evaluates them in step order, with one evaluator for both sides (greedy,
``--eval-questions`` held-out toy questions), until the first step at or above
``--threshold``, then the last step. Time to accuracy is the summed step time up to that
first step.

Prints per round: each side's median step time and per-phase means (generate, grade,
train, other), time to accuracy, peak RSS and the ratios; then the medians over rounds,
ending with the two lines ``step_time_ratio R`` and ``time_to_accuracy_ratio R``
(medians of the per-round ratios, drzero over TRL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE_NAME = "r1"  # the toy default: RL has to teach the format, accuracy moves fast
PHASES = ("generate", "grade", "train", "other")


# ----------------------------------------------------------------------------- the two trainers (one per subprocess)
def run_drzero(args, out: Path) -> dict:
    """drzero's own loop, ``train(cfg)``. Its per-step evaluation hook is replaced by a
    weight snapshot (timed as ``time/eval``, which is left out of the step time)."""
    import torch

    import drzero.train
    from drzero.config import TrainConfig

    def snapshot(s):
        step = sum(1 for _ in out.glob("snap-*.pt"))  # 0 = the initial weights, then one per step
        torch.save({k: v.detach().clone() for k, v in s.model.state_dict().items()}, out / f"snap-{step:04d}.pt")
        return {}

    drzero.train.evaluate_policy = snapshot
    cfg = TrainConfig(model="toy", algo="dr_grpo", template=TEMPLATE_NAME, dataset="toy:train", output_dir=str(out / "run"),
                      max_steps=args.steps, prompts_per_step=args.prompts, group_size=args.group,
                      micro_batch_size=args.micro_batch_size, max_new_tokens=args.max_new_tokens, lr=args.lr,
                      seed=args.seed, eval_datasets="toy:test", eval_limit=1, eval_every=1, save_every=0,
                      progress=False, grader_workers=2)
    drzero.train.train(cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB, before anything else runs
    metrics = [json.loads(x) for x in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = []
    for m in (m for m in metrics if "time/step" in m and m["step"] > 0):
        t = m["time/step"] - m.get("time/eval", 0.0)
        phases = {p: m[f"time/{p}"] for p in ("generate", "grade", "train")}
        phases["other"] = t - sum(phases.values())
        steps.append({"step": m["step"], "time": t, **phases})
    return {"steps": steps, "peak_rss_mib": peak}


def run_trl(args, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from drzero.data import load_toy_split
    from drzero.grader import grade_batch
    from drzero.models import load_model_and_tokenizer
    from drzero.templates import TEMPLATES

    template = TEMPLATES[TEMPLATE_NAME]
    model, tokenizer = load_model_and_tokenizer("toy")
    dataset = Dataset.from_list([{"prompt": template.render(r["problem"]), "answer": r["answer"]}
                                 for r in load_toy_split("train")])
    timing = {"generate": 0.0, "grade": 0.0}

    def reward(completions, answer, **kwargs):
        t = time.perf_counter()
        grades = grade_batch(list(completions), list(answer), answer_format=template.answer_format, workers=2)
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
    steps: list[dict] = []
    clock = {"t0": 0.0}

    def snapshot(step: int) -> None:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"snap-{step:04d}.pt")

    class Clock(TrainerCallback):
        def on_step_begin(self, a, s, c, **kw):
            timing["generate"] = timing["grade"] = 0.0
            clock["t0"] = time.perf_counter()

        def on_step_end(self, a, s, c, **kw):
            dt = time.perf_counter() - clock["t0"]  # read first: the snapshot is not timed
            steps.append({"step": s.global_step, "time": dt, "generate": timing["generate"], "grade": timing["grade"],
                          "train": dt - timing["generate"] - timing["grade"], "other": 0.0})
            snapshot(s.global_step)

    config = GRPOConfig(
        output_dir=str(out / "run"), loss_type="dr_grpo", scale_rewards="none", beta=0.0, num_generations=args.group,
        per_device_train_batch_size=args.prompts * args.group, gradient_accumulation_steps=1, num_iterations=1,
        max_completion_length=args.max_new_tokens, learning_rate=args.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, adam_beta2=0.999, max_grad_norm=1.0, temperature=1.0, top_p=1.0,
        seed=args.seed, max_steps=args.steps, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        bf16=False, disable_dropout=True, generation_kwargs={"stop_strings": list(template.stop)},
    )
    snapshot(0)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=dataset, processing_class=tokenizer,
                          callbacks=[Clock()])
    trainer.train()
    return {"steps": steps, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ----------------------------------------------------------------------------- evaluation of the snapshots (this process)
def held_out_curve(args, out: Path, n_steps: int) -> dict[int, float]:
    """Greedy accuracy of the saved weights, in step order, until the first step at or above
    the threshold (then the last step): ``{step: accuracy}``."""
    import torch

    from drzero.data import load_toy_split
    from drzero.evaluate import evaluate_rows
    from drzero.grader import Grader
    from drzero.models import load_model_and_tokenizer
    from drzero.rollout.hf import HFEngine
    from drzero.templates import TEMPLATES

    model, tok = load_model_and_tokenizer("toy")
    engine = HFEngine(model, tok, batch_size=256)
    rows = load_toy_split("test")[: args.eval_questions]
    curve: dict[int, float] = {}

    def accuracy(step: int) -> float:
        model.load_state_dict(torch.load(out / f"snap-{step:04d}.pt"))
        res = evaluate_rows(engine, rows, TEMPLATES[TEMPLATE_NAME], n=1, temperature=0.0,
                            max_new_tokens=args.max_new_tokens, grader=Grader(workers=2))
        return res.metrics["accuracy"]

    for step in range(n_steps + 1):
        curve[step] = accuracy(step)
        if curve[step] >= args.threshold:
            break
    if n_steps not in curve:
        curve[n_steps] = accuracy(n_steps)
    return curve


def summarize_run(args, record: dict, curve: dict[int, float]) -> dict:
    steps = record["steps"]
    times = [s["time"] for s in steps]
    reach_step = next((k for k in sorted(curve) if k > 0 and curve[k] >= args.threshold), None)
    tta = sum(s["time"] for s in steps if s["step"] <= reach_step) if reach_step is not None else None
    return {"median_step_s": statistics.median(times), "mean_step_s": statistics.fmean(times),
            "phases": {p: statistics.fmean(s[p] for s in steps) for p in PHASES}, "time_to_accuracy_s": tta,
            "reach_step": reach_step, "base_acc": curve[0], "final_acc": curve[max(curve)],
            "peak_rss_mib": record["peak_rss_mib"]}


def describe(name: str, s: dict, threshold: float) -> str:
    ph = s["phases"]
    outside = 100 * ph["other"] / s["mean_step_s"]
    reach = (f"{s['time_to_accuracy_s']:.1f} s (step {s['reach_step']})" if s["time_to_accuracy_s"] is not None
             else "not reached")
    return (f"  {name:<7} step s: median {s['median_step_s']:.2f} | generate {ph['generate']:.2f}  grade {ph['grade']:.2f}  "
            f"train {ph['train']:.2f}  other {ph['other']:.3f} ({outside:.1f}% outside generation, forward/backward and "
            f"grading) | "
            f"accuracy {s['base_acc']:.3f} -> {s['final_acc']:.3f} | time to {threshold:.2f}: {reach} | "
            f"peak RSS {s['peak_rss_mib']:.0f} MiB")


def ratio(a, b) -> float:
    if a is not None and b is not None:
        return a / b
    if a is None and b is None:
        return float("nan")  # neither reached the threshold
    return 0.0 if a is not None else float("inf")  # only drzero reached it / only TRL did


def load() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (drzero, TRL, drzero, TRL, ...)")
    ap.add_argument("--prompts", type=int, default=16, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="samples per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads, both sides (see docs/performance.md)")
    ap.add_argument("--micro-batch-size", type=int, default=32, help="drzero's micro-batch (TRL: one batch of all)")
    ap.add_argument("--eval-questions", type=int, default=200)
    ap.add_argument("--threshold", type=float, default=0.4, help="held-out greedy accuracy to reach (base model: 4%%)")
    ap.add_argument("--worker", choices=["drzero", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:  # one training run in this process
        import torch

        torch.set_num_threads(args.threads)
        out = Path(args.out)
        record = (run_drzero if args.worker == "drzero" else run_trl)(args, out)
        (out / "record.json").write_text(json.dumps(record))
        return

    import torch

    torch.set_num_threads(args.threads)
    forwarded = sys.argv[1:]
    summaries: dict[str, list[dict]] = {"drzero": [], "trl": []}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds} ({load()})", flush=True)
            for side in ("drzero", "trl"):
                out = Path(tmp) / f"{side}-{r}"
                out.mkdir()
                t = time.perf_counter()
                done = subprocess.run([sys.executable, __file__, *forwarded, "--worker", side, "--out", str(out)],
                                      capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
                if done.returncode != 0:
                    sys.exit(f"{side} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
                wall = time.perf_counter() - t
                record = json.loads((out / "record.json").read_text())
                t = time.perf_counter()
                curve = held_out_curve(args, out, args.steps)
                s = summarize_run(args, record, curve)
                s["curve"], s["run_wall_s"], s["eval_wall_s"] = curve, wall, time.perf_counter() - t
                summaries[side].append(s)
                for f in out.glob("snap-*.pt"):
                    f.unlink()
                print(describe(side, s, args.threshold) + f" | run {wall:.0f} s, evaluation {s['eval_wall_s']:.0f} s "
                      f"({len(curve)} points; {load()})", flush=True)
            ours, theirs = summaries["drzero"][-1], summaries["trl"][-1]
            rows.append((ours["median_step_s"] / theirs["median_step_s"],
                         ratio(ours["time_to_accuracy_s"], theirs["time_to_accuracy_s"]),
                         ours["peak_rss_mib"] / theirs["peak_rss_mib"]))
            print(f"  round {r + 1}: step_time_ratio {rows[-1][0]:.3f}  time_to_accuracy_ratio {rows[-1][1]:.3f}  "
                  f"peak_rss_ratio {rows[-1][2]:.3f}", flush=True)
    print()
    for side, runs in summaries.items():
        med = lambda key: statistics.median(x[key] for x in runs)  # noqa: E731
        reach = [x["time_to_accuracy_s"] for x in runs]
        reach_text = f"{statistics.median(reach):.1f} s" if all(x is not None for x in reach) else "not reached every round"
        ph = {p: statistics.median(x["phases"][p] for x in runs) for p in PHASES}
        outside = 100 * ph["other"] / med("mean_step_s")
        print(f"{side:<7} median of {len(runs)} rounds: step {med('median_step_s'):.2f} s (generate {ph['generate']:.2f}, "
              f"grade {ph['grade']:.2f}, train {ph['train']:.2f}, other {ph['other']:.3f}; {outside:.1f}% outside "
              f"generation, forward/backward and grading); time to {args.threshold:.2f}: {reach_text}; "
              f"peak RSS {med('peak_rss_mib'):.0f} MiB")
    print(f"peak_rss_ratio {statistics.median(r[2] for r in rows):.3f}")
    print(f"step_time_ratio {statistics.median(r[0] for r in rows):.3f}")
    print(f"time_to_accuracy_ratio {statistics.median(r[1] for r in rows):.3f}")


if __name__ == "__main__":
    main()
