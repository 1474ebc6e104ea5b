"""Evaluation: questions x policy -> accuracy (avg@n), pass@k, lengths, format and
truncation rates; ``drzero eval`` prints a table per benchmark and writes results.json and
samples.jsonl. Training's periodic evaluation, the probe and the toy model card use the
same functions.

    drzero eval --model toy --benchmarks math500 --limit 50 --output runs/eval-toy

Nothing finished is lost: samples.jsonl grows (fsynced) after every chunk of --batch-size
questions and results.json is replaced atomically after every benchmark; the same command
with the same --output resumes an interrupted eval (``drzero.eval_output``). The paper's
table for ``--paper`` is ``drzero.paper_table``.

The paper's protocol (Sec. 5): greedy decoding, a 3000-token budget, the mean over
AIME24 / AMC / MATH500 / Minerva / OlympiadBench of per-benchmark accuracy.
"""

from __future__ import annotations

import dataclasses
import math
import signal
from dataclasses import dataclass
from pathlib import Path

from drzero import checkpoint, signals
from drzero.analysis import is_answering, mean_or_nan, pass_at_k
from drzero.config import EvalConfig
from drzero.errors import DrZeroError
from drzero.eval_output import EvalOutput, previous_batch_size
from drzero.grader import Grader
from drzero.paper_table import paper_comparison, print_paper_table
from drzero.parsing import validate
from drzero.rollout import Rollouts, SamplingParams, default_batch_size, generate_and_grade, load_engine
from drzero.templates import Template


@dataclass
class EvalResult:
    metrics: dict
    samples: list[dict]


def evaluate_rows(
    engine,
    rows: list[dict],
    template: Template,
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 3000,
    grader: Grader = Grader(),
    seed: int = 0,
    chunk_size: int | None = None,
    on_progress=None,
    done_samples: list[dict] | None = None,
    on_chunk=None,
    reward_fn=None,
    reward_mode: str = "add",
) -> EvalResult:
    """Generate ``n`` responses per row, grade them, and aggregate.

    ``chunk_size`` questions are generated at a time; after each chunk its samples go to
    ``on_chunk(samples)`` and progress to ``on_progress(done_questions)``. ``done_samples``
    are the samples of whole chunks an interrupted run already finished: those chunks are
    skipped (each chunk is generated exactly as in one uninterrupted pass). With a
    ``reward_fn`` (``drzero.reward``) every sample also records its reward and the metrics
    its mean, ``reward_mean``."""
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            stop=template.stop, seed=seed)
    chunk_size = chunk_size or len(rows) or 1
    samples: list[dict] = list(done_samples or [])
    first = len({s["index"] for s in samples})
    if first % chunk_size and first != len(rows):
        raise ValueError(f"done_samples cover {first} questions, not whole chunks of {chunk_size}")
    if on_progress and first:
        on_progress(first)
    for start in range(first, len(rows), chunk_size):
        batch = generate_and_grade(engine, rows[start : start + chunk_size], template, params, grader, reward_fn,
                                   reward_mode)
        new = [{
            "index": start + g.prompt_index, "question": row["problem"], "reference": row["answer"],
            "response": g.text, "extracted": gr.extracted, "correct": gr.correct, "formatted": gr.formatted,
            "length": len(g.token_ids), "finish_reason": g.finish_reason, "timed_out": gr.timed_out,
            **({"reward": reward} if reward_fn is not None else {}),
        } for g, gr, row, reward in zip(batch.generations, batch.grades, batch.rows, batch.rewards.tolist())]
        samples.extend(new)
        if on_chunk:
            on_chunk(new)
        if on_progress:
            on_progress(min(start + chunk_size, len(rows)))
    return EvalResult(aggregate(samples, n), samples) if samples else EvalResult({"n_questions": 0}, [])


def aggregate(samples: list[dict], n: int) -> dict:
    """Metrics from per-response samples (``index`` groups the n samples of a question)."""
    by_q: dict[int, list[dict]] = {}
    for s in samples:
        by_q.setdefault(s["index"], []).append(s)
    correct = [s for s in samples if s["correct"]]
    wrong = [s for s in samples if not s["correct"]]
    metrics = {
        "n_questions": len(by_q),
        "n_samples": n,
        "accuracy": mean_or_nan(s["correct"] for s in samples),
        "format_rate": mean_or_nan(s["formatted"] for s in samples),
        "truncation_rate": mean_or_nan(s["finish_reason"] == "length" for s in samples),
        "length_mean": mean_or_nan(s["length"] for s in samples),
        "length_correct": mean_or_nan(s["length"] for s in correct),
        "length_incorrect": mean_or_nan(s["length"] for s in wrong),
        "grader_timeouts": sum(s.get("timed_out", False) for s in samples),
    }
    if any("reward" in s for s in samples):
        metrics["reward_mean"] = mean_or_nan(s["reward"] for s in samples)
    for k in range(1, n + 1):
        metrics[f"pass@{k}"] = mean_or_nan(pass_at_k(len(v), sum(x["correct"] for x in v), k) for v in by_q.values())
    return metrics


