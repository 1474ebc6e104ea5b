"""Measure the toy base model on its test split and write the model card (README.md).

Numbers: greedy accuracy and answering rate per template (r1, qwen_math, none),
pass@1 and pass@8 at temperature 1.0, self-reflection keyword rate, mean length.
"""

from __future__ import annotations

import json
from pathlib import Path

from drzero.analysis import is_answering, reflection_keywords
from drzero.evaluate import greedy_template_stats, sampled_pass_at_k
from drzero.rollout.hf import HFEngine
from drzero.templates import TEMPLATES
from drzero.data import load_toy_split as load_split

MAX_NEW_TOKENS = 128


def measure(model, tokenizer, *, n_questions: int = 500, n_samples: int = 8, log=print) -> dict:
    rows = load_split("test")[:n_questions]
    engine = HFEngine(model, tokenizer, batch_size=256)
    results: dict = {"n_questions": len(rows), "max_new_tokens": MAX_NEW_TOKENS, "templates": {}}
    for name, tpl in TEMPLATES.items():
        stats, _ = greedy_template_stats(engine, rows, tpl, max_new_tokens=MAX_NEW_TOKENS)
        results["templates"][name] = {
            "greedy_accuracy": stats["greedy_accuracy"],
            "answering_rate": stats["answering_rate"],
            "format_rate": stats["format_rate"],
            "mean_response_tokens": stats["length_mean"],
        }
        log(f"  {name:<10} {results['templates'][name]}")
    best = max(results["templates"], key=lambda k: results["templates"][k]["greedy_accuracy"])
    tpl = TEMPLATES[best]
    passes, sampled = sampled_pass_at_k(engine, rows, tpl, n=n_samples, temperature=1.0, max_new_tokens=MAX_NEW_TOKENS, seed=0)
    gens = sampled.generations
    results["sampled"] = {
        "template": best,
        "temperature": 1.0,
        "n": n_samples,
        "pass@1": passes["pass@1"],
        f"pass@{n_samples}": passes[f"pass@{n_samples}"],
        "answering_rate": sum(is_answering(g.text) for g in gens) / len(gens),
        "reflection_keyword_rate": sum(bool(reflection_keywords(g.text)) for g in gens) / len(gens),
        "mean_response_tokens": sum(len(g.token_ids) for g in gens) / len(gens),
    }
    results["best_template"] = best
    log(f"  sampled ({best}): {results['sampled']}")
    return results


def write_model_card(checkpoint: Path, log=print) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    results = measure(model, tokenizer, log=log)
    (Path(checkpoint) / "measurements.json").write_text(json.dumps(results, indent=2))
    t = results["templates"]
    s = results["sampled"]
    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        "---",
        "library_name: transformers",
        "tags: [drzero, toy, base-model]",
        "---",
        "# drzero toy base model",
        "",
        f"A {n_params / 1e6:.2f}M-parameter Qwen2 *base* model pretrained from scratch by `drzero toy build` on a",
        "synthetic arithmetic corpus (drzero/toy/task.py). It imitates the base models of",
        "Liu et al. (2025): it often makes arithmetic slips, its verbosity is unrelated to",
        "correctness, a few of its solutions self-verify, and whether it answers at all",
        "depends on the prompt template.",
        "",
        f"## Measured on the toy test split ({results['n_questions']} questions, {results['max_new_tokens']} new tokens)",
        "",
        "| template | greedy accuracy | answering rate (greedy) | format rate | mean response tokens |",
        "|---|---|---|---|---|",
    ]
    for name, m in t.items():
        lines.append(
            f"| {name} | {m['greedy_accuracy']:.1%} | {m['answering_rate']:.1%} | {m['format_rate']:.1%} | {m['mean_response_tokens']:.1f} |"
        )
    lines += [
        "",
        f"Sampling with the best template (`{s['template']}`), temperature 1.0, {s['n']} samples per question:",
        "",
        f"- pass@1 {s['pass@1']:.1%}, pass@{s['n']} {s['pass@' + str(s['n'])]:.1%}",
        f"- answering rate {s['answering_rate']:.1%}",
        f"- self-reflection keyword rate (paper's keyword pool) {s['reflection_keyword_rate']:.1%} of responses",
        f"- mean response length {s['mean_response_tokens']:.1f} tokens",
        "",
        "Reproduce: `drzero toy build --output DIR` (seeded; numbers in measurements.json).",
        "",
    ]
    (Path(checkpoint) / "README.md").write_text("\n".join(lines))
    return results
