"""Evaluation: questions x policy -> accuracy (avg@n), pass@k, lengths, format and
truncation rates. Shared by ``drzero eval`` and training's periodic evaluation.

    drzero eval --model toy --benchmarks math500 --limit 50 --output runs/eval-toy

The paper's protocol (Sec. 5): greedy decoding, a 3000-token budget, the mean over
AIME24 / AMC / MATH500 / Minerva / OlympiadBench of per-benchmark accuracy.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from drzero.analysis import pass_at_k
from drzero.grader import grade_batch
from drzero.rollout import SamplingParams
from drzero.templates import Template


@dataclass
class EvalResult:
    metrics: dict
    samples: list[dict]


def _mean(xs):
    return statistics.fmean(xs) if xs else float("nan")


def evaluate_rows(
    engine,
    rows: list[dict],
    template: Template,
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 3000,
    grader_workers: int = 2,
    grader_timeout_s: float = 5.0,
    seed: int = 0,
    chunk_size: int | None = None,
    on_progress=None,
) -> EvalResult:
    """Generate ``n`` responses per row, grade them, and aggregate.

    ``chunk_size`` questions are generated at a time (progress is reported after each
    chunk through ``on_progress(done_questions)``)."""
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            stop=template.stop, seed=seed)
    chunk_size = chunk_size or len(rows) or 1
    samples: list[dict] = []
    t_gen = t_grade = 0.0
    for start in range(0, len(rows), chunk_size):
        chunk = rows[start : start + chunk_size]
        t = time.perf_counter()
        gens = engine.generate([template.render(r["problem"]) for r in chunk], params)
        t_gen += time.perf_counter() - t
        t = time.perf_counter()
        grades = grade_batch([g.text for g in gens], [chunk[g.prompt_index]["answer"] for g in gens],
                             answer_format=template.answer_format, workers=grader_workers, timeout_s=grader_timeout_s)
        t_grade += time.perf_counter() - t
        for g, gr in zip(gens, grades):
            row = chunk[g.prompt_index]
            samples.append({
                "index": start + g.prompt_index, "question": row["problem"], "reference": row["answer"],
                "response": g.text, "extracted": gr.extracted, "correct": gr.correct, "formatted": gr.formatted,
                "length": len(g.token_ids), "finish_reason": g.finish_reason, "timed_out": gr.timed_out,
            })
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
        "accuracy": _mean([s["correct"] for s in samples]),
        "format_rate": _mean([s["formatted"] for s in samples]),
        "truncation_rate": _mean([s["finish_reason"] == "length" for s in samples]),
        "length_mean": _mean([s["length"] for s in samples]),
        "length_correct": _mean([s["length"] for s in correct]),
        "length_incorrect": _mean([s["length"] for s in wrong]),
        "grader_timeouts": sum(s.get("timed_out", False) for s in samples),
    }
    for k in range(1, n + 1):
        metrics[f"pass@{k}"] = _mean([pass_at_k(len(v), sum(x["correct"] for x in v), k) for v in by_q.values()])
    return metrics


def write_results(output: Path, results: dict, samples: dict[str, list[dict]]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, indent=2))
    with open(output / "samples.jsonl", "w") as f:
        for bench, rows in samples.items():
            for s in rows:
                f.write(json.dumps({"benchmark": bench, **s}) + "\n")


def greedy_template_stats(engine, rows: list[dict], template: Template, *, max_new_tokens: int, grader_workers: int = 2):
    """Greedy responses to ``rows`` under ``template`` and what the probe and the toy model
    card report of them: (stats, generations, grades)."""
    from drzero.analysis import is_answering

    gens = engine.generate([template.render(r["problem"]) for r in rows],
                           SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=template.stop))
    grades = grade_batch([g.text for g in gens], [r["answer"] for r in rows], answer_format=template.answer_format,
                         workers=grader_workers)
    stats = {
        "greedy_accuracy": _mean([g.correct for g in grades]),
        "answering_rate": _mean([is_answering(g.text) for g in gens]),
        "format_rate": _mean([g.formatted for g in grades]),
        "length_mean": _mean([len(g.token_ids) for g in gens]),
        "truncation_rate": _mean([g.truncated for g in gens]),
    }
    return stats, gens, grades


def sampled_pass_at_k(engine, rows: list[dict], template: Template, *, n: int, temperature: float, max_new_tokens: int,
                      seed: int, grader_workers: int = 2):
    """``n`` samples per row at ``temperature``: ({"pass@k": ...} for k = 1..n, generations, grades)."""
    gens = engine.generate([template.render(r["problem"]) for r in rows],
                           SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                                          stop=template.stop, seed=seed))
    grades = grade_batch([g.text for g in gens], [rows[g.prompt_index]["answer"] for g in gens],
                         answer_format=template.answer_format, workers=grader_workers)
    per_q = [sum(grades[i * n + j].correct for j in range(n)) for i in range(len(rows))]
    return {f"pass@{k}": _mean([pass_at_k(n, c, k) for c in per_q]) for k in range(1, n + 1)}, gens, grades
