"""From a command line and YAML files to a checked config: ``parse_config`` is the one way
in for every command, ``validate`` the one check before anything is loaded or written.

Precedence: dataclass defaults < ``--config recipe.yaml`` < command-line flags (and for
``train --resume RUN``: the run's own config.yaml first). YAML values are converted to the
field's type or refused in one line naming the key (``coerce``); a flag tyro refuses is
said the same way (``flag_error``). A training run's resolved config is written to its
run directory as ``config.yaml`` (``config_text``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import math
import os
import types
import typing
from pathlib import Path
from typing import Literal, Union

import tyro
import yaml

from drzero.algo import PRESETS, Objective, resolve_objective
from drzero.config import (EvalConfig, PilotConfig, PlanConfig, ProbeConfig, PushConfig, ReportConfig, SimulateConfig,
                           ToyBuildConfig, TrainConfig, check_ranges, flag_name, range_error, resolved_micro_batch_size)
from drzero.data import check_source
from drzero.errors import DrZeroError
from drzero.inputs import check_model, check_output_path, check_url


def parse_config(cls, argv: list[str], prog: str):
    """The one way in for every command: ``cls`` defaults, then ``--resume RUN``'s
    config.yaml (train), then ``--config FILE``, then the flags (parsed by tyro)."""
    early = _early_flags(argv, ("config", "resume"))
    base = cls()
    if early.get("resume") and "resume" in _field_names(cls):  # a run continues with its own settings
        run_cfg = Path(early["resume"]) / "config.yaml"
        if not run_cfg.is_file():
            raise DrZeroError(f"--resume {early['resume']}: not a run directory (no config.yaml)")
        base = apply_overrides(cls, base, load_yaml(str(run_cfg)), str(run_cfg))
    if early.get("config"):
        base = apply_overrides(cls, base, load_yaml(early["config"]), early["config"])
    cfg = _tyro_cli(cls, base, argv, prog)
    validate(cfg)
    return cfg


def _tyro_cli(cls, base, argv: list[str], prog: str):
    """tyro's parse; a refused flag becomes a one-line DrZeroError (tyro draws a box)."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return tyro.cli(cls, default=base, args=argv, prog=prog, description=cls.__doc__)
    except SystemExit as e:
        if not e.code:  # --help
            raise
        raise DrZeroError(flag_error(cls, argv, prog) or _one_line(stderr.getvalue(), prog)) from None


def flag_error(cls, argv: list[str], prog: str) -> str | None:
    """The first flag in ``argv`` that ``cls`` cannot take, said the way YAML keys are
    (``coerce``): unknown flag, missing value, wrong type, a value given to a switch."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    positional = any(typing.get_origin(h) is typing.Annotated and "Positional" in repr(h) for h in hints.values())
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            if not positional:
                return f"unexpected argument {arg!r}; options are --name VALUE (see {prog} --help)"
            continue
        name, has_value, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        switch_off = key.startswith("no_") and hints.get(key[3:]) is bool
        if switch_off:
            key = key[3:]
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {flag_name(close[0])}?)" if close else ""
            return f"unknown option {arg.split('=')[0]}{hint}; see {prog} --help"
        if hints[key] is bool:
            extra = value if has_value else (argv[i] if i < len(argv) and not argv[i].startswith("--") else None)
            if extra is not None and not positional:
                return (f"{flag_name(key)} is a switch and takes no value (got {extra!r}): write {flag_name(key)} "
                        f"or --no-{key.replace('_', '-')}")
            continue
        if not has_value:
            if i >= len(argv) or (argv[i].startswith("--") and len(argv[i]) > 2):
                return f"{arg} needs a value"
            value = argv[i]
            i += 1
        try:
            _coerce_flag(value, hints[key], arg.split("=")[0])
        except DrZeroError as e:
            return str(e)
    return None


def _coerce_flag(value: str, hint, where: str):
    """A flag's text as ``hint``, with the YAML rules; ``None`` stands for None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return _coerce_flag(value, args[0], where)
    if origin in (Union, types.UnionType) and type(None) in args and value == "None":
        return None
    if hint in (int, float) or origin in (Union, types.UnionType) and any(a in (int, float) for a in args):
        numeric = next(a for a in (args or (hint,)) if a in (int, float))
        if numeric is int and value.strip().lstrip("+-").isdigit():
            return int(value)
        if numeric is float:
            try:
                return float(value)
            except ValueError:
                pass
        raise DrZeroError(f"{where}: expected {'an integer' if numeric is int else 'a number'}, got {value!r}")
    return coerce(value, hint, where)


