"""Measure the toy base model on its test split and write the model card (README.md).

Numbers: greedy accuracy and answering rate per template (r1, qwen_math, none),
pass@1 and pass@8 at temperature 1.0, self-reflection keyword rate, the response-length
distribution of correct and incorrect samples and how often each re-checks, plus a small
greedy ``check`` (first 40 test questions, 128 tokens) that tests/test_toy_model.py
re-measures on the shipped checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from drzero.analysis import is_answering, reflection_keywords
from drzero.evaluate import greedy_template_stats, sampled_pass_at_k
from drzero.rollout.hf import HFEngine
from drzero.templates import TEMPLATES
from drzero.toy.task import CHECKS

MAX_NEW_TOKENS = 320  # past the 256-token RL budget, so the length distribution's tail shows
CHECK_QUESTIONS = 40
CHECK_MAX_NEW_TOKENS = 128
LENGTH_BINS = (0, 25, 50, 100, 150, 200, 256, MAX_NEW_TOKENS + 1)


def recheck_rounds(text: str) -> int:
    """How many re-check openers (``task.CHECKS``) a response contains."""
    return sum(text.count(c) for c in CHECKS)


def check_stats(engine, rows: list[dict]) -> dict:
    """Greedy answering rate and accuracy per template on ``rows`` at 128 new tokens: the
    small measurement the test repeats on the shipped checkpoint."""
    out = {}
    for name, tpl in TEMPLATES.items():
        stats, _ = greedy_template_stats(engine, rows, tpl, max_new_tokens=CHECK_MAX_NEW_TOKENS)
        out[name] = {"greedy_accuracy": stats["greedy_accuracy"], "answering_rate": stats["answering_rate"]}
    return out


def _length_summary(lengths: list[int]) -> dict:
    if not lengths:
        return {"n": 0}
    a = np.asarray(lengths)
    return {"n": len(lengths), "mean": float(a.mean()),
            **{f"p{q}": float(np.percentile(a, q)) for q in (5, 25, 50, 75, 95)}, "max": int(a.max())}


def measure(model, tokenizer, rows: list[dict], *, n_samples: int = 8, log=print) -> dict:
    engine = HFEngine(model, tokenizer, batch_size=256)
    results: dict = {"n_questions": len(rows), "max_new_tokens": MAX_NEW_TOKENS, "templates": {}}
    for name, tpl in TEMPLATES.items():
        stats, _ = greedy_template_stats(engine, rows, tpl, max_new_tokens=MAX_NEW_TOKENS)
        results["templates"][name] = {
            "greedy_accuracy": stats["greedy_accuracy"],
            "answering_rate": stats["answering_rate"],
            "format_rate": stats["format_rate"],
            "mean_response_tokens": stats["length_mean"],
            "truncation_rate": stats["truncation_rate"],
        }
        log(f"  {name:<10} {results['templates'][name]}")
    best = max(results["templates"], key=lambda k: results["templates"][k]["greedy_accuracy"])
    tpl = TEMPLATES[best]
    passes, sampled = sampled_pass_at_k(engine, rows, tpl, n=n_samples, temperature=1.0,
                                        max_new_tokens=MAX_NEW_TOKENS, seed=0)
    gens, grades = sampled.generations, sampled.grades
    # reward as in training: correct and not truncated
    reward = [gr.correct and not g.truncated for g, gr in zip(gens, grades)]
    lengths = [len(g.token_ids) for g in gens]
    rounds = [recheck_rounds(g.text) for g in gens]
    by_reward = {}
    for label, want in (("correct", True), ("incorrect", False)):
        idx = [i for i, r in enumerate(reward) if r == want]
        by_reward[label] = {
            **_length_summary([lengths[i] for i in idx]),
            "recheck_rate": float(np.mean([rounds[i] > 0 for i in idx])) if idx else float("nan"),
            "recheck_rounds_mean": float(np.mean([rounds[i] for i in idx])) if idx else float("nan"),
        }
    counts, _ = np.histogram(lengths, bins=LENGTH_BINS)
    results["sampled"] = {
        "template": best,
        "temperature": 1.0,
        "n": n_samples,
        "pass@1": passes["pass@1"],
        f"pass@{n_samples}": passes[f"pass@{n_samples}"],
        "reward_mean": float(np.mean(reward)),
        "answering_rate": sum(is_answering(g.text) for g in gens) / len(gens),
        "reflection_keyword_rate": sum(bool(reflection_keywords(g.text)) for g in gens) / len(gens),
        "mean_response_tokens": float(np.mean(lengths)),
        "truncation_rate": float(np.mean([g.truncated for g in gens])),
        "length": _length_summary(lengths),
        "length_by_reward": by_reward,
        "length_histogram": {"bins": list(LENGTH_BINS), "counts": counts.tolist()},
    }
    results["best_template"] = best
    log(f"  sampled ({best}): {results['sampled']}")
    results["check"] = {"n_questions": CHECK_QUESTIONS, "max_new_tokens": CHECK_MAX_NEW_TOKENS,
                        "templates": check_stats(engine, rows[:CHECK_QUESTIONS])}
    log(f"  check: {results['check']}")
    return results


def _reproduce(checkpoint: Path) -> str:
    """The ``drzero toy build`` command line of the settings in build_config.json."""
    path = checkpoint / "build_config.json"
    cfg = json.loads(path.read_text()) if path.is_file() else {}
    cmd = "drzero toy build --output DIR"
    if cfg.get("init"):
        cmd += f" --init {cfg['init']}"
    if cfg.get("packed"):
        cmd += " --packed"
    for key in ("block_size", "batch_size", "lr", "steps"):
        if key in cfg:
            cmd += f" --{key.replace('_', '-')} {cfg[key]:g}" if isinstance(cfg[key], float) else f" --{key.replace('_', '-')} {cfg[key]}"
    return f"`{cmd} --threads 1`"


def write_model_card(checkpoint: Path, rows: list[dict], log=print) -> dict:
    """Measure the checkpoint on ``rows`` (the test split) and write measurements.json and README.md."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    results = measure(model, tokenizer, rows, log=log)
    (Path(checkpoint) / "measurements.json").write_text(json.dumps(results, indent=2))
    write_readme(checkpoint, results, sum(p.numel() for p in model.parameters()))
    return results


