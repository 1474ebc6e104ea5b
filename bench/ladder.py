"""How drzero's lead over TRL's GRPOTrainer holds as the work grows: a ladder over model size
x response length, drzero and TRL in alternating rounds on identical work.

Needs the extra `trl` (``pip install -e ".[trl]"``); installs nothing itself.

    python bench/ladder.py                                   # the whole grid, cheap points first, into bench/ladder.json
    python bench/ladder.py --sizes toy,10m --lengths 128     # a part of it
    python bench/ladder.py --plot docs/img/ladder.png        # the plot from the JSON, runs nothing

Grid: model size (``toy``, the bundled 1.7M-parameter toy; ``10m``, ``50m``, ``150m``,
random-init Qwen2 shapes, the two largest with Qwen2.5's real vocabulary of 151,936) x
response length (128, 512, 1,024 tokens). Points run in order of their cost (parameters x
length), and each finished run is written to the JSON at once: a stopped ladder resumes
where it stopped when started again with the same ``--out``.

Identical work on both sides, each run in its own subprocess from the same model folder
(built once, seed 0, under ``--models``): the toy questions in the r1 template; Dr. GRPO
(TRL: ``loss_type="dr_grpo"``, ``scale_rewards="none"``), ``beta=0``; the same reward
(``crc_reward``, a checksum of the response text, so that advantages are not all zero);
``--prompts`` x ``--group`` responses per step, one optimizer step per step, micro-batches
of ``--micro-batch-size`` responses on both sides (TRL: ``per_device_train_batch_size``,
with ``gradient_accumulation_steps`` making up the step); AdamW, lr 5e-5 constant, grad
clip 1.0, float32, seed 0, one torch thread.

**No response stops early.** A random-init model never ends a response on purpose, and
its samples would hit EOS only by chance; to make every point the same worst case, both
sides run every response to the budget: drzero's engine gets no stop tokens and the
template no stop string, TRL's ``generate`` suppresses the EOS ids. The toy (a trained
model, which would stop) runs to the budget in the same way. Every step generates exactly
prompts x group x length tokens on both sides (checked, and printed).

Per point and side: the step time (median of the steps after the first, which also warms
up), its split into generate / grade / train (TRL: the rest of the step after generate and
grade), generated tokens per second of step, the trainer process's peak RSS, and
``step_time_ratio`` (drzero / TRL, median over rounds). A point is left out, and named, when
a run's resident memory passes ``--max-rss-gib`` or a step takes over ``--max-step-s``
(the run is stopped), or when the previous length of the same size predicts it would.
The load average is printed and stored beside every run: on a shared machine absolute
times move with it; alternating the sides keeps the ratio fair.
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
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_NAME = "r1"
QWEN25_VOCAB = 151936
# Random-init Qwen2 shapes (architecture only). ``vocab_size=None``: the toy tokenizer's own (517).
SIZES = {
    "toy": None,  # the bundled toy checkpoint, 1.7M parameters
    "10m": dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                num_key_value_heads=2, vocab_size=None),
    "50m": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=8, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=QWEN25_VOCAB),
    "150m": dict(hidden_size=512, intermediate_size=2560, num_hidden_layers=16, num_attention_heads=8,
                 num_key_value_heads=2, vocab_size=QWEN25_VOCAB),
}
LENGTHS = (128, 512, 1024)
PHASES = ("generate", "grade", "train")


def crc_reward(responses, references=None, rows=None, **kwargs) -> list[float]:
    """1 or 0 from a checksum of the response text: deterministic, the same on both sides,
    and mixed within a group, so the update is not all zeros. Cost: nothing."""
    return [float(zlib.crc32(r.encode()) % 2) for r in responses]


# ----------------------------------------------------------------------------- the model folders
def model_folder(size: str, models_dir: Path) -> Path:
    """The model both sides load: the toy checkpoint, or a random-init shape saved once
    (seed 0) with the toy tokenizer. A vocabulary larger than the tokenizer's is padding,
    as in Qwen2.5 itself (151,936 rows over 151,665 tokenizer ids): ids past the tokenizer
    decode to nothing."""
    from drzero.models import resolve_model_path

    if SIZES[size] is None:
        return Path(resolve_model_path("toy"))
    path = models_dir / size
    if (path / "config.json").exists():
        return path
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("toy"))
    shape = dict(SIZES[size])
    shape["vocab_size"] = shape["vocab_size"] or len(tokenizer)
    torch.manual_seed(0)
    config = Qwen2Config(**shape, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True, bos_token_id=tokenizer.eos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    tmp = path.with_name(path.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(path)
    return path


def n_params(path: Path) -> int:
    cfg = json.loads((path / "config.json").read_text())
    d, f, layers, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    kv = d // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    per_layer = 2 * d * d + 2 * d * kv + d + 2 * kv + 3 * d * f + 2 * d  # q, o, k, v (+ biases), MLP, norms
    return layers * per_layer + d + v * d * (1 if cfg.get("tie_word_embeddings", True) else 2)


# ----------------------------------------------------------------------------- the two trainers (one per subprocess)
def run_drzero(args, model: Path, out: Path) -> dict:
    """drzero's own loop, ``train(cfg)``, with no stops, no evaluation and no checkpoint."""
    import dataclasses

    import drzero.rollout.hf
    import drzero.train
    from drzero.config import TrainConfig

    class NoStopEngine(drzero.rollout.hf.HFEngine):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.stop_token_ids = []  # every response runs to the budget (see the docstring)

    cpu = {"generate": [], "train": []}

    def cpu_timed(fn, phase):
        def wrapped(*a, **kw):
            c = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                cpu[phase].append(time.process_time() - c)
        return wrapped

    load_template = drzero.train.load_template
    drzero.train.generate_and_grade = cpu_timed(drzero.train.generate_and_grade, "generate")
    drzero.train.update_policy = cpu_timed(drzero.train.update_policy, "train")
    drzero.rollout.hf.HFEngine = NoStopEngine
    drzero.train.load_template = lambda *a, **kw: dataclasses.replace(load_template(*a, **kw), stop=())
    drzero.train.save_checkpoint = lambda s, step: None
    cfg = TrainConfig(model=str(model), algo="dr_grpo", template=TEMPLATE_NAME, dataset="toy:train",
                      output_dir=str(out / "run"), max_steps=args.steps, prompts_per_step=args.prompts,
                      group_size=args.group, micro_batch_size=args.micro_batch_size, max_new_tokens=args.length,
                      lr=args.lr, beta=0.0, seed=args.seed, eval_datasets="", save_every=0, progress=False,
                      reward=f"{Path(__file__).resolve()}:crc_reward", reward_mode="replace", grader_workers=1)
    drzero.train.train(cfg)
    peak = peak_rss_mib()
    steps = []
    for m in (json.loads(x) for x in (out / "run" / "metrics.jsonl").read_text().splitlines()):
        if "time/step" in m and m["step"] > 0:
            phases = {p: m[f"time/{p}"] for p in PHASES}
            tokens = round(m["time/tokens_per_s"] * m["time/generate"])
            i = len(steps)
            steps.append({"step": m["step"], "time": m["time/step"], **phases, "tokens": tokens,
                          "cpu": cpu["generate"][i] + cpu["train"][i], "cpu_generate": cpu["generate"][i],
                          "cpu_train": cpu["train"][i]})
    return {"steps": steps, "peak_rss_mib": peak}