def _one_line(text: str, prog: str) -> str:
    """tyro's boxed message as one line: its body up to the first rule, unboxed."""
    lines = []
    for line in text.splitlines()[1:]:
        body = line.strip().strip("│").strip()
        if not body or body.startswith("╰") or set(body) <= set("─"):
            break
        lines.append(body)
    return " ".join(" ".join(lines).split()) or f"invalid arguments; see {prog} --help"


def _early_flags(argv: list[str], names: tuple[str, ...]) -> dict[str, str]:
    """Values of ``--name VALUE`` / ``--name=VALUE`` that must be known before parsing
    (they decide the defaults). They stay in argv: tyro parses them as fields too."""
    found = {}
    for i, arg in enumerate(argv):
        for name in names:
            if arg == f"--{name}" and i + 1 < len(argv):
                found[name] = argv[i + 1]
            elif arg.startswith(f"--{name}="):
                found[name] = arg.split("=", 1)[1]
    return found


def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


RECIPES_DIR = Path(__file__).parent / "recipes"


def bundled_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def resolve_config_path(name: str) -> Path:
    """``--config``: a YAML file, or the name of a recipe shipped with drzero
    (``qwen2.5-math-7b-dr_grpo``, ``toy-grpo``, ...; ``drzero/recipes/``)."""
    p = Path(name).expanduser()
    if p.exists() or "/" in name or name.startswith("."):
        return p
    bundled = RECIPES_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if bundled.is_file():
        return bundled
    raise DrZeroError(f"config file {name!r} does not exist, and it is not a bundled recipe "
                      f"({', '.join(bundled_recipes())})")


