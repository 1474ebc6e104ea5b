"""What ``drzero train --resume RUN`` may change, and the record of what it changed.

A resumed run continues with its own config.yaml; a flag given with ``--resume`` overrides
it only where that cannot mix two runs into one. Every field of ``TrainConfig`` is in
exactly one of two tables (``tests/test_faults_resume.py`` fails on a field in neither):

- ``MAY_CHANGE``: how long to go on, how often to evaluate, save and log, where and with
  how much memory to compute (the same gradient), which trackers to feed. A change is
  written to ``RUN/resumes.jsonl`` with the step after which it took effect, and
  config.yaml holds the new value.
- ``RUN_DEFINING``: everything else (the model, the algorithm and every objective knob,
  the data, the seed, the sampling, the optimizer, LoRA, the template, the grader, ...).
  A change is refused in one line naming the setting, its value in the run and the new
  value, before anything loads.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from drzero.errors import DrZeroError

RESUMES = "resumes.jsonl"

# field -> why a resume may change it
MAY_CHANGE = {
    "config": "only a source of defaults",
    "output_dir": "the run folder is --resume's",
    "resume": "names the run",
    "overwrite": "refused with --resume anyway",
    "max_steps": "how long to go on (not with a cosine or linear schedule, whose length it sets)",
    "max_epochs": "how long to go on (not with a cosine or linear schedule, whose length it sets)",
    "eval_every": "evaluation does not change training",
    "eval_datasets": "evaluation does not change training",
    "eval_limit": "evaluation does not change training",
    "eval_question_column": "evaluation does not change training",
    "eval_answer_column": "evaluation does not change training",
    "eval_max_new_tokens": "evaluation does not change training",
    "save_every": "when to checkpoint",
    "keep_checkpoints": "how many checkpoints to keep",
    "log_samples": "what samples.jsonl shows",
    "device": "where to compute",
    "micro_batch_size": "the same gradient in other pieces (not for a per-micro-batch normaliser: check_resume)",
    "logprob_chunk_tokens": "the same log-probs and gradient, the LM head scored in other pieces",
    "gradient_checkpointing": "the same gradient, with less memory",
    "generation_batch_size": "how many sequences the HF engine decodes at once",
    "vllm_memory": "memory for vLLM",
    "tensor_parallel_size": "how vLLM splits the model",
    "grader_workers": "how many processes grade",
    "reward_timeout_s": "a time limit on the --reward function: the rewards it returns are the same",
    "wandb_project": "a tracker",
    "trackio": "a tracker",
    "tensorboard": "a tracker",
    "progress": "the display",
}

RUN_DEFINING = (
    "model", "algo", "dataset", "dataset_split", "dataset_config", "dataset_filter", "question_column", "answer_column",
    "template", "system_prompt", "prompts_per_step", "group_size", "train_batch_size", "ppo_epochs", "max_new_tokens",
    "temperature", "top_p", "lr", "lr_schedule", "warmup_steps", "weight_decay", "adam_beta2", "max_grad_norm", "beta",
    "advantage_scale", "baseline", "aggregation", "constant_normalizer", "clip_eps_low", "clip_eps_high", "tis_cap",
    "ratio_level", "surrogate", "kl_estimator", "filter_zero_variance",
    "reward", "reward_mode", "mask_truncated", "seed", "dtype", "sharding", "lora_rank", "lora_alpha",
    "lora_target_modules", "grader", "grader_timeout_s", "engine", "max_prompt_tokens",
)
LENGTH_FIELDS = ("max_steps", "max_epochs")


def run_config(run_dir: Path, cls):
    """The run's own settings, from its config.yaml (typed as ``cls``)."""
    from drzero.parsing import apply_overrides, load_yaml

    path = Path(run_dir) / "config.yaml"
    return apply_overrides(cls, cls(), load_yaml(str(path)), str(path))


def check_resume(run_dir: Path, cfg) -> dict[str, tuple]:
    """Refuse a resume that changes a run-defining setting (one line: the setting, the
    run's value, the new one); return the settings it may change that it does change,
    ``{field: (old, new)}``."""
    old = run_config(run_dir, type(cfg))
    changed = {f.name: (getattr(old, f.name), getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
               if getattr(old, f.name) != getattr(cfg, f.name)}
    refused = [name for name in changed if name not in MAY_CHANGE]
    if old.lr_schedule != "constant":
        refused += [name for name in LENGTH_FIELDS if name in changed]
    if "micro_batch_size" in changed and _microbatch_normaliser(old):  # the cut is part of such an objective
        refused.append("micro_batch_size")
    if refused:
        what = "; ".join(f"--{n.replace('_', '-')} is {changed[n][0]!r} in the run, {changed[n][1]!r} now"
                         for n in refused[:3])
        why = (f" (the {old.lr_schedule} schedule's length)" if set(refused) <= set(LENGTH_FIELDS)
               else " (a run keeps the settings that define it)")
        raise DrZeroError(f"--resume {run_dir}: {what}{why}; resume without changing it, or start a new run with "
                          f"--output-dir NEW_DIR")
    return {name: changed[name] for name in changed if name not in ("resume", "overwrite", "config", "output_dir")}


def _microbatch_normaliser(cfg) -> bool:
    """Whether the run's objective normalises per micro-batch (verl's and TRL's framework
    presets), so that its gradient depends on the micro-batch size."""
    from drzero.algo import MICROBATCH_AGGREGATIONS, PRESETS

    return (cfg.aggregation or PRESETS[cfg.algo].aggregation) in MICROBATCH_AGGREGATIONS


def record_changes(run_dir: Path, step: int, changes: dict[str, tuple]) -> None:
    """Append one line to ``RUN/resumes.jsonl``: the settings this resume changed, effective
    after ``step`` (rank 0)."""
    if not changes:
        return
    record = {"step": step, "changed": {k: {"old": old, "new": new} for k, (old, new) in changes.items()}}
    with open(Path(run_dir) / RESUMES, "a") as f:
        f.write(json.dumps(record) + "\n")
