"""``drzero pilot``: the article's advice as one command (docs/pilot.md).

    drzero pilot --model toy-v2 --budget 15m --output runs/pilot-toy-v2
    drzero pilot --model Qwen/Qwen2.5-Math-1.5B --engine vllm --steps 20 --output runs/pilot-qwen
    drzero pilot --resume runs/pilot-toy-v2            # an interrupted pilot carries on

Four stages, in the article's order, each with a progress line and its output kept on disk:

1. probe   (probe/): per template the answering or format rate and greedy accuracy, pass@k
           against temperature, self-reflection (``drzero.probe.run_probe``); the template is
           the probe's recommendation unless --template. A model that never samples a correct
           answer, or that no template makes answer, is a no-go here: nothing is trained.
2. train   (runs/grpo, runs/dr_grpo): GRPO and Dr. GRPO from one seed, on the same questions,
           with the same template, temperature and number of iterations (``drzero.train.train``,
           bias monitor on). Under a wall-clock budget they advance in alternating chunks
           until the training share of the budget is spent.
3. eval    (eval/): greedy accuracy on held-out questions of the base model and both runs.
4. page    (pilot/): index.html, verdict.json, recipe.yaml (``drzero train --config`` runs it)
           and plan.txt (``drzero plan``'s estimate for the full run, when that command exists).

The verdict's rules and their sources are in ``decide`` and docs/pilot.md. State between
stages: pilot.json (what finished, seconds spent), config.yaml (the resolved config, which
``--resume`` reads).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from drzero.analysis import BiasMonitor, mean_or_nan
from drzero.config import PilotConfig, ProbeConfig, TrainConfig
from drzero.inputs import BUNDLED_MODELS, check_model, check_output_path
from drzero.parsing import (apply_overrides, check_train_config, config_text, load_yaml, pilot_budget_seconds,
                            probe_temperatures, validate)
from drzero.data import check_source, hub_offline
from drzero.errors import DrZeroError

STAGES = ("probe", "train", "eval", "page")
ALGOS = ("grpo", "dr_grpo")
DEFAULT_BUDGET = "15m"

# ---- the budget split (wall clock; docs/pilot.md, "Budget"). The probe runs at its set size
# first; the runs may then use the budget up to TRAIN_UNTIL of it (so they get what the probe
# left of the first 80%); the eval and the page share the last 20%.
TRAIN_UNTIL = 0.80
MIN_STAGE_S = {"probe": 60, "train": 120, "eval": 30, "page": 15}  # below these no stage can do its work
MIN_STEPS = 3  # iterations per run before the clock is consulted: the first chunk measures the pace; 3 fit a trend
CHUNK_MAX = 10  # iterations per chunk: a resume point every 10 iterations, and the clock checked as often
SAFETY = 1.15  # a chunk is started only when it fits the time left at 1.15x the measured pace

# ---- the verdict's thresholds (docs/pilot.md, "How the verdict is decided", cites each)
ANSWER_FLOOR = 0.05  # answering (or any-format) rate under which a template "does not make it answer"
PASS_FLOOR = 0.20  # pass@k at the best temperature under which exploration is weak
TRUNCATION_CEIL = 0.05  # share of Dr. GRPO's rollouts at max_new_tokens (last window) above which the budget is short
# reward "rises": the least-squares slope over iterations passes a one-sided 95% t-test, i.e. is
# at least T95[n - 2] standard errors above 0 (Student's t; n - 2 degrees of freedom; beyond the
# table the next smaller entry, which is stricter)
T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
       15: 1.753, 20: 1.725, 30: 1.697, 60: 1.671}
BIAS_ITERATIONS = 300  # toy-v2's full runs needed ~300 iterations before GRPO's wrong responses were clearly longer
GREEDY_DROP = 0.05  # a note (not a reason) when Dr. GRPO's held-out greedy accuracy ends this far below the base


def default_recipe(model: str) -> str:
    return {"toy-v2": "toy-v2-dr_grpo", "toy": "toy-dr_grpo"}.get(model, "qwen2.5-math-1.5b-dr_grpo")


def default_eval_dataset(model: str) -> str:
    return {"toy-v2": "toy-v2:test", "toy": "toy:test"}.get(model, "math500")


# ----------------------------------------------------------------------------- the command
def run_pilot(cfg: PilotConfig, log=print) -> dict:
    """``drzero pilot``: every check first (nothing written before), then the stages that
    have not finished. Returns the verdict record (verdict.json)."""
    validate(cfg)
    cfg, base = prepare(cfg)
    out = Path(cfg.output)
    state = load_state(out) if cfg.resume else {"stages": {}, "spent_s": {}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_text(cfg))
    save_state(out, state)
    budget_s = pilot_budget_seconds(cfg.budget) if cfg.budget else None
    threads = cpu_threads(cfg, state)
    save_state(out, state)
    what = f"budget {cfg.budget} ({budget_s:.0f} s)" if budget_s else f"{cfg.steps} iterations per run"
    log(f"pilot: {cfg.model}, {what}; output {out}" + (" (resumed)" if cfg.resume else "")
        + (f"; {threads} CPU thread{'s' if threads > 1 else ''}" if threads else ""))

    card = stage_probe(cfg, base, out, state, log, budget_s)
    # chosen once and kept in pilot.json: a resumed pilot (maybe on newer code) trains and
    # reports with the template and temperature its runs started with
    template = state.setdefault("template", cfg.template or card["recommended_template"])
    probe_facts = probe_summary(card, template)
    temperature = state.setdefault("temperature", probe_facts["best_temperature"])
    save_state(out, state)
    verdict = decide(probe_facts)
    if verdict["verdict"] == "no-go":
        log(f"pilot: no-go from the probe alone, nothing trained: {'; '.join(r['text'] for r in verdict['reasons'])}")
        return stage_page(cfg, base, out, state, log, card, probe_facts, None, None, template, temperature, budget_s)
    runs = stage_train(cfg, base, out, state, log, template, temperature, budget_s)
    evals = stage_eval(cfg, base, out, state, log, template, runs, budget_s)
    return stage_page(cfg, base, out, state, log, card, probe_facts, runs, evals, template, temperature, budget_s)


def prepare(cfg: PilotConfig) -> tuple[PilotConfig, TrainConfig]:
    """The resolved config and the runs' base training settings, every input checked
    without loading or writing anything: the model (here, since the runs load it), the
    question sets, the recipe, the budget, the output folder."""
    if cfg.resume:
        folder = Path(cfg.resume)
        if not (folder / "pilot.json").is_file():
            raise DrZeroError(f"--resume {cfg.resume}: not a pilot folder (no pilot.json)")
        cfg = dataclasses.replace(cfg, output=str(folder))
    if cfg.budget is None and cfg.steps is None:
        cfg = dataclasses.replace(cfg, budget=DEFAULT_BUDGET)
    if cfg.budget is not None:
        seconds = pilot_budget_seconds(cfg.budget)
        need = sum(MIN_STAGE_S.values())
        if seconds < need:
            raise DrZeroError(f"--budget {cfg.budget} is too small for any stage: a pilot needs at least {need} s "
                              f"({', '.join(f'{k} {v} s' for k, v in MIN_STAGE_S.items())}); or give --steps N")
    check_pilot_model(cfg.model)
    recipe = cfg.recipe or default_recipe(cfg.model)
    base = apply_overrides(TrainConfig, TrainConfig(), load_yaml(recipe), recipe)
    base = dataclasses.replace(
        base, config=None, model=cfg.model, dataset=cfg.dataset or base.dataset, seed=cfg.seed, engine=cfg.engine,
        device=cfg.device, grader_workers=cfg.grader_workers, max_new_tokens=cfg.max_new_tokens or base.max_new_tokens,
        prompts_per_step=cfg.prompts_per_step or base.prompts_per_step, wandb_project=None, trackio=None,
        tensorboard=False, resume=None, overwrite=False)
    if cfg.prompts_per_step:  # a smaller batch: keep one optimizer step per iteration
        base = dataclasses.replace(base, train_batch_size=None, micro_batch_size=None)
    check_train_config(base)
    check_source(base.dataset, "--dataset")
    check_source(cfg.eval_dataset or default_eval_dataset(cfg.model), "--eval-dataset")
    check_output_path(cfg.output)
    out = Path(cfg.output)
    if not cfg.resume and out.is_dir() and any(out.iterdir()):
        if (out / "pilot.json").exists():
            other = _read_json(out / "config.yaml", yaml_file=True) or {}
            raise DrZeroError(f"--output {out} holds another pilot (model {other.get('model', '?')}); continue it with "
                              f"--resume {out}, or give another --output")
        raise DrZeroError(f"--output {out} is not empty and holds no pilot; give a new or empty folder")
    return cfg, base


def check_pilot_model(name: str) -> None:
    """The model the runs load here: bundled, a local folder, or a hub name already in
    the local cache (a pilot does not spend its budget downloading weights)."""
    check_model(name)
    if name in BUNDLED_MODELS or Path(name).expanduser().exists():
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(name, "config.json"), str):
        extra = "" if hub_offline() else f"; download it first (huggingface-cli download {name}) or give a local folder"
        raise DrZeroError(f"unknown model {name!r}: not a bundled model ({', '.join(BUNDLED_MODELS)}), not a local "
                          f"folder, and not in the local Hugging Face cache{extra}")


def cpu_threads(cfg: PilotConfig, state: dict) -> int | None:
    """Threads for the whole pilot on a CPU (None: torch's, as on a GPU or a big machine).
    On at most ``DecodeThreads.FEW_CORES`` cores an OpenMP team whose cores are shared waits
    for its slowest thread at every op: on the 2-core project machine at load ~14, one
    toy-v2 update of 64 responses took 20 s on 1 thread and 82 s on 2. So: all cores when
    they are idle as the pilot starts, else 1; the choice is kept in pilot.json so that a
    resumed pilot computes with the same thread count (logits differ in the last bits)."""
    import os

    import torch

    from drzero import dist
    from drzero.rollout.hf import DecodeThreads, idle_cpus

    threads = cfg.threads or state.get("threads")
    if threads is None and dist.resolve_device(cfg.device) == "cpu":
        cores = os.cpu_count() or 1
        if cores <= DecodeThreads.FEW_CORES:
            idle = idle_cpus(1.0)
            threads = cores if idle is not None and idle >= cores - 0.5 else 1
    if threads:
        torch.set_num_threads(threads)
        state["threads"] = threads
    return threads


# ----------------------------------------------------------------------------- state
def load_state(out: Path) -> dict:
    state = _read_json(out / "pilot.json")
    if not isinstance(state, dict) or "stages" not in state:
        raise DrZeroError(f"{out / 'pilot.json'}: not a pilot state file")
    return state


def save_state(out: Path, state: dict) -> None:
    tmp = out / "pilot.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(out / "pilot.json")


def _read_json(path: Path, yaml_file: bool = False):
    try:
        text = path.read_text()
        return yaml.safe_load(text) if yaml_file else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError):
        return None


def spent(state: dict) -> float:
    return sum(state["spent_s"].values())


def _progress(log, stage: str, text: str, state: dict, budget_s: float | None) -> None:
    clock = f" [{spent(state):.0f} s of {budget_s:.0f} s]" if budget_s else f" [{spent(state):.0f} s]"
    log(f"pilot [{STAGES.index(stage) + 1}/4 {stage}]{clock} {text}")


def _finish(out: Path, state: dict, stage: str, started: float, **extra) -> None:
    state["spent_s"][stage] = state["spent_s"].get(stage, 0.0) + time.perf_counter() - started
    state["stages"][stage] = {"done": True, **extra}
    save_state(out, state)


# ----------------------------------------------------------------------------- 1. probe
def probe_config(cfg: PilotConfig, base: TrainConfig, out: Path) -> ProbeConfig:
    names = [t.strip() for t in cfg.templates.split(",") if t.strip()]
    custom = None
    if cfg.template and "{question}" in cfg.template:
        custom = cfg.template
    elif cfg.template and cfg.template not in names:
        names.append(cfg.template)
    return ProbeConfig(
        model=cfg.model, questions=base.dataset, dataset_config=base.dataset_config, dataset_filter=base.dataset_filter,
        question_column=base.question_column, answer_column=base.answer_column, n_questions=cfg.probe_questions,
        templates=",".join(names), custom_template=custom, system_prompt=base.system_prompt,
        temperatures=cfg.probe_temperatures, n=cfg.probe_n, sample_questions=cfg.probe_sample_questions,
        max_new_tokens=cfg.probe_max_new_tokens or base.max_new_tokens, output=str(out / "probe"),
        judge_endpoint=cfg.judge_endpoint, judge_model=cfg.judge_model, judge_api_key_env=cfg.judge_api_key_env,
        engine=cfg.engine, device=cfg.device, grader=base.grader, grader_workers=cfg.grader_workers, seed=cfg.seed)


def stage_probe(cfg, base, out, state, log, budget_s) -> dict:
    card_path = out / "probe" / "scorecard.json"
    if state["stages"].get("probe", {}).get("done") and card_path.is_file():
        _progress(log, "probe", f"done before: {card_path}", state, budget_s)
        return json.loads(card_path.read_text())
    from drzero.probe import run_probe

    pcfg = probe_config(cfg, base, out)
    temps = probe_temperatures(pcfg.temperatures)
    _progress(log, "probe", f"templates {pcfg.templates}{' + custom' if pcfg.custom_template else ''}: greedy on "
              f"{pcfg.n_questions} questions, {pcfg.n} samples x {pcfg.sample_questions} questions at T = "
              f"{', '.join(map(str, temps))}, {pcfg.max_new_tokens} tokens"
              + (f"; model served at {cfg.endpoint}" if cfg.endpoint else ""), state, budget_s)
    started = time.perf_counter()
    engine = None
    if cfg.endpoint:
        from drzero.rollout import load_engine
        from drzero.rollout.openai_endpoint import api_key_from_env

        (out / "probe").mkdir(parents=True, exist_ok=True)
        engine = load_engine(cfg.model, endpoint=cfg.endpoint, api_key=api_key_from_env(cfg.api_key_env, "--api-key-env"),
                             cache_path=str(out / "probe" / "endpoint_cache.jsonl"))
    card = run_probe(pcfg, log=lambda text: log(f"  {text}"), engine=engine)
    _finish(out, state, "probe", started)
    return card


def _answer_rate(entry: dict) -> tuple[float, str]:
    """The answering rate (judge) when measured, else the rule's any-format rate."""
    if entry.get("answering_rate") is not None:
        return entry["answering_rate"], "answering rate (LLM judge)"
    return entry["any_format_rate"], "final-answer format rate (rule)"


def probe_summary(card: dict, template: str) -> dict:
    """What the verdict reads of the probe's scorecard, for the chosen ``template``: its
    answer rate, greedy accuracy, pass@k per temperature, the best temperature (the highest
    one within a standard error, or one question, of the best pass@k), and every template's answer rate (for
    'no template makes it answer')."""
    label = template if template in card["templates"] else "custom"
    entry = card["templates"][label]
    pk = entry["pass_at_k"]
    k = max((int(key.split("@")[1]) for v in pk.values() for key in v), default=1)
    by_t = {float(t): v[f"pass@{k}"] for t, v in pk.items()}
    top = max(by_t.values())
    # the highest temperature whose pass@k is within one standard error of the best, and at
    # least one question's worth (at pass@k = 100% the binomial error is 0): on the probe's few
    # questions the top values are ties in all but name, and more is explored hotter
    questions = max(1, min(card["config"]["sample_questions"], card["config"]["n_questions"]))
    tolerance = max(math.sqrt(top * (1 - top) / questions), 1 / questions)
    best_t = max(t for t, v in by_t.items() if v >= top - tolerance - 1e-12)
    best_key = next(t for t in pk if float(t) == best_t)
    rate, measure = _answer_rate(entry)
    rates = {name: _answer_rate(e)[0] for name, e in card["templates"].items()}
    return {"template": label, "answer_rate": rate, "answer_measure": measure, "greedy_accuracy": entry["greedy_accuracy"],
            "k": k, "pass_at_k": by_t, "best_temperature": best_t, "best_pass_at_k": by_t[best_t],
            "pass_at_1_best": pk[best_key]["pass@1"],
            "truncation_rate": entry["truncation_rate"], "reflection_rate": entry["reflection_rate_responses"],
            "answer_rates": rates, "recommended": card["recommended_template"], "max_new_tokens": card["max_new_tokens"]}


# ----------------------------------------------------------------------------- 2. the two short runs
def run_config(base: TrainConfig, out: Path, algo: str, template: str, temperature: float, max_steps: int,
               save_every: int) -> TrainConfig:
    """One short run's TrainConfig: the recipe's settings with the pilot's template,
    temperature and objective; no periodic eval (stage 3 evaluates), checkpoints at the ends
    of chunks (the resume points)."""
    run_dir = out / "runs" / algo
    resume = (run_dir / "config.yaml").is_file()
    return dataclasses.replace(
        base, algo=algo, template=template, temperature=temperature, max_steps=max_steps, max_epochs=None,
        eval_datasets="", eval_every=0, save_every=save_every, keep_checkpoints=1, progress=False,
        output_dir=str(run_dir), resume=str(run_dir) if resume else None, overwrite=False)


def steps_done(run_dir: Path) -> int:
    from drzero import checkpoint

    ckpt = checkpoint.latest(run_dir) if (run_dir / "checkpoints").is_dir() else None
    return checkpoint.read_step(ckpt) if ckpt else 0


def next_target(done: int, pace: dict, left_s: float | None, steps: int | None) -> int | None:
    """The iteration both runs advance to next, or None when they are finished: --steps
    in one chunk; else MIN_STEPS first (the pace is measured there), then as many
    iterations as fit ``left_s`` at SAFETY x the measured pace of the pair, at most
    CHUNK_MAX, none when not one more fits."""
    if steps is not None:
        return steps if done < steps else None
    if done < MIN_STEPS or not pace:
        return max(MIN_STEPS, done + 1)
    fit = int(left_s / (SAFETY * sum(pace.values())))
    return done + min(fit, CHUNK_MAX) if fit >= 1 else None


def stage_train(cfg, base, out, state, log, template, temperature, budget_s) -> dict:
    """GRPO and Dr. GRPO, advanced in alternating chunks to the same iteration: first
    MIN_STEPS each (the pace), then chunks that fit the clock (at most CHUNK_MAX), until the
    time left before TRAIN_UNTIL of the budget holds no further chunk; with --steps, one
    chunk of --steps each. Returns {algo: run dir}."""
    from drzero.train import train

    dirs = {algo: out / "runs" / algo for algo in ALGOS}
    info = state["stages"].setdefault("train", {"done": False})
    if info.get("done"):
        _progress(log, "train", f"done before: {info['steps']} iterations per run", state, budget_s)
        return dirs
    pace = info.get("pace_s", {})  # seconds per iteration of each run, measured on its last chunk
    save_every = base.save_every if cfg.steps else 0
    while True:
        done = min(steps_done(dirs[a]) for a in ALGOS)
        left = None if cfg.steps else budget_s * TRAIN_UNTIL - spent(state)
        target = next_target(done, pace, left, cfg.steps)
        if target is None:
            break
        for algo in ALGOS:
            have = steps_done(dirs[algo])
            if have >= target:
                continue
            _progress(log, "train", f"{algo}: iterations {have + 1}-{target} (template {template}, T = {temperature}, "
                      f"{base.prompts_per_step} x {base.group_size} samples, {base.max_new_tokens} tokens)", state, budget_s)
            started = time.perf_counter()
            train(run_config(base, out, algo, template, temperature, target, save_every))
            took = time.perf_counter() - started
            state["spent_s"]["train"] = state["spent_s"].get("train", 0.0) + took
            pace[algo] = took / (target - have)
            info.update(pace_s=pace, steps={a: steps_done(dirs[a]) for a in ALGOS})
            save_state(out, state)
        if cfg.steps:
            break
    info.update(done=True, steps={a: steps_done(dirs[a]) for a in ALGOS})
    save_state(out, state)
    _progress(log, "train", f"done: {info['steps']['grpo']} iterations per run", state, budget_s)
    return dirs


# ----------------------------------------------------------------------------- 3. held-out eval
def stage_eval(cfg, base, out, state, log, template, runs, budget_s) -> dict:
    """Greedy accuracy on ``--eval-limit`` held-out questions of the base model and of each
    run's last checkpoint, at the runs' generation budget. One file per model: a finished
    one is not redone."""
    from drzero import checkpoint, dist
    from drzero.data import load_questions
    from drzero.evaluate import evaluate_rows
    from drzero.rollout import load_engine
    from drzero.grader import Grader
    from drzero.models import load_template

    name = cfg.eval_dataset or default_eval_dataset(cfg.model)
    folder = out / "eval"
    folder.mkdir(exist_ok=True)
    models = {"base": cfg.model, **{a: str(checkpoint.latest(runs[a])) for a in ALGOS}}
    results = {}
    _progress(log, "eval", f"greedy on {cfg.eval_limit} questions of {name}: base, {', '.join(ALGOS)}", state, budget_s)
    rows = grader = tpl = None
    for key, model in models.items():
        path = folder / f"{key}.json"
        if path.is_file():
            results[key] = json.loads(path.read_text())
            continue
        started = time.perf_counter()
        if rows is None:
            rows = load_questions(name, limit=cfg.eval_limit)
            grader = Grader(workers=cfg.grader_workers, mode=base.grader)
            tpl = load_template(template, cfg.model, base.system_prompt)
        engine = load_engine(model, engine=cfg.engine, device=dist.resolve_device(cfg.device),
                             batch_size=256 if cfg.model in BUNDLED_MODELS else 64, seed=cfg.seed)
        res = evaluate_rows(engine, rows, tpl, n=1, temperature=0.0, max_new_tokens=base.max_new_tokens, grader=grader)
        del engine
        results[key] = {"model": model, "dataset": name, **res.metrics}
        path.write_text(json.dumps(results[key], indent=2))
        state["spent_s"]["eval"] = state["spent_s"].get("eval", 0.0) + time.perf_counter() - started
        save_state(out, state)
        _progress(log, "eval", f"{key}: accuracy {res.metrics['accuracy']:.1%}", state, budget_s)
    state["stages"]["eval"] = {"done": True}
    save_state(out, state)
    return results


# ----------------------------------------------------------------------------- the verdict (pure)
def t95(dof: int) -> float:
    """The one-sided 95% critical value of Student's t at ``dof`` degrees of freedom (the
    table's entry at or below ``dof``)."""
    return T95[max(k for k in T95 if k <= max(1, dof))]


def reward_trend(values: list[float]) -> dict:
    """Least-squares slope of ``values`` (one per iteration) and its standard error; the
    fitted change over the run is slope * (n - 1)."""
    n = len(values)
    if n < 3:
        return {"n": n, "slope": float("nan"), "se": float("nan"), "change": float("nan"), "t": float("nan")}
    xs = list(range(n))
    mx, my = statistics.fmean(xs), statistics.fmean(values)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, values)) / sxx
    resid = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, values))
    se = math.sqrt(resid / (n - 2) / sxx) if n > 2 else float("nan")
    t = slope / se if se > 0 else (math.inf if slope > 0 else 0.0)
    return {"n": n, "slope": slope, "se": se, "change": slope * (n - 1), "t": t}