def greedy_template_stats(engine, rows: list[dict], template: Template, *, max_new_tokens: int,
                          grader: Grader = Grader()) -> tuple[dict, Rollouts]:
    """Greedy responses to ``rows`` under ``template`` and what the probe and the toy model
    card report of them: (stats, the graded responses)."""
    batch = generate_and_grade(engine, rows, template,
                               SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=template.stop),
                               grader)
    stats = {
        "greedy_accuracy": mean_or_nan(g.correct for g in batch.grades),
        "answering_rate": mean_or_nan(is_answering(g.text) for g in batch.generations),
        "format_rate": mean_or_nan(g.formatted for g in batch.grades),
        "length_mean": batch.lengths.mean().item(),
        "truncation_rate": batch.truncated.float().mean().item(),
    }
    return stats, batch


def sampled_pass_at_k(engine, rows: list[dict], template: Template, *, n: int, temperature: float, max_new_tokens: int,
                      seed: int, grader: Grader = Grader()) -> tuple[dict, Rollouts]:
    """``n`` samples per row at ``temperature``: ({"pass@k": ...} for k = 1..n, the graded responses)."""
    batch = generate_and_grade(engine, rows, template,
                               SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                                              stop=template.stop, seed=seed), grader)
    per_q = [sum(g.correct for g in batch.grades[i * n : (i + 1) * n]) for i in range(len(rows))]
    return {f"pass@{k}": mean_or_nan(pass_at_k(n, c, k) for c in per_q) for k in range(1, n + 1)}, batch


