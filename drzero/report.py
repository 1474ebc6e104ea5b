"""``drzero report RUN_DIR [RUN_DIR ...] --output DIR``: training runs overlaid in one page.

Plots (PNG, matplotlib): reward; response length overall and split into rewarded and
unrewarded responses (the paper's Fig. 6 on GRPO's length bias) and the within-question
gap between them; benchmark accuracy and the eval set's correct/incorrect lengths over
steps; truncation rate; the per-question weight distribution and per-token weight vs
length (from ``drzero.algo.bias_weights``, logged in weights.jsonl). Runs that differ only
in their seed are drawn as one line (the mean) with a band (+-1 std over seeds). Ends
with a text summary of each run's and each seed group's numbers. Comparing GRPO and
Dr. GRPO runs is the headline use.
"""

from __future__ import annotations

import html
import json
import math
import statistics
from pathlib import Path

import yaml

from drzero.inputs import check_output_path
from drzero.parsing import validate
from drzero.errors import DrZeroError


def read_jsonl(path: Path) -> list[dict]:
    """The records of a run's JSONL file; a last line torn by a run still writing (or
    killed) is left out, damage anywhere else is a one-line error."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if lineno == len(lines):  # the unfinished last line
                break
            raise DrZeroError(f"{path}:{lineno}: not valid JSON") from None
        if not isinstance(record, dict) or "step" not in record:
            raise DrZeroError(f"{path}:{lineno}: not a drzero record (no step)")
        records.append(record)
    return records


def read_run_config(run_dir: str | Path) -> dict:
    """A training run's ``config.yaml`` as a dict ({} when the file is missing or not a
    mapping); a file that is not YAML is a one-line ``DrZeroError``."""
    path = Path(run_dir) / "config.yaml"
    try:
        cfg = yaml.safe_load(path.read_text()) if path.exists() else {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        raise DrZeroError(f"{path}: not valid YAML") from None
    return cfg if isinstance(cfg, dict) else {}


def load_run(run_dir: str) -> dict:
    d = Path(run_dir)
    if not (d / "metrics.jsonl").is_file():
        raise DrZeroError(f"{run_dir}: not a training run directory (no metrics.jsonl)")
    cfg = read_run_config(d)
    metrics = read_jsonl(d / "metrics.jsonl")
    label = f"{d.name} ({cfg.get('algo', '?')})"
    return {"dir": d, "label": label, "config": cfg, "metrics": metrics, "weights": read_jsonl(d / "weights.jsonl")}


# config keys that do not change what a run computes, besides the seed: runs equal in every
# other key are seeds of one experiment
_NOT_THE_EXPERIMENT = {"seed", "output_dir", "resume", "config", "progress", "wandb_project", "tensorboard", "trackio",
                       "overwrite", "device", "grader_workers"}


def experiment_key(config: dict) -> dict:
    """What makes runs one experiment: the config minus ``_NOT_THE_EXPERIMENT``; under a
    constant learning rate also minus the length of the run (``max_steps``/``max_epochs``
    then change nothing an iteration computes: a run resumed to more iterations, or a seed
    run for fewer, is the same experiment; plots use the iterations all of them have)."""
    out = {k: v for k, v in config.items() if k not in _NOT_THE_EXPERIMENT}
    if config.get("lr_schedule", "constant") == "constant":
        out.pop("max_steps", None)
        out.pop("max_epochs", None)
    return out


def seed_groups(runs: list[dict]) -> list[dict]:
    """Runs grouped by ``experiment_key`` (their config minus the seed): ``{"label", "runs"}``
    in input order."""
    groups: dict[str, dict] = {}
    for run in runs:
        key = json.dumps(experiment_key(run["config"]), sort_keys=True, default=str) if run["config"] else str(run["dir"])
        groups.setdefault(key, {"runs": []})["runs"].append(run)
    for g in groups.values():
        first = g["runs"][0]
        g["label"] = first["label"] if len(g["runs"]) == 1 else \
            f"{first['config'].get('algo', '?')} ({len(g['runs'])} seeds)"
    return list(groups.values())


def group_series(runs: list[dict], key: str) -> tuple[list[int], list[float], list[float]]:
    """Steps every run logged ``key`` at, the mean over runs and the (population) std."""
    per_run = [dict(zip(*series(r["metrics"], key))) for r in runs]
    steps = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    means = [statistics.fmean(p[t] for p in per_run) for t in steps]
    stds = [statistics.pstdev([p[t] for p in per_run]) for t in steps]
    return steps, means, stds


def series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(m["step"], m[key]) for m in metrics if key in m and m[key] is not None and not (isinstance(m[key], float) and math.isnan(m[key]))]
    return [p[0] for p in pts], [p[1] for p in pts]


def step_windows(rows: list[dict], window: int) -> list[tuple[int, int, list[dict]]]:
    """``rows`` (each with a ``step``, from 1) split into windows of ``window`` iterations:
    ``(first, last, rows)`` for every window up to the largest step, empty ones included."""
    top = max((r["step"] for r in rows), default=0)
    return [(lo, min(lo + window - 1, top), [r for r in rows if lo <= r["step"] < lo + window])
            for lo in range(1, top + 1, window)]


def _window_mean(values: list[float], last: int = 5) -> float:
    vals = [v for v in values[-last:] if not math.isnan(v)]
    return statistics.fmean(vals) if vals else float("nan")


def summarize(run: dict) -> dict:
    m = run["metrics"]
    _, inc = series(m, "rollout/response_length_incorrect")
    _, cor = series(m, "rollout/response_length_correct")
    _, rew = series(m, "rollout/reward_mean")
    evals = {}
    for key in sorted({k for row in m for k in row if k.startswith("eval/") and k.endswith("/accuracy")}):
        steps, vals = series(m, key)
        evals[key.split("/")[1]] = {"first": vals[0], "last": vals[-1], "step": steps[-1]} if vals else None
    return {
        "label": run["label"],
        "steps": max((row["step"] for row in m), default=0),
        "reward_last5": _window_mean(rew),
        "length_incorrect_first5": statistics.fmean(inc[:5]) if inc else float("nan"),
        "length_incorrect_last5": _window_mean(inc),
        "length_correct_first5": statistics.fmean(cor[:5]) if cor else float("nan"),
        "length_correct_last5": _window_mean(cor),
        "eval": evals,
    }


def _key_label(key: str) -> str:
    """Legend text of a metric: ``rollout/response_length_correct`` -> ``correct``,
    ``eval/toy:test/length_incorrect`` -> ``toy:test incorrect``, ``eval/amc/accuracy`` -> ``amc``."""
    parts = key.split("/")
    last = parts[-1].split("_")[-1]
    if parts[0] == "eval":
        return parts[1] if last == "accuracy" else f"{parts[1]} {last}"
    return last


def _plot(groups, keys, ylabel, title, path, styles=("-",)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, group in enumerate(groups):
        color = f"C{i}"
        for key, style in zip(keys, styles * len(keys)):
            x, y, sd = group_series(group["runs"], key)
            if x:
                suffix = "" if len(keys) == 1 else " " + _key_label(key)
                ax.plot(x, y, style, color=color, label=group["label"] + suffix, marker="." if len(x) < 30 else None)
                if len(group["runs"]) > 1:
                    ax.fill_between(x, [a - b for a, b in zip(y, sd)], [a + b for a, b in zip(y, sd)], color=color, alpha=0.15)
    ax.set_xlabel("policy iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_weights(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, run in enumerate(runs):
        scales = [s for row in run["weights"] for s in row.get("question_scale", []) if s is not None and s < 1e5]
        if scales:
            axes[0].hist(scales, bins=30, alpha=0.5, color=f"C{i}", label=run["label"])
        tail = run["weights"][-10:]
        lengths = [x for row in tail for x in row["length"]]
        weights = [abs(w) for row in tail for w in row["token_weight"]]
        if lengths:
            axes[1].scatter(lengths, weights, s=6, alpha=0.4, color=f"C{i}", label=run["label"])
    axes[0].set_title("Per-question weight, groups with reward variance\n(1/std for GRPO, 1 for Dr. GRPO)")
    axes[0].set_xlabel("weight")
    axes[1].set_title("|per-token weight| vs length (last 10 iterations)")
    axes[1].set_xlabel("response tokens")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_report(run_dirs: list[str], output: str) -> Path:
    if not run_dirs:
        raise DrZeroError("give at least one run directory")
    check_output_path(output)
    runs = [load_run(d) for d in run_dirs]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    groups = seed_groups(runs)
    plots = [
        ("reward.png", ["rollout/reward_mean"], "mean reward", "Training reward"),
        ("length.png", ["rollout/response_length_mean"], "tokens", "Response length"),
        ("length_split.png", ["rollout/response_length_correct", "rollout/response_length_incorrect"], "tokens",
         "Response length: rewarded (solid) vs unrewarded (dashed)"),
        ("length_gap.png", ["rollout/length_gap_within_group"], "tokens",
         "Within-question gap: unrewarded - rewarded length"),
        ("truncation.png", ["rollout/truncation_rate"], "share of responses", "Truncation rate"),
    ]
    images = []
    metric_keys = {k for r in runs for row in r["metrics"] for k in row}
    for name, keys, ylabel, title in plots:
        if any(k in metric_keys for k in keys):
            _plot(groups, keys, ylabel, title, out / name, styles=("-", "--"))
            images.append((name, title))
    eval_keys = sorted(k for k in metric_keys if k.startswith("eval/") and k.endswith("/accuracy"))
    if eval_keys:
        _plot(groups, eval_keys, "accuracy", "Benchmark accuracy (greedy)", out / "eval_accuracy.png",
              styles=("-", "--", ":", "-."))
        images.append(("eval_accuracy.png", "Benchmark accuracy"))
    eval_len_keys = sorted(k for k in metric_keys if k.startswith("eval/") and k.endswith(("/length_correct", "/length_incorrect")))
    if eval_len_keys:
        _plot(groups, eval_len_keys, "tokens", "Eval response length: correct (solid) vs incorrect (dashed)",
              out / "eval_length.png", styles=("-", "--"))
        images.append(("eval_length.png", "Eval response length, correct vs incorrect"))
    if any(r["weights"] for r in runs):
        _plot_weights(runs, out / "weights.png")
        images.append(("weights.png", "Per-question and per-token weights"))
    summaries = [summarize(r) for r in runs]
    group_summaries = [summarize_group(g) for g in groups if len(g["runs"]) > 1]
    (out / "summary.json").write_text(json.dumps(summaries + group_summaries, indent=2))
    text = summary_text(summaries + group_summaries)
    (out / "summary.md").write_text(text)
    body = "".join(
        f"<figure><img alt='{html.escape(t)}' src='{n}'><figcaption>{html.escape(t)}</figcaption></figure>" for n, t in images)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>drzero report</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}figure{display:inline-block;margin:6px}"
            "img{max-width:520px}pre{background:#f5f5f5;padding:1em;white-space:pre-wrap}</style></head><body>"
            f"<h1>drzero report</h1><p>Runs: {html.escape(', '.join(r['label'] for r in runs))}</p>{body}"
            f"<h2>Summary</h2><pre>{html.escape(text)}</pre></body></html>")
    (out / "index.html").write_text(page)
    for name, _ in images:  # embed-free page: check every image is really there
        if not (out / name).exists() or (out / name).stat().st_size == 0:
            raise DrZeroError(f"plot {name} was not written")
    return out / "index.html"


def summarize_group(group: dict) -> dict:
    """Mean and std over a seed group of every number ``summarize`` reports."""
    per_run = [summarize(r) for r in group["runs"]]
    out = {"label": group["label"], "steps": min(s["steps"] for s in per_run), "seeds": len(per_run)}
    for k in ("reward_last5", "length_incorrect_first5", "length_incorrect_last5", "length_correct_first5",
              "length_correct_last5"):
        values = [s[k] for s in per_run if not math.isnan(s[k])]
        out[k] = statistics.fmean(values) if values else float("nan")
        out[k + "_std"] = statistics.pstdev(values) if values else float("nan")
    out["eval"] = {}
    for name in per_run[0]["eval"]:
        entries = [s["eval"].get(name) for s in per_run]
        if all(entries):
            out["eval"][name] = {"first": statistics.fmean(e["first"] for e in entries),
                                 "last": statistics.fmean(e["last"] for e in entries),
                                 "last_std": statistics.pstdev([e["last"] for e in entries]),
                                 "step": min(e["step"] for e in entries)}
    return out


def summary_text(summaries: list[dict]) -> str:
    lines = []
    for s in summaries:
        pm = lambda k: f" +- {s[k + '_std']:.1f}" if k + "_std" in s else ""  # noqa: E731
        lines.append(f"{s['label']}: {s['steps']} steps; reward (last 5) {s['reward_last5']:.3f}; "
                     f"incorrect-response length {s['length_incorrect_first5']:.1f} -> {s['length_incorrect_last5']:.1f}"
                     f"{pm('length_incorrect_last5')} tokens; correct-response length {s['length_correct_first5']:.1f} -> "
                     f"{s['length_correct_last5']:.1f}{pm('length_correct_last5')} tokens")
        for name, e in s["eval"].items():
            if e:
                spread = f" +- {e['last_std']:.3f}" if "last_std" in e else ""
                lines.append(f"  eval {name}: accuracy {e['first']:.3f} -> {e['last']:.3f}{spread} (step {e['step']})")
    return "\n".join(lines) + "\n"


def run_report(cfg) -> Path:
    """``drzero report``: the page, and the summary printed."""
    validate(cfg)  # the run folders and --output, before anything is written
    page = make_report(list(cfg.runs), cfg.output)
    print(summary_text(json.loads((page.parent / "summary.json").read_text())), end="")
    print(f"wrote {page}")
    return page