def run_trl(args, model_path: Path, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from drzero.data import load_toy_split
    from drzero.templates import TEMPLATES

    template = TEMPLATES[TEMPLATE_NAME]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    dataset = Dataset.from_list([{"prompt": template.render(r["problem"]), "answer": r["answer"]}
                                 for r in load_toy_split("train")])
    timing = {"generate": 0.0, "grade": 0.0, "tokens": 0, "cpu_generate": 0.0}

    def reward(completions, **kwargs):
        t = time.perf_counter()
        out = crc_reward(list(completions))
        timing["grade"] += time.perf_counter() - t
        return out

    original_generate = model.generate

    def timed_generate(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        try:
            ids = original_generate(*a, **kw)
            timing["tokens"] += ids.numel() - kw["input_ids"].numel() if "input_ids" in kw else 0
            return ids
        finally:
            timing["generate"] += time.perf_counter() - t
            timing["cpu_generate"] += time.process_time() - c

    model.generate = timed_generate
    steps: list[dict] = []
    clock = {"t0": 0.0, "c0": 0.0}

    class Clock(TrainerCallback):
        def on_step_begin(self, a, s, c, **kw):
            if not clock["t0"]:
                timing["generate"] = timing["grade"] = timing["tokens"] = timing["cpu_generate"] = 0
                clock["t0"], clock["c0"] = time.perf_counter(), time.process_time()

        def on_step_end(self, a, s, c, **kw):
            dt, dc = time.perf_counter() - clock["t0"], time.process_time() - clock["c0"]
            steps.append({"step": s.global_step, "time": dt, "generate": timing["generate"], "grade": timing["grade"],
                          "train": dt - timing["generate"] - timing["grade"], "tokens": timing["tokens"], "cpu": dc,
                          "cpu_generate": timing["cpu_generate"], "cpu_train": dc - timing["cpu_generate"]})
            clock["t0"] = 0.0

    eos = sorted({tokenizer.eos_token_id, *([model.generation_config.eos_token_id] if isinstance(
        model.generation_config.eos_token_id, int) else model.generation_config.eos_token_id or [])})
    n = args.prompts * args.group
    config = GRPOConfig(
        output_dir=str(out / "run"), loss_type="dr_grpo", scale_rewards="none", beta=0.0, num_generations=args.group,
        per_device_train_batch_size=args.micro_batch_size, gradient_accumulation_steps=n // args.micro_batch_size,
        num_iterations=1, max_completion_length=args.length, learning_rate=args.lr, lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, adam_beta2=0.999, max_grad_norm=1.0, temperature=1.0, top_p=1.0,
        seed=args.seed, max_steps=args.steps, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        bf16=False, disable_dropout=True, generation_kwargs={"suppress_tokens": eos},
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=dataset, processing_class=tokenizer,
                          callbacks=[Clock()])
    trainer.train()
    return {"steps": steps, "peak_rss_mib": peak_rss_mib()}


# ----------------------------------------------------------------------------- one run, watched
def peak_rss_mib() -> float:
    """This process's peak resident memory (``VmHWM``). Not ``ru_maxrss``: Linux carries that
    across ``exec``, so a worker would report its parent's peak when the parent was larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


WORKER_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def add_workload_args(ap: argparse.ArgumentParser) -> None:
    """The per-step workload flags, and the hidden ones a worker process is started with
    (shared with bench/ladder_profile.py, which runs the same workers)."""
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps per run (the first is left out of the time)")
    ap.add_argument("--prompts", type=int, default=2, help="prompts per step")
    ap.add_argument("--group", type=int, default=4, help="samples per prompt")
    ap.add_argument("--micro-batch-size", type=int, default=4, help="responses per forward/backward, both sides")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", choices=["drzero", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    ap.add_argument("--length", type=int, help=argparse.SUPPRESS)


def worker_command(script: str, args, side: str, model: Path, out: Path, length: int) -> list[str]:
    """The command line that runs one side's training run in ``script`` (a worker process)."""
    return [sys.executable, script, "--worker", side, "--model-path", str(model), "--run-dir", str(out),
            "--length", str(length), "--steps", str(args.steps), "--prompts", str(args.prompts), "--group",
            str(args.group), "--micro-batch-size", str(args.micro_batch_size), "--lr", str(args.lr), "--seed",
            str(args.seed)]


def run_side(args, side: str, size: str, length: int, model: Path, tmp: Path) -> dict:
    """One training run in a subprocess, stopped when its memory passes ``--max-rss-gib`` or it
    outlasts ``--steps`` x ``--max-step-s`` (+ start-up). Returns its record, or
    ``{"left_out": reason}``."""
    out = Path(tempfile.mkdtemp(prefix=f"{side}-{size}-{length}-", dir=tmp))  # a fresh folder for every round
    cmd = worker_command(__file__, args, side, model, out, length)
    env = WORKER_ENV
    load_before = os.getloadavg()
    t = time.perf_counter()
    log = open(out / "log.txt", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    limit_s = args.steps * args.max_step_s + 180
    peak, reason, loads = 0.0, None, [load_before[0]]
    while proc.poll() is None:
        time.sleep(1.0)
        peak = max(peak, rss_mib(proc.pid))
        if len(loads) < 10_000 and int(time.perf_counter() - t) % 30 == 0:
            loads.append(os.getloadavg()[0])
        if peak > args.max_rss_gib * 1024:
            reason = f"{side}: resident memory passed {args.max_rss_gib:g} GiB"
        elif time.perf_counter() - t > limit_s:
            reason = f"{side}: over {args.max_step_s:.0f} s a step ({args.steps} steps not done in {limit_s:.0f} s)"
        if reason:
            proc.kill()
            proc.wait()
            break
    log.close()
    wall = time.perf_counter() - t
    if reason:
        return {"left_out": reason, "wall_s": wall}
    if proc.returncode != 0:
        sys.exit(f"{side} {size}/{length} failed:\n{(out / 'log.txt').read_text()[-5000:]}")
    record = json.loads((out / "record.json").read_text())
    record.update(wall_s=wall, load_start=round(load_before[0], 2), load_end=round(os.getloadavg()[0], 2),
                  load_mean=round(statistics.fmean(loads), 2))
    return record


def summarize(record: dict, expected_tokens: int) -> dict:
    timed = record["steps"][1:] or record["steps"]  # the first step also warms up (with --steps 1 it is all there is)
    med = lambda key: statistics.median(s[key] for s in timed)  # noqa: E731
    step = med("time")
    tokens = [s["tokens"] for s in record["steps"]]
    return {"step_s": step, **{p: med(p) for p in PHASES}, "tokens_per_s": expected_tokens / step,
            "cpu_s": med("cpu"), "cpu_generate": med("cpu_generate"), "cpu_train": med("cpu_train"),
            "peak_rss_mib": record["peak_rss_mib"], "all_to_budget": all(t == expected_tokens for t in tokens),
            "tokens": tokens, "steps_s": [round(s["time"], 3) for s in record["steps"]], "load_start": record["load_start"],
            "load_end": record["load_end"], "load_mean": record["load_mean"], "wall_s": round(record["wall_s"], 1)}


def describe(side: str, s: dict) -> str:
    return (f"    {side:<6} step {s['step_s']:8.2f} s | generate {s['generate']:7.2f}  grade {s['grade']:5.2f}  train "
            f"{s['train']:7.2f} | CPU {s['cpu_s']:8.2f} s (generate {s['cpu_generate']:.2f}, train "
            f"{s['cpu_train']:.2f}) | {s['tokens_per_s']:7.1f} tokens/s | peak RSS {s['peak_rss_mib']:6.0f} MiB | "
            f"all responses to the budget: {s['all_to_budget']} | load {s['load_start']:.1f} -> {s['load_end']:.1f} "
            f"(mean {s['load_mean']:.1f})")


# ----------------------------------------------------------------------------- the plot
def plot(results: dict, path: Path, extra: list[tuple[str, float, float]] = ()) -> None:
    """CPU-time ratio (drzero / TRL) against parameters, one line per response length; the
    wall-clock ratio of the same runs as faint dotted lines (under load it scatters).
    ``extra``: single points ``(label, parameters, ratio)`` drawn as stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    done = [p for p in results["points"].values() if p.get("cpu_time_ratio") is not None]
    for i, length in enumerate(LENGTHS):
        pts = sorted((p["params"], p["cpu_time_ratio"], p["step_time_ratio"]) for p in done if p["length"] == length)
        if pts:
            color = f"C{i}"
            ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], marker="o", color=color,
                    label=f"{length} tokens, CPU time")
            ax.plot([x for x, _, _ in pts], [w for _, _, w in pts], marker="x", ls=":", color=color, alpha=0.5,
                    label=f"{length} tokens, wall clock")
    for label, x, y in extra:
        ax.plot([x], [y], marker="*", ms=12, ls="none", color="C3", label=label)
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="goal 0.5")
    ax.axhline(1.0, color="black", lw=0.5)
    ax.set_xscale("log")
    ticks = sorted({p["params"] for p in results["points"].values()})
    ax.set_xticks(ticks, [f"{t / 1e6:.3g}M" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("parameters (the toy; random-init Qwen2; 47M and 151M: vocabulary 151,936)")
    ax.set_ylabel("per step, drzero / TRL GRPOTrainer")
    top = max([1.2] + [p["cpu_time_ratio"] for p in done])
    ax.set_ylim(0, min(top * 1.1, 3.0))
    ax.set_title("drzero vs TRL on identical work (lower is better)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def markdown(results: dict) -> str:
    """The ladder as a markdown table (docs/performance.md), from the JSON."""
    lines = ["| point | parameters | drzero CPU s/step (generate / train) | TRL CPU s/step (generate / train) | "
             "**CPU-time ratio** | wall ratio | tokens/s, wall (drzero / TRL) | peak RSS MiB (drzero / TRL) | "
             "load (drzero / TRL run) |", "|---|---|---|---|---|---|---|---|---|"]
    points = dict(results["points"])
    params = {p["size"]: p["params"] for p in points.values()}
    for size in SIZES:  # the grid's points that never started
        for length in LENGTHS:
            if size in params:
                points.setdefault(f"{size}/{length}", {"size": size, "length": length, "params": params[size]})
    for key, p in sorted(points.items(), key=lambda kv: (kv[1]["params"], kv[1]["length"])):
        if p.get("left_out") or not p.get("rounds"):
            why = f"left out: {p['left_out']}" if p.get("left_out") else "not run: not reached in the time"
            lines.append(f"| {key} | {p['params'] / 1e6:.1f}M | {why} | | | | | | |")
            continue
        for r in p["rounds"]:
            a, b = r["drzero"], r["trl"]
            lines.append(
                f"| {key} | {p['params'] / 1e6:.1f}M | {a['cpu_s']:.2f} ({a['cpu_generate']:.2f} / {a['cpu_train']:.2f}) | "
                f"{b['cpu_s']:.2f} ({b['cpu_generate']:.2f} / {b['cpu_train']:.2f}) | **{r['cpu_time_ratio']:.3f}** | "
                f"{r['step_time_ratio']:.3f} | {a['tokens_per_s']:.1f} / {b['tokens_per_s']:.1f} | "
                f"{a['peak_rss_mib']:.0f} / {b['peak_rss_mib']:.0f} | {a['load_mean']:.1f} / {b['load_mean']:.1f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def git_commit() -> str:
    """The drzero tree measured (HEAD, with ``+dirty`` when files differ from it)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "drzero"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, of: " + ", ".join(SIZES))
    ap.add_argument("--lengths", default=",".join(map(str, LENGTHS)), help="response lengths (tokens)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds per point (drzero, TRL, drzero, ...)")
    add_workload_args(ap)
    ap.add_argument("--max-step-s", type=float, default=600.0, help="a point whose step takes longer is left out")
    ap.add_argument("--max-rss-gib", type=float, default=8.0, help="a run whose resident memory passes this is stopped")
    ap.add_argument("--out", default=str(ROOT / "bench" / "ladder.json"), help="results, written after every run")
    ap.add_argument("--models", default=str(Path(tempfile.gettempdir()) / "drzero-ladder-models"),
                    help="where the random-init model folders are built (once)")
    ap.add_argument("--plot", help="only draw the plot from --out into this PNG (and print the markdown table)")
    args = ap.parse_args()

    if args.worker:  # one training run in this process
        import torch

        torch.set_num_threads(1)
        out = Path(args.run_dir)
        record = (run_drzero if args.worker == "drzero" else run_trl)(args, Path(args.model_path), out)
        (out / "record.json").write_text(json.dumps(record))
        return

    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {"points": {}}
    if args.plot:
        plot(results, Path(args.plot))
        print(markdown(results))
        print(f"wrote {args.plot}")
        return
    results["workload"] = {"prompts": args.prompts, "group": args.group, "micro_batch_size": args.micro_batch_size,
                           "steps": args.steps, "lr": args.lr, "threads": 1,
                           "note": "random-init models never stop: every response runs to the budget on both sides",
                           "commit": git_commit()}

    def save():
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(out_path)

    print("Every response runs to the budget on both sides (random-init models never emit EOS on purpose; "
          "EOS and stop strings are switched off on both sides, the toy's too).")
    print(f"workload: {args.prompts} prompts x {args.group} samples per step, micro-batch {args.micro_batch_size}, "
          f"{args.steps} steps per run ({'the first left out' if args.steps > 1 else 'warm-up included'}), "
          f"{args.rounds} round(s), 1 torch thread", flush=True)
    models_dir = Path(args.models)
    models_dir.mkdir(parents=True, exist_ok=True)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    lengths = [int(x) for x in args.lengths.split(",")]
    folders = {size: model_folder(size, models_dir) for size in sizes}
    grid = sorted(((n_params(folders[s]) * length, s, length) for s in sizes for length in lengths))
    expected = args.prompts * args.group
    with tempfile.TemporaryDirectory() as tmp:
        for _, size, length in grid:
            key = f"{size}/{length}"
            point = results["points"].setdefault(key, {"size": size, "length": length, "params": n_params(folders[size]),
                                                       "rounds": []})
            if point.get("left_out"):
                print(f"{key}: left out earlier ({point['left_out']})")
                continue
            shorter = [results["points"].get(f"{size}/{x}") for x in lengths if x < length]
            prev = next((p for p in reversed(shorter) if p and (p.get("rounds") or p.get("left_out"))), None)
            if prev and prev.get("left_out"):
                point["left_out"] = f"a shorter length of this size was left out ({prev['left_out']})"
            elif prev and prev["rounds"]:
                worst = max(r[side]["cpu_s"] for r in prev["rounds"] for side in ("drzero", "trl"))
                predicted = worst * length / prev["length"]  # at least linear in the length
                if predicted > args.max_step_s:
                    point["left_out"] = (f"predicted over {args.max_step_s:.0f} s a step ({worst:.0f} CPU s at "
                                         f"{prev['length']} tokens, x{length / prev['length']:.0f})")
            if point.get("left_out"):
                print(f"{key}: left out ({point['left_out']})", flush=True)
                save()
                continue
            for r in range(len(point["rounds"]), args.rounds):
                print(f"{key} ({point['params'] / 1e6:.1f}M parameters, {length} tokens), round {r + 1}/{args.rounds} "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                this = {}
                for side in ("drzero", "trl"):
                    record = run_side(args, side, size, length, folders[size], Path(tmp))
                    if "left_out" in record:
                        point["left_out"] = record["left_out"]
                        print(f"    left out: {record['left_out']}", flush=True)
                        break
                    this[side] = summarize(record, expected * length)
                    print(describe(side, this[side]), flush=True)
                if point.get("left_out"):
                    break
                this["workload"] = {"prompts": args.prompts, "group": args.group, "steps": args.steps,
                                    "micro_batch_size": args.micro_batch_size}
                this["step_time_ratio"] = this["drzero"]["step_s"] / this["trl"]["step_s"]
                this["cpu_time_ratio"] = this["drzero"]["cpu_s"] / this["trl"]["cpu_s"]
                point["rounds"].append(this)
                print(f"    round {r + 1}: step_time_ratio {this['step_time_ratio']:.3f}  cpu_time_ratio "
                      f"{this['cpu_time_ratio']:.3f}", flush=True)
                save()
            if point["rounds"] and not point.get("left_out"):
                point["step_time_ratio"] = statistics.median(r["step_time_ratio"] for r in point["rounds"])
                point["cpu_time_ratio"] = statistics.median(r["cpu_time_ratio"] for r in point["rounds"])
            save()
    print()
    print(f"{'point':<12} {'params':>8} {'drzero s':>9} {'TRL s':>9} {'ratio':>7} {'CPU s':>15} {'CPU ratio':>9}  load")
    for key, p in sorted(results["points"].items(), key=lambda kv: (kv[1]["params"], kv[1]["length"])):
        if p.get("left_out") or not p.get("rounds"):
            print(f"{key:<12} {p['params'] / 1e6:7.1f}M  left out: {p.get('left_out', 'not run')}")
            continue
        med = lambda side: statistics.median(r[side]["step_s"] for r in p["rounds"])  # noqa: E731
        cpu = lambda side: statistics.median(r[side]["cpu_s"] for r in p["rounds"])  # noqa: E731
        load = "/".join(f"{r['drzero']['load_mean']:.1f},{r['trl']['load_mean']:.1f}" for r in p["rounds"])
        print(f"{key:<12} {p['params'] / 1e6:7.1f}M {med('drzero'):9.2f} {med('trl'):9.2f} "
              f"{p['step_time_ratio']:7.3f} {cpu('drzero'):7.1f}/{cpu('trl'):<7.1f} {p['cpu_time_ratio']:9.3f}  {load}")
    print(f"\nresults in {out_path}")


if __name__ == "__main__":
    main()
