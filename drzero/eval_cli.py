"""``drzero eval``: benchmarks x model -> a table per benchmark, results.json, samples.jsonl."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from drzero.errors import DrZeroError

PAPER_BENCHMARKS = "aime24,amc,math500,minerva,olympiadbench"


@dataclass
class EvalConfig:
    """Evaluate a model on math benchmarks the way the paper reports them (greedy, 3000 tokens, mean over benchmarks)."""

    model: str = "toy"
    """Model: `toy`, a local Hugging Face checkpoint, a hub name, or the served model's name with --endpoint."""
    template: str = "qwen_math"
    """Prompt template: r1, qwen_math, none, or a custom string containing {question}."""
    benchmarks: str = PAPER_BENCHMARKS
    """Comma-separated: aime24, amc, math500, minerva, olympiadbench, toy:test, or dataset paths / hub names."""
    n: int = 1
    """Samples per question (accuracy is avg@n; pass@k reported for k = 1..n)."""
    temperature: float = 0.0
    """Sampling temperature (0 = greedy, the paper's protocol)."""
    top_p: float = 1.0
    """Nucleus sampling."""
    max_new_tokens: int = 3000
    """Generation budget per response (the paper: 3000)."""
    limit: int | None = None
    """Questions per benchmark (None = all)."""
    output: str = "runs/eval"
    """Folder for results.json and samples.jsonl."""
    question_column: str | None = None
    """Question column for non-bundled datasets."""
    answer_column: str | None = None
    """Answer column for non-bundled datasets."""
    endpoint: str | None = None
    """OpenAI-compatible server URL (e.g. http://host:8000/v1) instead of loading the model here."""
    api_key_env: str | None = None
    """Name of the environment variable holding the endpoint's API key (the key is never written anywhere)."""
    concurrency: int = 8
    """Parallel requests to the endpoint."""
    request_timeout_s: float = 300.0
    """Per-request timeout for the endpoint."""
    retries: int = 5
    """Retries per request (exponential backoff)."""
    device: str = "auto"
    """cpu, cuda or auto (Hugging Face backend)."""
    batch_size: int = 64
    """Questions generated at a time (progress granularity)."""
    grader_workers: int = 2
    """Grading processes."""
    seed: int = 0
    """Sampling seed."""


def build_engine(cfg: EvalConfig):
    if cfg.endpoint:
        from drzero.rollout.openai_endpoint import EndpointEngine

        key = None
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if key is None:
                raise DrZeroError(f"environment variable {cfg.api_key_env} (from --api-key-env) is not set")
        return EndpointEngine(cfg.endpoint, cfg.model, api_key=key, concurrency=cfg.concurrency,
                              timeout_s=cfg.request_timeout_s, retries=cfg.retries,
                              cache_path=str(Path(cfg.output) / "endpoint_cache.jsonl"))
    from drzero.models import load_model_and_tokenizer
    from drzero.rollout.hf import HFEngine
    from drzero.train import pick_device

    model, tokenizer = load_model_and_tokenizer(cfg.model, device=pick_device(cfg.device))
    return HFEngine(model, tokenizer, batch_size=max(cfg.batch_size * cfg.n, 1))


def run_eval(cfg: EvalConfig, console=None) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from drzero.data import load_questions
    from drzero.evaluate import evaluate_rows, write_results
    from drzero.templates import get_template

    console = console or Console()
    if cfg.n < 1:
        raise DrZeroError("--n must be >= 1")
    template = get_template(cfg.template)
    names = [b.strip() for b in cfg.benchmarks.split(",") if b.strip()]
    if not names:
        raise DrZeroError("--benchmarks is empty")
    datasets = {name: load_questions(name, question_column=cfg.question_column, answer_column=cfg.answer_column,
                                     limit=cfg.limit) for name in names}  # fail on a bad name before loading a model
    engine = build_engine(cfg)
    results: dict = {"config": asdict(cfg), "benchmarks": {}}
    samples: dict[str, list[dict]] = {}
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as progress:
        for name, rows in datasets.items():
            task = progress.add_task(name, total=len(rows))
            res = evaluate_rows(engine, rows, template, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, grader_workers=cfg.grader_workers, seed=cfg.seed,
                                chunk_size=cfg.batch_size, on_progress=lambda done, t=task: progress.update(t, completed=done))
            results["benchmarks"][name] = res.metrics
            samples[name] = res.samples
    accs = [m["accuracy"] for m in results["benchmarks"].values() if not math.isnan(m.get("accuracy", float("nan")))]
    results["average_accuracy"] = statistics.fmean(accs) if accs else float("nan")
    write_results(Path(cfg.output), results, samples)
    print_table(results, cfg.n, console)
    console.print(f"wrote {Path(cfg.output) / 'results.json'} and {Path(cfg.output) / 'samples.jsonl'}")
    return results


def print_table(results: dict, n: int, console) -> None:
    from rich.table import Table

    table = Table(title="drzero eval")
    cols = ["benchmark", "questions", "accuracy"] + [f"pass@{k}" for k in range(2, n + 1)] + [
        "len correct", "len incorrect", "format", "truncated"]
    for c in cols:
        table.add_column(c, justify="right" if c != "benchmark" else "left")
    pct = lambda x: "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"  # noqa: E731
    num = lambda x: "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0f}"  # noqa: E731
    for name, m in results["benchmarks"].items():
        table.add_row(name, str(m.get("n_questions", 0)), pct(m.get("accuracy")),
                      *[pct(m.get(f"pass@{k}")) for k in range(2, n + 1)],
                      num(m.get("length_correct")), num(m.get("length_incorrect")), pct(m.get("format_rate")),
                      pct(m.get("truncation_rate")))
    table.add_row("average", "", pct(results["average_accuracy"]), *[""] * (len(cols) - 3), style="bold")
    console.print(table)


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(EvalConfig, args=argv, prog="drzero eval", description=EvalConfig.__doc__)
    run_eval(cfg)
    return 0
