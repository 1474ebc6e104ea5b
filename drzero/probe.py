"""``drzero probe``: how well does a base model fit R1-Zero-like RL? (paper Sec. 2)

For each template (r1, qwen_math, none, and any custom ``{question}`` string):
- answering rate, the paper's measure (Sec. 2.1): the share of greedy responses an LLM
  judge says attempt to answer the question (``--judge-endpoint``; none without a judge);
- format rates, rule-based: the template's answer format found (``format_rate``), and any
  of a boxed answer, an answer tag or an "the answer is" phrase (``any_format_rate``).
  Neither is the answering rate: text that keeps inventing new questions but contains
  "the answer is" passes the rule;
- greedy accuracy, and pass@k at temperatures 0.1..1.0 (exploration ability, Sec. 2.2);
- self-reflection: the paper's keyword pool, per response and per question; with a
  judge, a response counts only when keywords and judge agree (cross-validation);
- response lengths; then a recommended template with the reason.
The budget is the model's own unless --max-new-tokens is given: the toy model's card
budget, 3000 tokens for any other model (the paper's).

    drzero probe --model toy --output runs/probe-toy

Writes scorecard.md, scorecard.html, PNG plots and responses.jsonl to --output.
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from dataclasses import asdict
from pathlib import Path

from drzero.analysis import is_answering, reflection_keywords
from drzero.config import ProbeConfig
from drzero.parsing import probe_temperatures, validate
from drzero.errors import DrZeroError


ANSWERING_JUDGED = "LLM judge (the paper's measure, Sec. 2.1)"
ANSWERING_NONE = "not measured (pass --judge-endpoint for the paper's judged answering rate)"


def default_budget(model: str) -> int:
    """The generation budget a probe uses for ``model``: a checkpoint's own recorded budget
    (the toy model's card measures at 128 tokens, in its measurements.json), else 3000
    tokens, the paper's (Sec. 2)."""
    from drzero.models import BUNDLED_MODELS, resolve_model_path

    if model in BUNDLED_MODELS or Path(model).expanduser().is_dir():
        card = Path(resolve_model_path(model)) / "measurements.json"
        if card.is_file():
            return int(json.loads(card.read_text())["max_new_tokens"])
    return 3000


def _prompt_arg(value: str | None):
    if value is None:
        return None
    p = Path(value)
    return p.read_text() if p.exists() else value


def run_probe(cfg: ProbeConfig, log=print, engine=None) -> dict:
    """The probe; ``engine``: one already made (``drzero pilot --endpoint``), else ``cfg``'s is loaded."""
    from drzero import dist
    from drzero.data import load_questions
    from drzero.evaluate import greedy_template_stats, sampled_pass_at_k
    from drzero.grader import Grader
    from drzero.models import load_template
    from drzero.rollout import load_engine
    from drzero.templates import get_template

    validate(cfg)  # flags, model, question set and --output, before anything is loaded or written
    names = [t.strip() for t in cfg.templates.split(",") if t.strip()]
    templates = [load_template(t, cfg.model, cfg.system_prompt) for t in names]
    if cfg.custom_template:
        templates.append(get_template(cfg.custom_template))
    if not templates:
        raise DrZeroError("no templates to probe: give --templates or --custom-template")
    temps = probe_temperatures(cfg.temperatures)
    rows = load_questions(cfg.questions, question_column=cfg.question_column, answer_column=cfg.answer_column,
                          limit=cfg.n_questions, dataset_config=cfg.dataset_config, dataset_filter=cfg.dataset_filter)
    if cfg.max_prompt_tokens:  # over-long questions dropped (drzero.data.length)
        from drzero.data.length import drop_long_prompts, load_tokenizer

        rows = drop_long_prompts(rows, templates, load_tokenizer(cfg.model), cfg.max_prompt_tokens,
                                 f"--questions {cfg.questions}", log=log)
    budget = cfg.max_new_tokens or default_budget(cfg.model)
    judge = None
    if cfg.judge_endpoint:
        from drzero.judge import ANSWERING_PROMPT, REFLECTION_PROMPT, Judge

        judge = Judge(cfg.judge_endpoint, cfg.judge_model, api_key_env=cfg.judge_api_key_env,
                      answering_prompt=_prompt_arg(cfg.judge_answering_prompt) or ANSWERING_PROMPT,
                      reflection_prompt=_prompt_arg(cfg.judge_reflection_prompt) or REFLECTION_PROMPT)
    engine = engine or load_engine(cfg.model, engine=cfg.engine, device=dist.resolve_device(cfg.device), batch_size=cfg.batch_size,
                         tensor_parallel_size=cfg.tensor_parallel_size, vllm_memory=cfg.vllm_memory, seed=cfg.seed)
    grader = Grader(workers=cfg.grader_workers, timeout_s=cfg.grader_timeout_s, mode=cfg.grader)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    card: dict = {"config": asdict(cfg), "max_new_tokens": budget, "templates": {},
                  "answering_measure": ANSWERING_JUDGED if judge else ANSWERING_NONE}
    responses_f = open(out / "responses.jsonl", "w")
    sample_rows = rows[: cfg.sample_questions]
    for tpl in templates:
        label = tpl.name if tpl.name != "custom" else "custom"
        log(f"probe: template {label}: greedy on {len(rows)} questions")
        entry, greedy = greedy_template_stats(engine, rows, tpl, max_new_tokens=budget, grader=grader)
        gens, grades = greedy.generations, greedy.grades
        entry["any_format_rate"] = entry.pop("answering_rate")  # the rule: a format rate, not the answering rate
        entry["pass_at_k"] = {}
        any_format = [is_answering(g.text) for g in gens]
        judged = judge.answering([(r["problem"], g.text) for r, g in zip(rows, gens)]) if judge else [None] * len(gens)
        entry["answering_rate"] = statistics.fmean(judged) if judge else None  # the paper's measure: judged
        for r, g, gr, f, a in zip(rows, gens, grades, any_format, judged):
            responses_f.write(json.dumps({"template": label, "temperature": 0.0, "question": r["problem"],
                                          "reference": r["answer"], "response": g.text, "correct": gr.correct,
                                          "formatted": gr.formatted, "any_format": f, "answering_judge": a,
                                          "length": len(g.token_ids)}) + "\n")
        reflective_texts = []
        for temp in temps:
            log(f"probe: template {label}: {cfg.n} samples at T={temp} on {len(sample_rows)} questions")
            passes, sampled = sampled_pass_at_k(engine, sample_rows, tpl, n=cfg.n, temperature=temp,
                                                max_new_tokens=budget, seed=cfg.seed, grader=grader)
            sgens, sgrades = sampled.generations, sampled.grades
            entry["pass_at_k"][str(temp)] = passes
            if temp == max(temps):
                reflective_texts = sgens
                for g, gr in zip(sgens, sgrades):
                    responses_f.write(json.dumps({"template": label, "temperature": temp,
                                                  "question": sample_rows[g.prompt_index]["problem"], "response": g.text,
                                                  "correct": gr.correct, "keywords": reflection_keywords(g.text),
                                                  "length": len(g.token_ids)}) + "\n")
        kw = [bool(reflection_keywords(g.text)) for g in reflective_texts]
        if judge and reflective_texts:
            cats = judge.reflection([(sample_rows[g.prompt_index]["problem"], g.text) for g in reflective_texts])
            kw = [k and c == 2 for k, c in zip(kw, cats)]  # cross-validated: both must agree (paper Sec. 2.3)
        per_question = [any(kw[i * cfg.n : (i + 1) * cfg.n]) for i in range(len(sample_rows))]
        entry["reflection_rate_responses"] = statistics.fmean(kw) if kw else 0.0
        entry["reflection_rate_questions"] = statistics.fmean(per_question) if per_question else 0.0
        entry["reflection_count"] = int(sum(kw))
        entry["reflection_method"] = "keywords+judge" if judge else "keywords"
        card["templates"][label] = entry
    responses_f.close()
    # rank by accuracy, then by the answering rate (judged) or, without a judge, the rule's format rate
    rate_key, rate_name = ("answering_rate", "an answering rate (judge)") if judge else ("any_format_rate",
                                                                                        "a format rate (rule)")
    t = card["templates"]
    best = max(t, key=lambda k: (t[k]["greedy_accuracy"], t[k][rate_key]))
    worst = min(t, key=lambda k: t[k][rate_key])
    reason = f"{best} has the highest greedy accuracy ({t[best]['greedy_accuracy']:.1%}) with {rate_name} of {t[best][rate_key]:.1%}"
    if worst != best:
        reason += (f"; {worst} answers only {t[worst][rate_key]:.1%} of the time (judge)" if judge else
                   f"; {worst} gives a final answer in any format only {t[worst][rate_key]:.1%} of the time (rule)")
    card["recommended_template"] = best
    card["reason"] = reason
    (out / "scorecard.json").write_text(json.dumps(card, indent=2))
    _write_plots(card, out, temps)
    _write_scorecard(card, out, cfg, budget)
    log(f"probe: recommended template {best}: {reason}")
    log(f"probe: wrote {out / 'scorecard.md'}, {out / 'scorecard.html'}")
    return card


def _write_plots(card: dict, out: Path, temps: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(card["templates"])
    judged = card["answering_measure"] == ANSWERING_JUDGED
    key, what = ("answering_rate", "answering rate, LLM judge") if judged else ("any_format_rate",
                                                                               "format rate, rule-based (no judge)")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(names, [card["templates"][n][key] * 100 for n in names], color="#4c72b0")
    ax.set_ylabel(f"{what.split(',')[0]} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{what[0].upper() + what[1:]}, per template (greedy)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "answering_rate.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for n in names:
        pk = card["templates"][n]["pass_at_k"]
        ks = sorted({int(k.split("@")[1]) for v in pk.values() for k in v})
        kmax = ks[-1] if ks else 1
        ax.plot(temps, [pk[str(t)][f"pass@{kmax}"] * 100 for t in temps], marker="o", label=f"{n} pass@{kmax}")
        ax.plot(temps, [pk[str(t)]["pass@1"] * 100 for t in temps], marker="x", linestyle="--", label=f"{n} pass@1")
    ax.set_xlabel("temperature")
    ax.set_ylabel("%")
    ax.set_title("Exploration: pass@k vs temperature")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pass_at_k.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(names, [card["templates"][n]["reflection_count"] for n in names], color="#dd8452")
    ax.set_ylabel("responses with self-reflection")
    ax.set_title(f"Self-reflection ({card['templates'][names[0]]['reflection_method']})")
    fig.tight_layout()
    fig.savefig(out / "reflection.png", dpi=110)
    plt.close(fig)


def _write_scorecard(card: dict, out: Path, cfg: ProbeConfig, budget: int) -> None:
    lines = [f"# Probe scorecard: {cfg.model}", "", f"Questions: {cfg.questions} ({cfg.n_questions} greedy, "
             f"{cfg.sample_questions} x {cfg.n} samples per temperature), {budget} new tokens.", "",
             f"Answering rate: {card['answering_measure']}. Format rates are rule-based: the template's answer "
             "format found / any final-answer form (boxed, answer tag or \"the answer is\") found.", "",
             "| template | answering rate (LLM judge) | greedy accuracy | format rate (template / any, rule) | "
             "mean length | truncated | best pass@k | self-reflection (responses / questions) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, e in card["templates"].items():
        best_pk = max(((t, v) for t, v in e["pass_at_k"].items()), key=lambda tv: max(tv[1].values()), default=None)
        pk = f"{max(best_pk[1].values()):.1%} (T={best_pk[0]}, k={cfg.n})" if best_pk else "-"
        ans = "n/a (no judge)" if e["answering_rate"] is None else f"{e['answering_rate']:.1%}"
        lines.append(f"| {name} | {ans} | {e['greedy_accuracy']:.1%} | {e['format_rate']:.1%} / {e['any_format_rate']:.1%} | "
                     f"{e['length_mean']:.1f} | {e['truncation_rate']:.1%} | {pk} | "
                     f"{e['reflection_rate_responses']:.1%} / {e['reflection_rate_questions']:.1%} |")
    lines += ["", f"**Recommended template: `{card['recommended_template']}`**: {card['reason']}.", "",
              "![answering rate](answering_rate.png)", "![pass@k](pass_at_k.png)", "![self-reflection](reflection.png)", ""]
    (out / "scorecard.md").write_text("\n".join(lines))
    imgs = "".join(
        f'<img alt="{n}" src="data:image/png;base64,{base64.b64encode((out / n).read_bytes()).decode()}">'
        for n in ("answering_rate.png", "pass_at_k.png", "reflection.png"))
    table = _md_table_to_html([ln for ln in lines if ln.startswith("|")])
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Probe: {html.escape(cfg.model)}</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}img{max-width:32%;margin:4px}</style></head><body>"
            f"<h1>Probe scorecard: {html.escape(cfg.model)}</h1>{table}"
            f"<p><b>Recommended template: {html.escape(card['recommended_template'])}</b>: {html.escape(card['reason'])}.</p>"
            f"{imgs}</body></html>")
    (out / "scorecard.html").write_text(page)


def _md_table_to_html(rows: list[str]) -> str:
    cells = [[html.escape(c.strip()) for c in r.strip("|").split("|")] for r in rows if not set(r) <= set("|-")]
    head, body = cells[0], cells[1:]
    return ("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body) + "</table>")