def write_readme(checkpoint: Path, results: dict, n_params: int) -> None:
    """README.md (the model card) from ``results`` (measurements.json)."""
    t = results["templates"]
    s = results["sampled"]
    path = Path(checkpoint) / "build_config.json"
    build_cfg = json.loads(path.read_text()) if path.is_file() else {}
    origin = (f"continued from the `{build_cfg['init']}` model for {build_cfg['steps']} steps by `drzero toy build --init`"
              if build_cfg.get("init") else "pretrained from scratch by `drzero toy build`")
    lines = [
        "---",
        "library_name: transformers",
        "tags: [drzero, toy, base-model]",
        "---",
        "# drzero toy base model (v2)",
        "",
        f"A {n_params / 1e6:.2f}M-parameter Qwen2 *base* model {origin} on a",
        "synthetic arithmetic corpus (toy world v2, drzero/toy/task.py; bundled as `toy-v2`). It imitates the base models of",
        "Liu et al. (2025): it often makes arithmetic slips; after a slip it tends to re-check",
        "and re-affirm the wrong value, sometimes for several rounds, and rarely repeats itself",
        "past any budget; a few of its solutions self-verify; and whether it answers correctly",
        "depends on the prompt template. docs/toy.md explains why (GRPO's length bias needs",
        "length choices that depend on having gone wrong).",
        "",
        f"## Measured on the toy-v2 test split (its first {results['n_questions']} questions, {results['max_new_tokens']} new tokens)",
        "",
        "| template | greedy accuracy | answering rate (greedy) | format rate | mean response tokens | truncated |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in t.items():
        lines.append(
            f"| {name} | {m['greedy_accuracy']:.1%} | {m['answering_rate']:.1%} | {m['format_rate']:.1%} "
            f"| {m['mean_response_tokens']:.1f} | {m['truncation_rate']:.1%} |"
        )
    c, i = s["length_by_reward"]["correct"], s["length_by_reward"]["incorrect"]
    lines += [
        "",
        f"Sampling with the best template (`{s['template']}`), temperature 1.0, {s['n']} samples per question:",
        "",
        f"- pass@1 {s['pass@1']:.1%}, pass@{s['n']} {s['pass@' + str(s['n'])]:.1%}; reward (correct and not truncated) {s['reward_mean']:.1%}",
        f"- answering rate {s['answering_rate']:.1%}",
        f"- self-reflection keyword rate (paper's keyword pool) {s['reflection_keyword_rate']:.1%} of responses",
        f"- response length: mean {s['length']['mean']:.1f} tokens, 5/25/50/75/95th percentiles "
        f"{s['length']['p5']:.0f} / {s['length']['p25']:.0f} / {s['length']['p50']:.0f} / {s['length']['p75']:.0f} / "
        f"{s['length']['p95']:.0f}, max {s['length']['max']}; {s['truncation_rate']:.1%} hit the {results['max_new_tokens']}-token limit",
        "",
        "| responses | n | mean length | median | 95th pct | re-check (any) | re-check rounds (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, m in (("correct (reward 1)", c), ("incorrect (reward 0)", i)):
        if m["n"]:
            lines.append(f"| {label} | {m['n']} | {m['mean']:.1f} | {m['p50']:.0f} | {m['p95']:.0f} "
                         f"| {m['recheck_rate']:.1%} | {m['recheck_rounds_mean']:.2f} |")
    bins, counts = s["length_histogram"]["bins"], s["length_histogram"]["counts"]
    lines += [
        "",
        "Length histogram (tokens): " + ", ".join(
            f"{lo}-{hi - 1}: {n}" for lo, hi, n in zip(bins[:-1], bins[1:], counts)),
        "",
        "Reproduce: " + _reproduce(Path(checkpoint)) + " (seeded; numbers in measurements.json; settings in build_config.json).",
        "",
    ]
    (Path(checkpoint) / "README.md").write_text("\n".join(lines))