# ----------------------------------------------------------------------------- drzero eval
def run_eval(cfg: EvalConfig, console=None) -> dict:
    """``drzero eval``: every benchmark, a table, results.json and samples.jsonl.

    Finished work is kept as it completes (``EvalOutput``): the samples of every chunk of
    ``--batch-size`` questions, fsynced, and each finished benchmark's metrics. Run the same
    command with the same ``--output`` after an interruption and it carries on from there,
    ending with the results an uninterrupted eval gives."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from drzero import dist
    from drzero.data import load_questions
    from drzero.reward import load_reward_function
    from drzero.rollout.openai_endpoint import api_key_from_env
    from drzero.models import load_template

    validate(cfg)  # flags, model, names and --output, before anything is loaded or written
    console = console or Console()
    device = dist.resolve_device(cfg.device)
    if cfg.batch_size is None:
        guess = previous_batch_size(cfg.output) or default_batch_size(
            cfg.model, engine=cfg.engine, endpoint=cfg.endpoint, n=cfg.n, max_new_tokens=cfg.max_new_tokens, device=device)
        cfg = dataclasses.replace(cfg, batch_size=guess)
    template = load_template(eval_template_name(cfg), cfg.model, cfg.system_prompt)
    names = [b.strip() for b in cfg.benchmarks.split(",") if b.strip()]
    datasets = {name: load_questions(name, question_column=cfg.question_column, answer_column=cfg.answer_column,
                                     limit=cfg.limit, dataset_config=cfg.dataset_config,
                                     dataset_filter=cfg.dataset_filter)
                for name in names}  # fail on a bad name before loading a model
    if cfg.max_prompt_tokens and not cfg.endpoint:  # over-long questions dropped (an endpoint's server has a limit)
        from drzero.data.length import drop_long_prompts, load_tokenizer

        counter = load_tokenizer(cfg.model)
        datasets = {name: drop_long_prompts(rows, [template], counter, cfg.max_prompt_tokens, name, log=console.print)
                    for name, rows in datasets.items()}
    reward_fn = load_reward_function(cfg.reward, timeout_s=cfg.reward_timeout_s) if cfg.reward else None
    grader = make_grader(cfg)
    output = EvalOutput(Path(cfg.output), cfg, template=template.name, grader=grader.mode)
    checkpoint.check_path_fits(Path(cfg.output), "--output", "endpoint_cache.jsonl")  # before anything runs
    if checkpoint.folder_kind(Path(cfg.output)) == "train":  # never mix an eval into a training run's files
        raise DrZeroError(f"--output {cfg.output} holds a drzero training run; give the eval its own --output")
    checkpoint.lock_run_dir(Path(cfg.output), then="then run the same command again")  # one writer (if it exists yet)
    done = output.finished(datasets)
    if any(len(done[name]) < len(rows) * cfg.n for name, rows in datasets.items()):
        threads = cfg.decode_threads
        if cfg.engine == "hf" and not cfg.endpoint:  # a model decoded here by the HF engine
            from drzero.rollout.hf import eval_decode_threads

            threads = eval_decode_threads(cfg.decode_threads, device, greedy=cfg.temperature == 0)
            if threads and cfg.decode_threads is None:
                console.print(f"decoding on {threads} CPU threads (they were idle; --decode-threads 1 on a shared machine)")
        engine = load_engine(cfg.model, engine=cfg.engine, endpoint=cfg.endpoint,
                             api_key=api_key_from_env(cfg.api_key_env, "--api-key-env"),
                             device=device, batch_size=max(cfg.batch_size * cfg.n, 1),
                             cache_path=str(Path(cfg.output) / "endpoint_cache.jsonl"), concurrency=cfg.concurrency,
                             timeout_s=cfg.request_timeout_s, retries=cfg.retries,
                             tensor_parallel_size=cfg.tensor_parallel_size, vllm_memory=cfg.vllm_memory, seed=cfg.seed,
                             decode_threads=threads)
    else:
        engine = None  # everything is already done: nothing to load
    Path(cfg.output).mkdir(parents=True, exist_ok=True)  # one writer per folder: the run folders' lock (.lock) ...
    checkpoint.lock_run_dir(Path(cfg.output), then="then run the same command again")
    done = output.finished(datasets)  # ... and what is there read again under it
    checkpoint.mark_folder(Path(cfg.output), "eval")
    if output.resumed:
        console.print(f"resuming {cfg.output}: {output.describe(done)} already done")
    output.open(done)
    stop = signals.Preemption(notice=None)  # a signal stops the eval at once; the finished chunks are on disk
    try:
        with stop, stop.abandonable(), Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                                TimeRemainingColumn(), console=console) as progress:
            for name, rows in datasets.items():
                task = progress.add_task(name, total=len(rows))
                res = evaluate_rows(engine, rows, template, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                    max_new_tokens=cfg.max_new_tokens, grader=grader, seed=cfg.seed,
                                    chunk_size=cfg.batch_size, done_samples=done[name],
                                    on_chunk=lambda samples, name=name: output.add_samples(name, samples),
                                    on_progress=lambda n_done, t=task: progress.update(t, completed=n_done),
                                    reward_fn=reward_fn, reward_mode=cfg.reward_mode)
                output.finish_benchmark(name, res.metrics)
    except (KeyboardInterrupt, signals.Abandon):  # SIGINT, SIGTERM, SIGUSR1: say what is kept, status "interrupted"
        signum = stop.signum or signal.SIGINT
        output.mark_interrupted()
        raise signals.Interrupted(f"interrupted by {signals.name(signum)}: {output.kept()}; run the same command "
                                  "again to resume", signals.exit_code(signum)) from None
    except DrZeroError as e:  # e.g. an endpoint that died late: the finished work stays
        if not output.has_work():
            raise
        raise DrZeroError(f"{e}; {output.kept()}; run the same command again to resume") from None
    finally:
        output.close()
    results = output.complete(paper=paper_comparison if cfg.paper else None)
    print_table(results, cfg.n, console)
    if cfg.paper:
        print_paper_table(results["paper"], console)
    console.print(f"wrote {Path(cfg.output) / 'results.json'} and {Path(cfg.output) / 'samples.jsonl'}")
    return results


def print_table(results: dict, n: int, console) -> None:
    from rich.table import Table

    table = Table(title="drzero eval")
    cols = ["benchmark", "questions", "accuracy"] + [f"pass@{k}" for k in range(2, n + 1)] + [
        "len correct", "len incorrect", "format", "truncated"]
    for c in cols:
        table.add_column(c, justify="right" if c != "benchmark" else "left")

    def pct(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"

    def num(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0f}"

    for name, m in results["benchmarks"].items():
        table.add_row(name, str(m.get("n_questions", 0)), pct(m.get("accuracy")),
                      *[pct(m.get(f"pass@{k}")) for k in range(2, n + 1)],
                      num(m.get("length_correct")), num(m.get("length_incorrect")), pct(m.get("format_rate")),
                      pct(m.get("truncation_rate")))
    table.add_row("average", "", pct(results["average_accuracy"]), *[""] * (len(cols) - 3), style="bold")
    console.print(table)


def eval_template_name(cfg: EvalConfig) -> str:
    """The template of a ``drzero eval`` run: --template if given, else with --paper the
    paper's template for the model (``drzero.templates.paper_template``), else qwen_math."""
    from drzero.templates import paper_template

    if cfg.template:
        return cfg.template
    return paper_template(cfg.model) if cfg.paper else "qwen_math"


def make_grader(cfg: EvalConfig) -> Grader:
    """The grader of an eval run: --grader if given, else the paper's rules with --paper, else drzero's."""
    return Grader(workers=cfg.grader_workers, timeout_s=cfg.grader_timeout_s,
                  mode=cfg.grader or ("paper" if cfg.paper else "drzero"))
