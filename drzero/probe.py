"""``drzero probe``: how well does a base model fit R1-Zero-like RL? (paper Sec. 2)

For each template (r1, qwen_math, none, and any custom ``{question}`` string):
- answering rate: responses that commit to an answer instead of continuing the text
  (rule-based; optionally an LLM judge as well);
- greedy accuracy, and pass@k at several temperatures (exploration ability);
- self-reflection: the paper's keyword pool, per response and per question; with a
  judge, a response counts only when keywords and judge agree (cross-validation);
- response lengths; then a recommended template with the reason.

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
from drzero.config import ProbeConfig, probe_temperatures, validate
from drzero.errors import DrZeroError


def _prompt_arg(value: str | None):
    if value is None:
        return None
    p = Path(value)
    return p.read_text() if p.exists() else value


def run_probe(cfg: ProbeConfig, log=print) -> dict:
    from drzero import dist
    from drzero.data import load_questions
    from drzero.evaluate import greedy_template_stats, load_engine, sampled_pass_at_k
    from drzero.grader import Grader
    from drzero.templates import get_template

    validate(cfg)  # flags, model, question set and --output, before anything is loaded or written
    names = [t.strip() for t in cfg.templates.split(",") if t.strip()]
    templates = [get_template(t) for t in names]
    if cfg.custom_template:
        templates.append(get_template(cfg.custom_template))
    if not templates:
        raise DrZeroError("no templates to probe: give --templates or --custom-template")
    temps = probe_temperatures(cfg.temperatures)
    rows = load_questions(cfg.questions, question_column=cfg.question_column, answer_column=cfg.answer_column,
                          limit=cfg.n_questions)
    judge = None
    if cfg.judge_endpoint:
        from drzero.judge import ANSWERING_PROMPT, REFLECTION_PROMPT, Judge

        judge = Judge(cfg.judge_endpoint, cfg.judge_model, api_key_env=cfg.judge_api_key_env,
                      answering_prompt=_prompt_arg(cfg.judge_answering_prompt) or ANSWERING_PROMPT,
                      reflection_prompt=_prompt_arg(cfg.judge_reflection_prompt) or REFLECTION_PROMPT)
    engine = load_engine(cfg.model, device=dist.resolve_device(cfg.device), batch_size=cfg.batch_size)
    grader = Grader(workers=cfg.grader_workers, timeout_s=cfg.grader_timeout_s, mode=cfg.grader)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    card: dict = {"config": asdict(cfg), "templates": {}}
    responses_f = open(out / "responses.jsonl", "w")
    sample_rows = rows[: cfg.sample_questions]
    for tpl in templates:
        label = tpl.name if tpl.name != "custom" else "custom"
        log(f"probe: template {label}: greedy on {len(rows)} questions")
        entry, greedy = greedy_template_stats(engine, rows, tpl, max_new_tokens=cfg.max_new_tokens, grader=grader)
        gens, grades = greedy.generations, greedy.grades
        entry["pass_at_k"] = {}
        answering = [is_answering(g.text) for g in gens]
        if judge:
            judged = judge.answering([(r["problem"], g.text) for r, g in zip(rows, gens)])
            entry["answering_rate_judge"] = statistics.fmean(judged)
        for r, g, gr, a in zip(rows, gens, grades, answering):
            responses_f.write(json.dumps({"template": label, "temperature": 0.0, "question": r["problem"],
                                          "reference": r["answer"], "response": g.text, "correct": gr.correct,
                                          "answering": a, "length": len(g.token_ids)}) + "\n")
        reflective_texts = []
        for temp in temps:
            log(f"probe: template {label}: {cfg.n} samples at T={temp} on {len(sample_rows)} questions")
            passes, sampled = sampled_pass_at_k(engine, sample_rows, tpl, n=cfg.n, temperature=temp,
                                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, grader=grader)
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
    best = max(card["templates"], key=lambda k: (card["templates"][k]["greedy_accuracy"], card["templates"][k]["answering_rate"]))
    b = card["templates"][best]
    worst = min(card["templates"], key=lambda k: card["templates"][k]["answering_rate"])
    reason = (f"{best} has the highest greedy accuracy ({b['greedy_accuracy']:.1%}) with an answering rate of "
              f"{b['answering_rate']:.1%}")
    if worst != best:
        reason += f"; {worst} answers only {card['templates'][worst]['answering_rate']:.1%} of the time"
    card["recommended_template"] = best
    card["reason"] = reason
    (out / "scorecard.json").write_text(json.dumps(card, indent=2))
    _write_plots(card, out, temps)
    _write_scorecard(card, out, cfg)
    log(f"probe: recommended template {best}: {reason}")
    log(f"probe: wrote {out / 'scorecard.md'}, {out / 'scorecard.html'}")
    return card


def _write_plots(card: dict, out: Path, temps: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(card["templates"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(names, [card["templates"][n]["answering_rate"] * 100 for n in names], color="#4c72b0")
    ax.set_ylabel("answering rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Answering rate per template (greedy)")
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


def _write_scorecard(card: dict, out: Path, cfg: ProbeConfig) -> None:
    lines = [f"# Probe scorecard: {cfg.model}", "", f"Questions: {cfg.questions} ({cfg.n_questions} greedy, "
             f"{cfg.sample_questions} x {cfg.n} samples per temperature), {cfg.max_new_tokens} new tokens.", "",
             "| template | answering rate | greedy accuracy | format rate | mean length | truncated | "
             "best pass@k | self-reflection (responses / questions) |", "|---|---|---|---|---|---|---|---|"]
    for name, e in card["templates"].items():
        best_pk = max(((t, v) for t, v in e["pass_at_k"].items()), key=lambda tv: max(tv[1].values()), default=None)
        pk = f"{max(best_pk[1].values()):.1%} (T={best_pk[0]}, k={cfg.n})" if best_pk else "-"
        ans = f"{e['answering_rate']:.1%}" + (f" (judge {e['answering_rate_judge']:.1%})" if "answering_rate_judge" in e else "")
        lines.append(f"| {name} | {ans} | {e['greedy_accuracy']:.1%} | {e['format_rate']:.1%} | {e['length_mean']:.1f} | "
                     f"{e['truncation_rate']:.1%} | {pk} | {e['reflection_rate_responses']:.1%} / {e['reflection_rate_questions']:.1%} |")
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
