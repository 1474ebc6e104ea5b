"""``drzero eval --paper``: this run as a row of the paper's results table (Sec. 4: AIME24,
AMC, MATH500, Minerva, OlympiadBench and their mean) beside the paper's published rows for
the same model (``data/paper_results.json``), and how the run departs from the paper's
evaluation protocol (Sec. 5).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from drzero.config import EvalConfig

PAPER_COLUMNS = {"aime24": "AIME24", "amc": "AMC", "math500": "MATH500", "minerva": "Minerva",
                 "olympiadbench": "OlympiadBench"}  # the paper's benchmark columns, in its order
PAPER_RESULTS = Path(__file__).parent / "data" / "paper_results.json"


def published_rows(model: str, template: str | None = None) -> list[dict]:
    """The paper's published rows for ``model`` (matched on the last path component of its
    name, case-insensitive, so a local copy ``/ckpt/Qwen2.5-Math-7B-Oat-Zero`` matches),
    restricted to ``template`` when the paper reports that model under several templates
    and one of them is ``template``."""
    key = model.rstrip("/").split("/")[-1].lower()
    rows = [r for r in json.loads(PAPER_RESULTS.read_text())["rows"]
            if key in {m.split("/")[-1].lower() for m in r["models"]}]
    same = [r for r in rows if r["template"] == template]
    return same or rows


def paper_protocol_gaps(results: dict, cfg: EvalConfig) -> list[str]:
    """How this run departs from the paper's evaluation protocol (Sec. 5); empty if it does not."""
    gaps = []
    if cfg.temperature != 0 or cfg.n != 1:
        gaps.append(f"sampling (temperature {cfg.temperature}, n {cfg.n}; paper: greedy, n 1)")
    if cfg.max_new_tokens != 3000:
        gaps.append(f"budget {cfg.max_new_tokens} tokens (paper: 3000)")
    if cfg.limit:
        gaps.append(f"--limit {cfg.limit} (paper: every question)")
    missing = [b for b in PAPER_COLUMNS if b not in results["benchmarks"]]
    if missing:
        gaps.append(f"benchmarks missing: {', '.join(missing)}")
    if results.get("grader") != "paper":
        gaps.append(f"grader {results.get('grader')} (paper: the reference's rules)")
    return gaps


def paper_comparison(results: dict, cfg: EvalConfig) -> dict:
    """This run as a row of the paper's results table (accuracy in %, the five benchmarks and
    their mean), the paper's published rows for the model, and how the protocol differs."""
    scores = {b: 100 * results["benchmarks"][b]["accuracy"] for b in PAPER_COLUMNS if b in results["benchmarks"]}
    return {
        "this_run": {"name": cfg.model, "template": results.get("template"), "scores": scores,
                     "average": statistics.fmean(scores.values()) if len(scores) == len(PAPER_COLUMNS) else None},
        "published": published_rows(cfg.model, results.get("template")),
        "protocol_gaps": paper_protocol_gaps(results, cfg),
    }


def print_paper_table(comparison: dict, console) -> None:
    """The paper's results table layout (Sec. 4: AIME24, AMC, MATH500, Minerva, OlympiadBench,
    Avg): this run's row above the paper's published row(s) for the same model."""
    from rich.table import Table

    def pct(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"

    table = Table(title="drzero eval --paper (the paper's table layout; accuracy %)")
    table.add_column("model", justify="left")
    for col in [*PAPER_COLUMNS.values(), "Avg"]:
        table.add_column(col, justify="right")
    ours = comparison["this_run"]
    table.add_row(f"{ours['name']} ({ours['template']}): this run", *[pct(ours["scores"].get(b)) for b in PAPER_COLUMNS],
                  pct(ours["average"]), style="bold")
    for r in comparison["published"]:
        table.add_row(f"{r['name']} ({r['template']}): paper", *[pct(r["scores"][b]) for b in PAPER_COLUMNS],
                      pct(r["average"]))
    console.print(table)
    if not comparison["published"]:
        console.print(f"the paper publishes no row for {ours['name']}")
    if comparison["protocol_gaps"]:
        console.print("not comparable with the paper's numbers: " + "; ".join(comparison["protocol_gaps"]))