def load_yaml(path: str) -> dict:
    p = resolve_config_path(path)
    if not p.exists():
        raise DrZeroError(f"config file {path!r} does not exist")
    if not p.is_file():
        raise DrZeroError(f"config file {path!r} is not a file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DrZeroError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DrZeroError(f"{path}: expected a mapping of config keys")
    return data


def apply_overrides(cls, base, overrides: dict, source: str):
    """``base`` with ``overrides`` applied, each converted to its field's type; unknown keys
    and values of the wrong type are refused with a one-line message naming the key."""
    unknown = sorted(set(overrides) - _field_names(cls))
    if unknown:
        raise DrZeroError(f"{source}: unknown config key(s) {', '.join(unknown)}; see --help for the valid ones")
    hints = typing.get_type_hints(cls, include_extras=True)
    return dataclasses.replace(base, **{k: coerce(v, hints[k], f"{source}: {k}") for k, v in overrides.items()})


def coerce(value, hint, where: str):
    """``value`` (from YAML) as type ``hint``: ``1e-6`` (a string to PyYAML) -> 1e-06 for a
    float, ``3`` -> 3.0; strings that are not numbers, non-booleans for a flag, and values
    outside a Literal's choices raise DrZeroError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return coerce(value, args[0], where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option, where)
            except DrZeroError as e:
                errors.append(str(e))
        raise DrZeroError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is none of the accepted types")
    if origin is Literal:
        if value not in args:
            raise DrZeroError(f"{where}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise DrZeroError(f"{where}: expected a list, got {value!r}")
        return tuple(coerce(v, args[0], where) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise DrZeroError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise DrZeroError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise DrZeroError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (dict, list)) or value is None:
            raise DrZeroError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


# ----------------------------------------------------------------------------- combinations
# Ranges of single fields are config.RANGES (``check_ranges``); these are the rules between fields.
def check_train_config(cfg: TrainConfig) -> None:
    """Refuse impossible training settings, saying why (no file is touched)."""
    check_ranges(cfg)
    try:  # the objective's knobs together (drzero.algo.check_objective: unknown values, refused combinations)
        resolve_objective(cfg.algo, max_new_tokens=cfg.max_new_tokens,
                          **{f.name: getattr(cfg, f.name) for f in dataclasses.fields(Objective)})
    except ValueError as e:
        raise DrZeroError(f"--algo {cfg.algo}: {e}") from None
    _check_template(cfg.template)
    n = cfg.prompts_per_step * cfg.group_size
    tbs = cfg.train_batch_size or n
    if tbs > n:
        raise DrZeroError(f"train_batch_size={tbs} exceeds the {n} responses of one iteration (prompts_per_step*group_size)")
    if n % tbs:
        raise DrZeroError(f"train_batch_size={tbs} must divide prompts_per_step*group_size={n} so every optimizer step has the same size")
    micro = resolved_micro_batch_size(cfg)
    if micro > tbs:
        raise DrZeroError(f"micro_batch_size={micro} exceeds train_batch_size={tbs}")
    if tbs % micro:
        raise DrZeroError(f"micro_batch_size={micro} must divide train_batch_size={tbs} for exact gradient accumulation")
    if cfg.sharding == "fsdp" and cfg.lora_rank:
        raise DrZeroError("sharding=fsdp with LoRA is not supported: LoRA already keeps optimizer state small; "
                          "use sharding=none (data parallel) with --lora-rank")
    check_names(cfg.eval_datasets, "--eval-datasets", allow_empty=True)
    if cfg.tensor_parallel_size > 1 and cfg.engine != "vllm":
        raise DrZeroError("tensor_parallel_size > 1 needs --engine vllm")
    if cfg.tensor_parallel_size > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DrZeroError("tensor_parallel_size > 1 under torchrun is not supported: every rank runs its own engine on "
                          "its own prompts; launch one process (vLLM starts its own workers) or use 1")


def check_eval_config(cfg: EvalConfig) -> None:
    """Refuse impossible eval settings, saying why (no file is touched)."""
    check_ranges(cfg)
    if cfg.template is not None:  # None: qwen_math, or the paper's template for the model with --paper
        _check_template(cfg.template)
    check_names(cfg.benchmarks, "--benchmarks")
    if cfg.n > 1 and cfg.temperature == 0:
        raise DrZeroError(f"--n {cfg.n} with --temperature 0 gives {cfg.n} identical greedy samples; "
                          "use --n 1 for greedy or a --temperature > 0 for pass@k")
    if cfg.endpoint:
        check_url(cfg.endpoint, "--endpoint")


def check_probe_config(cfg: ProbeConfig) -> None:
    """Refuse impossible probe settings, saying why (no file is touched)."""
    check_ranges(cfg)
    for name in check_names(cfg.templates, "--templates", allow_empty=cfg.custom_template is not None):
        _check_template(name, "--templates")
    if cfg.custom_template is not None and "{question}" not in cfg.custom_template:
        raise DrZeroError("--custom-template must contain {question}")
    probe_temperatures(cfg.temperatures)
    if cfg.judge_endpoint:
        check_url(cfg.judge_endpoint, "--judge-endpoint")


def check_report_config(cfg: ReportConfig) -> None:
    if not cfg.runs:
        raise DrZeroError("give at least one run directory: drzero report RUN_DIR [RUN_DIR ...] --output DIR")


def check_simulate_config(cfg: SimulateConfig) -> None:
    check_ranges(cfg)
    names = check_names(cfg.objectives, "--objectives")
    bad = [o for o in names if o not in PRESETS]
    if bad:
        raise DrZeroError(f"--objectives must be names from {', '.join(PRESETS)}, got {bad[0]!r}")
    if min(cfg.path_tokens) < 2 or cfg.max_new_tokens <= max(cfg.path_tokens):
        raise DrZeroError("--path-tokens must be >= 2 (the path and slip decisions) and --max-new-tokens must exceed "
                          "the longest path")
    if cfg.algo is not None and cfg.algo != "all":
        raise DrZeroError(f"--algo (key algo) must be all (the bias table of every preset), got {cfg.algo!r}; "
                          "pick objectives with --objectives")


def check_push_config(cfg: PushConfig) -> None:
    check_ranges(cfg)
    if not cfg.run:
        raise DrZeroError("push needs a run directory: drzero push RUN_DIR --repo-id ORG/NAME")
    if not cfg.repo_id:
        raise DrZeroError("push needs --repo-id ORG/NAME")


def probe_temperatures(text: str) -> list[float]:
    """``--temperatures`` as numbers, each > 0 (sampling; greedy is probed separately)."""
    try:
        temps = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise DrZeroError(f"--temperatures must be comma-separated numbers, got {text!r}") from None
    if not temps:
        raise DrZeroError("--temperatures is empty; give e.g. 0.4,0.7,1.0")
    bad = [t for t in temps if not (math.isfinite(t) and t > 0)]
    if bad:
        raise DrZeroError(f"--temperatures (key temperatures) must all be > 0 (sampled pass@k), got {bad[0]}")
    return temps


def check_names(text: str, flag: str, *, allow_empty: bool = False) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names and not allow_empty:
        raise DrZeroError(f"{flag} is empty")
    return names


def _check_template(name: str, flag: str = "--template") -> None:
    from drzero.templates import get_template

    if name == "chat":  # built from the model's tokenizer when the command loads it
        return
    try:
        get_template(name)
    except DrZeroError as e:
        raise DrZeroError(f"{flag}: {e}") from None


def check_plan_config(cfg: PlanConfig) -> None:
    if cfg.gpus < 1:
        raise DrZeroError(f"--gpus {cfg.gpus}: a plan needs at least 1 GPU (or --gpu cpu --gpus 1)")
    for name in ("gpu_memory", "gpu_tflops", "gpu_bandwidth"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            raise range_error(name, getattr(cfg, name), "> 0")
    if not 0 < cfg.mfu <= 1 or not 0 < cfg.bandwidth_efficiency <= 1:
        raise DrZeroError("--mfu and --bandwidth-efficiency must be fractions in (0, 1]")
    if cfg.prompt_tokens < 1 or (cfg.response_tokens is not None and cfg.response_tokens < 1):
        raise DrZeroError("--prompt-tokens and --response-tokens must be >= 1")
    if cfg.questions is not None and cfg.questions < 1:
        raise range_error("questions", cfg.questions, ">= 1")
    check_train_config(cfg)


def pilot_budget_seconds(text: str) -> float:
    """``--budget`` as seconds: ``15m``, ``900s``, ``900``, ``1h30m``, ``1.5h``."""
    import re

    s = text.strip().lower().replace(" ", "")
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s?)?", s)
    if not s or not parts or not any(parts.groups()):
        raise DrZeroError(f"--budget {text!r}: write a duration such as 15m, 900s or 1h30m")
    h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + sec


def check_pilot_config(cfg: PilotConfig) -> None:
    """Refuse impossible pilot settings, saying why (no file is touched)."""
    check_ranges(cfg)
    if cfg.budget is not None and cfg.steps is not None:
        raise DrZeroError("give --budget (wall clock) or --steps (iterations per run), not both")
    if cfg.budget is not None:
        pilot_budget_seconds(cfg.budget)
    if cfg.template is not None:
        _check_template(cfg.template)
    for name in check_names(cfg.templates, "--templates", allow_empty=cfg.template is not None):
        _check_template(name, "--templates")
    probe_temperatures(cfg.probe_temperatures)
    for url, flag in ((cfg.endpoint, "--endpoint"), (cfg.judge_endpoint, "--judge-endpoint")):
        if url:
            check_url(url, flag)


CHECKS = {TrainConfig: check_train_config, PlanConfig: check_plan_config, EvalConfig: check_eval_config,
          ProbeConfig: check_probe_config, ReportConfig: check_report_config, SimulateConfig: check_simulate_config, PushConfig: check_push_config,
          ToyBuildConfig: check_ranges, PilotConfig: check_pilot_config}


def check_config(cfg) -> None:
    """The settings alone: types are already right (tyro, ``coerce``); ranges and combinations."""
    CHECKS[type(cfg)](cfg)


# ----------------------------------------------------------------------------- inputs
def check_inputs(cfg) -> None:
    """What a command reads and writes, checked without loading or writing anything (no
    network either): the model folder, the question sets' names and the output folder."""
    if isinstance(cfg, PlanConfig):  # reads only the model's config.json (drzero.plan says if it cannot), writes nothing
        return
    if isinstance(cfg, TrainConfig):
        if not cfg.resume:  # a resumed run loads its checkpoint (checked by drzero.checkpoint)
            check_model(cfg.model)
            check_output_path(cfg.output_dir, "--output-dir")
        check_source(cfg.dataset, "--dataset")
        for name in check_names(cfg.eval_datasets, "--eval-datasets", allow_empty=True):
            check_source(name, "--eval-datasets")
    elif isinstance(cfg, EvalConfig):
        if not cfg.endpoint:
            check_model(cfg.model)
        for name in check_names(cfg.benchmarks, "--benchmarks"):
            check_source(name, "--benchmarks")
        check_output_path(cfg.output)
    elif isinstance(cfg, ProbeConfig):
        check_model(cfg.model)
        check_source(cfg.questions, "--questions")
        check_output_path(cfg.output)
    elif isinstance(cfg, ReportConfig):
        for run in cfg.runs:
            if not (Path(run) / "metrics.jsonl").is_file():
                raise DrZeroError(f"{run}: not a training run directory (no metrics.jsonl)")
        check_output_path(cfg.output)
    elif isinstance(cfg, SimulateConfig) and cfg.output:
        check_output_path(cfg.output)
    elif isinstance(cfg, ToyBuildConfig):
        if not cfg.output:
            raise DrZeroError("--output is required: the folder to write the toy model to")
        check_output_path(cfg.output)
        if cfg.init:
            check_model(cfg.init, "--init")


def validate(cfg) -> None:
    """The one validation path: ``check_config`` (ranges, combinations) then ``check_inputs``
    (model, data names, output folder). Every command calls it before it loads or writes."""
    check_config(cfg)
    check_inputs(cfg)


def config_text(cfg) -> str:
    """The resolved config as YAML (what config.yaml holds)."""
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