def token_weight_spread(record: dict) -> float:
    """Spread of the length part of the per-token weight in one iteration: the coefficient
    of variation of |w_i| / |A_i| over responses with a nonzero advantage (GRPO: 1/|o_i|, so
    it grows as lengths spread; Dr. GRPO: 1/C for every response, so 0)."""
    parts = [abs(w) / abs(a) for w, a in zip(record["token_weight"], record["advantage"]) if abs(a) > 1e-9]
    if len(parts) < 2:
        return float("nan")
    m = statistics.fmean(parts)
    return statistics.pstdev(parts) / m if m > 0 else float("nan")


def run_findings(metrics: list[dict], weights: list[dict]) -> dict:
    """One run's numbers for the verdict: iterations, the reward trend, start and end
    windows (a fifth of the run, 1 to 5 iterations) of incorrect and correct length, the
    within-question gap, truncation and the per-token weight spread, and the bias monitor
    replayed over its lengths (the warnings the run printed)."""
    rows = sorted((m for m in metrics if m.get("step", 0) >= 1 and "rollout/reward_mean" in m), key=lambda m: m["step"])
    n = len(rows)
    w = max(1, min(5, n // 5))

    def window(key, part):
        vals = [r.get(key, float("nan")) for r in (rows[:w] if part == 0 else rows[-w:])]
        return mean_or_nan(v for v in vals if v is not None and not math.isnan(v))

    spread = {r["step"]: token_weight_spread(r) for r in weights}
    spread_rows = [spread.get(r["step"], float("nan")) for r in rows]
    monitor, warnings = BiasMonitor(), []
    for r in rows:
        text = monitor.update(r["step"], r["rollout/response_length_correct"], r["rollout/response_length_incorrect"])
        if text:
            warnings.append({"step": r["step"], "text": text})
    keys = {"length_incorrect": "rollout/response_length_incorrect", "length_correct": "rollout/response_length_correct",
            "gap": "rollout/length_gap_within_group", "truncation": "rollout/truncation_rate",
            "reward": "rollout/reward_mean", "question_weight_ratio": "bias/question_weight_max_over_min"}
    out = {"iterations": n, "window": w, "reward_trend": reward_trend([r["rollout/reward_mean"] for r in rows]),
           "monitor_warnings": warnings}
    for name, key in keys.items():
        out[name] = [window(key, 0), window(key, 1)]
    finite = [v for v in spread_rows if not math.isnan(v)]
    out["token_weight_spread"] = [mean_or_nan(finite[:w]), mean_or_nan(finite[-w:])]
    return out


def _rule(rule: str, text: str, source: str) -> dict:
    return {"rule": rule, "text": text, "source": source}


def decide(probe: dict, runs: dict | None = None, evals: dict | None = None) -> dict:
    """The verdict from the probe (``probe_summary``), the two runs (``run_findings`` per
    algo) and the held-out eval: no-go (a probe rule failed), go with care (named reasons),
    or go. Every rule cites its source (docs/pilot.md has the reasoning)."""
    nogo, care, notes = [], [], []
    t, k = probe["template"], probe["k"]
    best_other = max(probe["answer_rates"], key=probe["answer_rates"].get)
    if probe["answer_rates"][best_other] < ANSWER_FLOOR:
        nogo.append(_rule("no template answers", f"no template makes the model answer: the best, {best_other}, "
                          f"{probe['answer_measure']} {probe['answer_rates'][best_other]:.1%} < {ANSWER_FLOOR:.0%}",
                          "paper Sec. 2.1 (the template decides whether a base model answers); floor: docs/pilot.md"))
    elif probe["answer_rate"] < ANSWER_FLOOR:
        nogo.append(_rule("template does not answer", f"template {t} makes the model answer only "
                          f"{probe['answer_rate']:.1%} of the time ({probe['answer_measure']}); {best_other} answers "
                          f"{probe['answer_rates'][best_other]:.1%}: rerun with --template {best_other}",
                          "paper Sec. 2.1; floor: docs/pilot.md"))
    if probe["best_pass_at_k"] <= 0:
        nogo.append(_rule("no correct sample", f"pass@{k} is 0 at every temperature "
                          f"({', '.join(f'T={x:g}' for x in sorted(probe['pass_at_k']))}) under template {t}: every "
                          "group's rewards are equal, every advantage is 0, so RL gets no signal",
                          "paper Sec. 2.2 (exploration, pass@k) and Sec. 3.1 (group-relative advantages R_i - mean(R))"))
    elif probe["best_pass_at_k"] < PASS_FLOOR:
        care.append(_rule("weak exploration", f"pass@{k} is at most {probe['best_pass_at_k']:.1%} (T={probe['best_temperature']:g}): "
                          f"at group size {k} at least {1 - probe['best_pass_at_k']:.0%} of the groups have no correct answer "
                          "and give no gradient", "paper Sec. 2.2; floor: docs/pilot.md (pass@G bounds the informative groups)"))
    if nogo:
        return {"verdict": "no-go", "decided_by": "probe", "reasons": nogo, "care": care, "notes": notes, "bias": None}
    if runs is None:
        return {"verdict": "pending", "decided_by": "probe", "reasons": [], "care": care, "notes": notes, "bias": None}

    dr, grpo = runs["dr_grpo"], runs["grpo"]
    trend = dr["reward_trend"]
    if trend["n"] < 3:
        care.append(_rule("reward does not rise", f"{trend['n']} iterations are too few to tell whether Dr. GRPO's "
                          "reward rises (a trend needs 3 or more)", "the go rule: reward rises under Dr. GRPO (paper Sec. 3.2)"))
    elif not (trend["t"] >= t95(trend["n"] - 2) and trend["change"] > 0):
        care.append(_rule("reward does not rise", f"Dr. GRPO's reward did not clearly rise in {trend['n']} iterations "
                          f"(fitted change {trend['change']:+.3f}, {trend['t']:.1f} standard errors; a one-sided 95% test "
                          f"at {trend['n'] - 2} degrees of freedom needs {t95(trend['n'] - 2):.2f})",
                          "the go rule: reward rises under Dr. GRPO (paper Sec. 3.2); the test: docs/pilot.md"))
    if dr["truncation"][1] > TRUNCATION_CEIL:
        care.append(_rule("truncation", f"{dr['truncation'][1]:.1%} of Dr. GRPO's last responses hit max_new_tokens "
                          f"(> {TRUNCATION_CEIL:.0%}): they get reward 0 whatever they say; raise max_new_tokens",
                          "docs/probe-and-report.md, 'Why GRPO stops near x1.3 at 256 tokens'"))
    if dr["monitor_warnings"]:
        care.append(_rule("lengthening under Dr. GRPO", "the bias monitor warned on the Dr. GRPO run too "
                          f"(iteration {dr['monitor_warnings'][0]['step']}): incorrect responses grow without GRPO's "
                          "1/|o| weight; read the samples for repetition", "drzero.analysis.BiasMonitor; docs/training.md, 'Bias monitor'"))
    bias = bias_finding(grpo, dr)
    if evals and "base" in evals and "dr_grpo" in evals:
        b, d = evals["base"]["accuracy"], evals["dr_grpo"]["accuracy"]
        if d < b - GREEDY_DROP:
            notes.append(f"held-out greedy accuracy fell under Dr. GRPO ({b:.1%} -> {d:.1%}); on toy-v2 both objectives "
                         "trade greedy accuracy in the first ~20 iterations and recover it by 300 "
                         "(docs/probe-and-report.md, 'Three seeds, to 200 and to 300 iterations')")
    verdict = "go with care" if care else "go"
    return {"verdict": verdict, "decided_by": "probe and runs", "reasons": care, "care": care, "notes": notes,
            "bias": bias}


def bias_finding(grpo: dict, dr: dict) -> dict:
    """GRPO's length bias: 'visible' when the bias monitor warned on the GRPO run (and not
    on Dr. GRPO's); otherwise 'inconclusive' under BIAS_ITERATIONS iterations (a short run
    cannot show its absence), 'not seen' beyond. The early indicators (within-question gap,
    per-token weight spread) are reported beside it."""
    n = grpo["iterations"]
    if grpo["monitor_warnings"] and not dr["monitor_warnings"]:
        status = "visible"
        text = (f"GRPO's length bias is visible: the bias monitor warned at iteration {grpo['monitor_warnings'][0]['step']} "
                f"(incorrect responses {grpo['length_incorrect'][0]:.0f} -> {grpo['length_incorrect'][1]:.0f} tokens, "
                f"Dr. GRPO's {dr['length_incorrect'][0]:.0f} -> {dr['length_incorrect'][1]:.0f}); the recipe's Dr. GRPO "
                "removes it (paper Sec. 3.2)")
    elif grpo["monitor_warnings"]:
        status = "visible under both"
        text = "the bias monitor warned on both runs: the lengthening is not GRPO's normalisation alone"
    elif n < BIAS_ITERATIONS:
        status = "inconclusive"
        text = (f"inconclusive, not clean: {n} iterations cannot show GRPO's length bias either way (on toy-v2 the full "
                f"runs needed about {BIAS_ITERATIONS} iterations before GRPO's incorrect responses were clearly longer, "
                "docs/probe-and-report.md); the within-question gap and the per-token weight spread below move earlier")
    else:
        status = "not seen"
        text = f"the bias monitor stayed silent over {n} iterations of GRPO"
    early = (f"within-question gap (unrewarded - rewarded length) GRPO {grpo['gap'][0]:.1f} -> {grpo['gap'][1]:.1f} "
             f"tokens, Dr. GRPO {dr['gap'][0]:.1f} -> {dr['gap'][1]:.1f}; per-token weight spread (CV of |w|/|A|) "
             f"GRPO {grpo['token_weight_spread'][0]:.2f} -> {grpo['token_weight_spread'][1]:.2f}, Dr. GRPO "
             f"{dr['token_weight_spread'][0]:.2f} -> {dr['token_weight_spread'][1]:.2f}; per-question weight max/min "
             f"GRPO {grpo['question_weight_ratio'][1]:.2f}, Dr. GRPO {dr['question_weight_ratio'][1]:.2f} (last "
             f"{grpo['window']} iterations)")
    return {"status": status, "text": text, "early_signs": early, "iterations": n}


# ----------------------------------------------------------------------------- 4. the page, verdict.json, recipe.yaml
def full_recipe(cfg: PilotConfig, base: TrainConfig, template: str, temperature: float) -> TrainConfig:
    """The full run: the recipe's settings with the pilot's template, Dr. GRPO, the best
    exploration temperature, the recipe's own budget (max_steps / max_epochs) and eval."""
    recipe = cfg.recipe or default_recipe(cfg.model)
    original = apply_overrides(TrainConfig, TrainConfig(), load_yaml(recipe), recipe)
    return dataclasses.replace(
        original, config=None, model=cfg.model, dataset=base.dataset, algo="dr_grpo", template=template,
        temperature=temperature, seed=cfg.seed, max_new_tokens=base.max_new_tokens, engine=cfg.engine,
        device=cfg.device, output_dir=str(Path(cfg.output) / "full-run"), resume=None, overwrite=False,
        eval_datasets=original.eval_datasets or (cfg.eval_dataset or default_eval_dataset(cfg.model)))


def recipe_text(full: TrainConfig, cfg: PilotConfig, probe: dict, pace: dict, plan_line: str, verdict: str) -> str:
    defaults = dataclasses.asdict(TrainConfig())
    skip = {"config", "resume", "overwrite"}
    values = {k: v for k, v in dataclasses.asdict(full).items()
              if k not in skip and (v != defaults[k] or k in ("model", "algo", "template", "temperature", "max_steps"))}
    steps = full.max_steps if full.max_epochs is None else f"{full.max_epochs} epochs"
    eta = ""
    if pace.get("dr_grpo") and full.max_epochs is None:
        eta = f"; at the pilot's pace here ({pace['dr_grpo']:.1f} s per iteration) about {pace['dr_grpo'] * full.max_steps / 60:.0f} min"
    head = [f"# drzero pilot's recipe for the full run of {cfg.model} (docs/pilot.md). Run it:",
            f"#   drzero train --config {Path(cfg.output) / 'pilot' / 'recipe.yaml'}",
            f"# Starts from {cfg.recipe or default_recipe(cfg.model)}; the pilot chose:",
            (f"#   template {full.template}: {'given by --template' if cfg.template else 'the probe recommends it'} "
             f"(greedy accuracy {probe['greedy_accuracy']:.1%}, {probe['answer_measure']} {probe['answer_rate']:.1%})"),
            "#   algo dr_grpo: the paper's unbiased objective (Sec. 3.2); the pilot ran GRPO beside it",
            (f"#   temperature {full.temperature:g}: the best exploration the probe measured (pass@{probe['k']} "
             f"{probe['best_pass_at_k']:.1%})"),
            f"#   budget: {steps} policy iterations, the starting recipe's{eta}",
            f"# drzero plan: {plan_line}"]
    if verdict == "no-go":
        head.insert(0, "# VERDICT NO-GO: the pilot advises against this run; reasons in verdict.json beside this file.")
    return "\n".join(head) + "\n" + yaml.safe_dump(values, sort_keys=False)


def plan_estimate(recipe_path: Path) -> str:
    """``drzero plan``'s memory and time estimate for the recipe, or a line saying why not."""
    try:
        done = subprocess.run([sys.executable, "-m", "drzero", "plan", "--config", str(recipe_path)],
                              check=False, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"drzero plan did not finish ({e})"
    text = (done.stdout or done.stderr).strip()
    return text if done.returncode == 0 else f"drzero plan failed: {text.splitlines()[-1] if text else done.returncode}"


def plan_summary(text: str) -> str:
    """One line of ``drzero plan``'s output for the recipe's header: where, whether it fits,
    and how long (or the line saying why there is no estimate)."""
    lines = [line.strip() for line in text.splitlines()]
    keep = [line.removeprefix("drzero plan: ").removesuffix(", memory per GPU") for line in lines
            if line.startswith("drzero plan: ")][:1]
    keep += [line for line in lines if line.startswith(("fits:", "does NOT fit", "total:"))]
    return "; ".join(keep) if len(keep) > 1 else (lines[-1] if lines else "")


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(alt)}</figcaption></figure>"


def _plot_series(runs: dict, series: dict, title: str, ylabel: str, path: Path) -> None:
    """Both runs overlaid: ``series`` = {algo: {label: (steps, values)}}; solid, dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, algo in enumerate(runs):
        for (label, (x, y)), style in zip(series[algo].items(), ("-", "--")):
            ax.plot(x, y, style, color=f"C{i}", marker="." if len(x) < 30 else None, label=f"{algo} {label}".strip())
    ax.set_xlabel("policy iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def stage_page(cfg, base, out, state, log, card, probe, runs, evals, template, temperature, budget_s) -> dict:
    """verdict.json, recipe.yaml, plan.txt and index.html (plots embedded), always rebuilt
    from the stages' outputs on disk (cheap)."""
    from drzero.report import load_run, make_report, series

    page_dir = out / "pilot"
    page_dir.mkdir(exist_ok=True)
    _progress(log, "page", f"verdict, recipe and {page_dir / 'index.html'}", state, budget_s)
    started = time.perf_counter()
    findings = loaded = None
    if runs:
        loaded = {a: load_run(str(runs[a])) for a in ALGOS}
        findings = {a: run_findings(loaded[a]["metrics"], loaded[a]["weights"]) for a in ALGOS}
    verdict = decide(probe, findings, evals)
    pace = state["stages"].get("train", {}).get("pace_s", {})
    full = full_recipe(cfg, base, template, temperature)
    recipe_path = page_dir / "recipe.yaml"
    recipe_path.write_text(recipe_text(full, cfg, probe, pace, "(estimating)", verdict["verdict"]))
    plan_line = plan_estimate(recipe_path)
    (page_dir / "plan.txt").write_text(plan_line + "\n")
    recipe_path.write_text(recipe_text(full, cfg, probe, pace, plan_summary(plan_line), verdict["verdict"]))
    record = {"verdict": verdict["verdict"], "decided_by": verdict["decided_by"],
              "reasons": verdict["reasons"], "notes": verdict["notes"], "bias": verdict["bias"],
              "model": cfg.model, "template": template, "temperature": temperature, "probe": probe,
              "runs": findings, "eval": evals, "recipe": str(recipe_path), "plan": plan_line,
              "budget": cfg.budget, "steps": cfg.steps, "spent_s": state["spent_s"]}
    (page_dir / "verdict.json").write_text(json.dumps(record, indent=2, default=str))

    figures = [_img(out / "probe" / n, t) for n, t in (("answering_rate.png", "Probe: answering / format rate per template"),
                                                        ("pass_at_k.png", "Probe: pass@k vs temperature"),
                                                        ("reflection.png", "Probe: self-reflection"))]
    run_figures = []
    if runs:
        make_report([str(runs[a]) for a in ALGOS], str(page_dir / "runs"))
        for name, title in (("reward.png", "Reward"), ("length_split.png", "Length: rewarded (solid) vs unrewarded (dashed)"),
                            ("length_gap.png", "Within-question gap: unrewarded - rewarded length"),
                            ("truncation.png", "Truncation rate"), ("weights.png", "Per-question and per-token weights")):
            run_figures.append(_img(page_dir / "runs" / name, title))
        spread = {a: {"": ([r["step"] for r in loaded[a]["weights"]],
                           [token_weight_spread(r) for r in loaded[a]["weights"]])} for a in ALGOS}
        _plot_series(loaded, spread, "Per-token weight spread: CV of |w_i|/|A_i| (GRPO 1/|o_i|; Dr. GRPO constant)",
                     "coefficient of variation", page_dir / "token_weight_spread.png")
        qw = {a: {"": series(loaded[a]["metrics"], "bias/question_weight_max_over_min")} for a in ALGOS}
        _plot_series(loaded, qw, "Per-question weight, max / min over informative groups", "ratio",
                     page_dir / "question_weight_ratio.png")
        tw = {a: {"rewarded": series(loaded[a]["metrics"], "bias/token_weight_abs_correct"),
                  "unrewarded": series(loaded[a]["metrics"], "bias/token_weight_abs_incorrect")} for a in ALGOS}
        _plot_series(loaded, tw, "|per-token weight|: rewarded (solid) vs unrewarded (dashed)", "|w|",
                     page_dir / "token_weight.png")
        run_figures += [_img(page_dir / n, t) for n, t in (
            ("token_weight_spread.png", "Per-token weight spread"), ("token_weight.png", "|per-token weight| by outcome"),
            ("question_weight_ratio.png", "Per-question weight ratio"))]
    (page_dir / "index.html").write_text(page_html(cfg, card, probe, verdict, findings, evals, template, temperature,
                                                   recipe_path, plan_line, figures, run_figures, state))
    _finish(out, state, "page", started)
    log(f"pilot: verdict {verdict['verdict'].upper()}"
        + "".join(f"\n  - {r['text']}" for r in verdict["reasons"])
        + (f"\n  bias: {verdict['bias']['status']}" if verdict["bias"] else ""))
    log(f"pilot: wrote {page_dir / 'index.html'}, {page_dir / 'verdict.json'}, {recipe_path} "
        f"({spent_text(state, budget_s)})")
    return record


def spent_text(state: dict, budget_s: float | None) -> str:
    """Seconds spent, per stage, and the overrun of a wall-clock budget when there is one."""
    text = f"{spent(state):.0f} s in all: " + ", ".join(f"{k} {v:.0f} s" for k, v in state["spent_s"].items())
    if budget_s and spent(state) > budget_s:
        text += f"; over the {budget_s:.0f} s budget by {spent(state) - budget_s:.0f} s"
        if state["spent_s"].get("probe", 0) > budget_s * TRAIN_UNTIL:
            text += " (the probe alone took more than the first 80%; the runs then did their minimum of " \
                    f"{MIN_STEPS} iterations each)"
    return text


def page_html(cfg, card, probe, verdict, findings, evals, template, temperature, recipe_path, plan_line, figures,
              run_figures, state) -> str:
    e = html.escape
    color = {"go": "#2a7", "go with care": "#d90", "no-go": "#c33"}[verdict["verdict"]]
    parts = [f"<h1>Pilot: {e(cfg.model)}</h1>",
             f"<p class='v' style='background:{color}'>Verdict: {e(verdict['verdict'].upper())}</p>"]
    if verdict["reasons"]:
        parts.append("<ul>" + "".join(f"<li>{e(r['text'])} <small>(rule: {e(r['rule'])}; source: {e(r['source'])})</small></li>"
                                      for r in verdict["reasons"]) + "</ul>")
    elif verdict["verdict"] == "go":
        trend = findings["dr_grpo"]["reward_trend"]
        parts.append(f"<p>The model samples correct answers (pass@{probe['k']} {probe['best_pass_at_k']:.1%} at "
                     f"T={probe['best_temperature']:g}), template {e(template)} makes it answer "
                     f"({probe['answer_measure']} {probe['answer_rate']:.1%}), and reward rises under Dr. GRPO "
                     f"(fitted change {trend['change']:+.3f} over {trend['n']} iterations, {trend['t']:.1f} standard errors).</p>")
    for note in verdict["notes"]:
        parts.append(f"<p><i>Note: {e(note)}</i></p>")
    budget_s = pilot_budget_seconds(cfg.budget) if cfg.budget else None
    threads = f"; {state['threads']} CPU thread(s)" if state.get("threads") else ""
    parts.append(f"<p>Budget: {e(cfg.budget or f'{cfg.steps} iterations per run')}; spent "
                 f"{e(spent_text(state, budget_s))}{threads}.</p>")
    parts.append("<h2>1. Probe</h2>")
    pk_key = f"pass@{probe['k']}"
    rows = "".join(
        "<tr><td>" + e(n) + "</td><td>" + ("" if t.get("answering_rate") is None else f"{t['answering_rate']:.1%}")
        + f"</td><td>{t['any_format_rate']:.1%}</td><td>{t['greedy_accuracy']:.1%}</td>"
        f"<td>{max(v[pk_key] for v in t['pass_at_k'].values()):.1%}</td>"
        f"<td>{t['reflection_rate_responses']:.1%}</td><td>{t['truncation_rate']:.1%}</td></tr>"
        for n, t in card["templates"].items())
    parts.append("<table><tr><th>template</th><th>answering rate (judge)</th><th>final-answer format (rule)</th>"
                 f"<th>greedy accuracy</th><th>best pass@{probe['k']}</th><th>self-reflection</th><th>truncated</th></tr>"
                 f"{rows}</table>")
    parts.append(f"<p>Template: <b>{e(template)}</b> ({'given' if cfg.template else 'the probe recommends it: ' + e(card['reason'])}). "
                 f"Sampling temperature: <b>{temperature:g}</b> (the highest pass@{probe['k']}: "
                 + ", ".join(f"T={t:g} {v:.1%}" for t, v in sorted(probe["pass_at_k"].items())) + ").</p>")
    parts += figures
    if findings:
        n = findings["grpo"]["iterations"]
        parts.append(f"<h2>2. GRPO vs Dr. GRPO, {n} iterations each</h2>")
        rows = "".join(
            f"<tr><td>{a}</td><td>{f['reward'][0]:.3f} &rarr; {f['reward'][1]:.3f}</td>"
            f"<td>{f['reward_trend']['change']:+.3f} ({f['reward_trend']['t']:.1f} SE)</td>"
            f"<td>{f['length_incorrect'][0]:.0f} &rarr; {f['length_incorrect'][1]:.0f}</td>"
            f"<td>{f['length_correct'][0]:.0f} &rarr; {f['length_correct'][1]:.0f}</td>"
            f"<td>{f['gap'][0]:.1f} &rarr; {f['gap'][1]:.1f}</td>"
            f"<td>{f['token_weight_spread'][0]:.2f} &rarr; {f['token_weight_spread'][1]:.2f}</td>"
            f"<td>{f['truncation'][1]:.1%}</td><td>{len(f['monitor_warnings'])}</td></tr>" for a, f in findings.items())
        w = findings["grpo"]["window"]
        parts.append(f"<table><tr><th>run</th><th>reward (first &rarr; last {w})</th><th>fitted reward change</th>"
                     "<th>unrewarded length</th><th>rewarded length</th><th>within-question gap</th>"
                     "<th>per-token weight spread</th><th>truncated (last)</th><th>bias monitor warnings</th></tr>"
                     f"{rows}</table>")
        b = verdict["bias"]
        parts.append(f"<h3>What the bias monitor found: {e(b['status'])}</h3><p>{e(b['text'])}.</p>"
                     f"<p>Early indicators: {e(b['early_signs'])}.</p>")
        parts += run_figures
    if evals:
        parts.append(f"<h2>3. Held-out greedy eval ({e(evals['base']['dataset'])}, {evals['base']['n_questions']} questions)</h2>")
        parts.append("<table><tr><th>model</th><th>accuracy</th><th>length correct / incorrect</th><th>truncated</th></tr>"
                     + "".join(f"<tr><td>{k}</td><td>{v['accuracy']:.1%}</td><td>{v['length_correct']:.0f} / "
                               f"{v['length_incorrect']:.0f}</td><td>{v['truncation_rate']:.1%}</td></tr>"
                               for k, v in evals.items()) + "</table>")
    parts.append("<h2>4. Recipe for the full run</h2>")
    parts.append(f"<p><code>drzero train --config {e(str(recipe_path))}</code></p><pre>{e(recipe_path.read_text())}</pre>")
    parts.append(f"<h3>drzero plan</h3><pre>{e(plan_line)}</pre>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>drzero pilot: " + e(cfg.model) + "</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:4px 8px}.v{color:#fff;padding:.5em 1em;font-size:1.4em;display:inline-block}"
            "figure{display:inline-block;margin:6px}img{max-width:520px}pre{background:#f5f5f5;padding:1em;"
            "white-space:pre-wrap}</style></head><body>" + "".join(parts) + "</body></html>")
