"""The R1-Zero-like RL training loop, top to bottom in one function.

    drzero train                                   # toy model, toy task, Dr. GRPO
    drzero train --algo grpo --output-dir runs/toy-grpo
    drzero train --config recipes/qwen2.5-math-1.5b-dr_grpo.yaml

Per policy iteration: sample prompts -> generate G responses each -> grade (parallel,
with timeouts) -> group advantages -> policy update over micro-batches with gradient
accumulation -> log (metrics.jsonl, samples.jsonl, weights.jsonl) -> evaluate -> checkpoint.

Shapes: B prompts per iteration, G samples per prompt, N = B*G responses, T tokens.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from drzero import dist
from drzero.algo import (bias_weights, describe_objective, group_advantages, masked_mean, policy_loss, resolve_objective,
                         tis_weights)
from drzero.analysis import reflection_keywords
from drzero.config import TrainConfig, check_train_config, dump_config
from drzero.data import load_questions
from drzero.errors import DrZeroError
from drzero.evaluate import evaluate_rows
from drzero.grader import grade_batch
from drzero.models import load_model_and_tokenizer, resolve_model_path
from drzero.rollout import SamplingParams
from drzero.rollout.hf import HFEngine
from drzero.templates import get_template

LATEST = "latest"


# ----------------------------------------------------------------------------- helpers
def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def prompt_order(n_rows: int, seed: int, epoch: int) -> np.ndarray:
    """Data order: a fresh seeded permutation per epoch (same on every rank and on resume)."""
    return np.random.default_rng([seed, epoch]).permutation(n_rows)


def step_prompts(n_rows: int, batch: int, seed: int, step: int) -> list[int]:
    """Row indices of the prompts of policy iteration ``step`` (0-based)."""
    out, pos = [], step * batch
    while len(out) < batch:
        epoch, offset = divmod(pos, n_rows)
        order = prompt_order(n_rows, seed, epoch)
        take = min(batch - len(out), n_rows - offset)
        out.extend(order[offset : offset + take].tolist())
        pos += take
    return out


def response_logprobs(model, input_ids, attention_mask, prompt_width: int, temperature: float, with_entropy=False):
    """Log-probs ``[M, T]`` of the response tokens (columns ``prompt_width:``). The LM head
    runs on response positions only (``logits_to_keep``), not on the prompt."""
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    T = input_ids.shape[1] - prompt_width
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=False,
                   logits_to_keep=T + 1).logits  # [M, T+1, V]: position t predicts token t+1
    logits = logits[:, :-1].float()  # [M, T, V]
    if temperature > 0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, prompt_width:]
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [M, T]
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # [M, T]
    return logp, entropy


def collate(prompts: list[list[int]], responses: list[list[int]], pad_id: int, device):
    """Left-pad prompts and right-pad responses so every response starts at one column."""
    P = max(len(p) for p in prompts)
    T = max(max(len(r) for r in responses), 1)
    M = len(prompts)
    input_ids = torch.full((M, P + T), pad_id, dtype=torch.long)
    attention = torch.zeros((M, P + T), dtype=torch.long)
    response_mask = torch.zeros((M, T), dtype=torch.float32)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        input_ids[i, P - len(p) : P] = torch.tensor(p)
        input_ids[i, P : P + len(r)] = torch.tensor(r, dtype=torch.long)
        attention[i, P - len(p) : P + len(r)] = 1
        response_mask[i, : len(r)] = 1.0
    return input_ids.to(device), attention.to(device), response_mask.to(device), P


def add_lora(model, cfg: TrainConfig, adapter_dir: Path | None = None):
    """Wrap the policy with LoRA adapters (peft); resume them from ``adapter_dir``."""
    try:
        from peft import LoraConfig, PeftModel, get_peft_model
    except ImportError:
        raise DrZeroError("--lora-rank needs the peft package (pip install peft)") from None
    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    targets = cfg.lora_target_modules if cfg.lora_target_modules == "all-linear" else cfg.lora_target_modules.split(",")
    return get_peft_model(model, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules=targets,
                                            lora_dropout=0.0, task_type="CAUSAL_LM"))


def make_scheduler(optimizer, cfg: TrainConfig, total_updates: int):
    def factor(update: int) -> float:
        if cfg.warmup_steps and update < cfg.warmup_steps:
            return (update + 1) / cfg.warmup_steps
        progress = (update - cfg.warmup_steps) / max(1, total_updates - cfg.warmup_steps)
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        if cfg.lr_schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def mean_or_nan(xs):
    return statistics.fmean(xs) if xs else float("nan")


class BiasMonitor:
    """Warns when incorrect responses grow longer while correct ones do not (the length
    bias of GRPO, paper Sec. 3.1): compares the mean of the first and last windows."""

    def __init__(self, window: int = 5, growth: float = 1.25):
        self.window, self.growth = window, growth
        self.correct: list[float] = []
        self.incorrect: list[float] = []
        self.warned_at = -1

    def update(self, step: int, len_correct: float, len_incorrect: float) -> str | None:
        if not math.isnan(len_correct):
            self.correct.append(len_correct)
        if not math.isnan(len_incorrect):
            self.incorrect.append(len_incorrect)
        w = self.window
        if len(self.incorrect) < 2 * w or len(self.correct) < 2 * w or step - self.warned_at < 2 * w:
            return None
        inc0, inc1 = statistics.fmean(self.incorrect[:w]), statistics.fmean(self.incorrect[-w:])
        cor0, cor1 = statistics.fmean(self.correct[:w]), statistics.fmean(self.correct[-w:])
        if inc1 > self.growth * inc0 and cor1 < inc1 / inc0 * cor0 / self.growth ** 0.5:
            self.warned_at = step
            return (f"bias monitor: incorrect responses grew {inc0:.0f} -> {inc1:.0f} tokens while correct ones went "
                    f"{cor0:.0f} -> {cor1:.0f}; this is the length bias of per-response normalisation "
                    f"(GRPO, paper Sec. 3.1) -- consider --algo dr_grpo")
        return None


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(run_dir: Path, step: int, model, tokenizer, optimizer_state: dict, scheduler, extra: dict, keep: int,
                    model_state: dict | None = None) -> Path:
    """Write ``checkpoints/step-XXXXXX`` atomically (temp dir, then rename), then point
    ``checkpoints/latest`` at it (write-then-replace), then prune old ones. ``model_state``:
    the whole weights when the model itself is sharded."""
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:06d}"
    tmp = ckpt_root / f".tmp-step-{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "peft_config"):  # LoRA: the adapter (to resume) and merged weights (HF format, for eval/serving)
        model.save_pretrained(tmp / "adapter")
        copy.deepcopy(model).merge_and_unload().save_pretrained(tmp, safe_serialization=True)
    else:
        if model_state is not None:  # gathered whole weights: leave out tied duplicates (lm_head = embeddings)
            tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - {n for n, _ in model.named_parameters()}
            model_state = {k: v for k, v in model_state.items() if k not in tied}
        model.save_pretrained(tmp, safe_serialization=True, state_dict=model_state)
    tokenizer.save_pretrained(tmp)
    torch.save(
        {
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
            **extra,
        },
        tmp / "trainer_state.pt",
    )
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **{k: v for k, v in extra.items() if k != "monitor"}}, indent=2))
    for f in tmp.rglob("*"):
        if not f.is_file():
            continue
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer_tmp = ckpt_root / f".{LATEST}.tmp"
    pointer_tmp.write_text(final.name)
    os.replace(pointer_tmp, ckpt_root / LATEST)
    steps = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / "trainer_state.pt").exists() else None


def _truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop lines logged after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= max_step]
    path.write_text("".join(line + "\n" for line in keep))


# ----------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig) -> dict:
    check_train_config(cfg)
    dist.init()
    if cfg.prompts_per_step % dist.world_size():
        raise DrZeroError(f"prompts_per_step={cfg.prompts_per_step} must be a multiple of the {dist.world_size()} ranks "
                          "(whole groups are assigned to ranks)")
    run_dir = Path(cfg.output_dir)
    start_step = 0
    resume_state = None
    model_source = cfg.model
    if cfg.resume:
        ckpt = latest_checkpoint(Path(cfg.resume))
        if ckpt is None:
            raise DrZeroError(f"--resume {cfg.resume}: no complete checkpoint found under {cfg.resume}/checkpoints")
        run_dir = Path(cfg.resume)
        resume_state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
        start_step = resume_state["step"]
        model_source = str(ckpt)
    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, run_dir / "config.yaml")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device) if dist.world_size() == 1 else dist.device_for_rank(cfg.device)

    # ---- data, template, objective
    template = get_template(cfg.template)
    rows = load_questions(cfg.dataset, split=cfg.dataset_split, question_column=cfg.question_column,
                          answer_column=cfg.answer_column)
    eval_sets = {}
    for name in [s.strip() for s in cfg.eval_datasets.split(",") if s.strip()]:
        eval_sets[name] = load_questions(name, limit=cfg.eval_limit)
    objective = resolve_objective(
        cfg.algo, max_new_tokens=cfg.max_new_tokens, advantage_scale=cfg.advantage_scale, baseline=cfg.baseline,
        aggregation=cfg.aggregation, constant_normalizer=cfg.constant_normalizer, clip_eps_low=cfg.clip_eps_low,
        clip_eps_high=cfg.clip_eps_high, beta=cfg.beta,
    )
    B, G = cfg.prompts_per_step, cfg.group_size
    N = B * G
    train_batch = cfg.train_batch_size or N
    updates_per_iter = (N // train_batch) * cfg.ppo_epochs
    dist.print0(describe_objective(cfg.algo, objective))
    dist.print0(f"batch: {B} prompts x {G} samples = {N} responses per iteration; {train_batch} responses per optimizer "
                f"step ({updates_per_iter} optimizer steps per iteration); micro-batch {cfg.micro_batch_size}; "
                f"{len(rows)} training questions; template {template.name}")

    # ---- models (the reference policy only when beta > 0). Trained weights stay in float32
    # (with lr 1e-6 a bfloat16 weight would round most updates away; LoRA: the frozen base is
    # in `dtype`, peft keeps adapters in float32); forward and backward run in `dtype` (autocast).
    dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
    sharded = cfg.sharding == "fsdp" and dist.world_size() > 1
    if cfg.sharding == "fsdp" and not sharded:
        dist.print0("sharding=fsdp: a single process holds the whole model; nothing to shard")
    lora_resume = resume_state is not None and (Path(model_source) / "adapter").exists()
    model, tokenizer = load_model_and_tokenizer(cfg.model if lora_resume else model_source, device=device)
    model.to(dtype if cfg.lora_rank else torch.float32)
    if cfg.lora_rank:
        model = add_lora(model, cfg, adapter_dir=Path(model_source) / "adapter" if lora_resume else None)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    ref_model = None
    if objective.beta > 0:
        ref_model, _ = load_model_and_tokenizer(cfg.model, device=device)  # the initial policy
        ref_model.to(dtype).eval().requires_grad_(False)
    rollout_model = model  # the HF engine generates with the learner's own module ...
    if sharded:  # ... except under FSDP: whole weights for generation and rank-0 eval, synced every step
        rollout_model = copy.deepcopy(model).to(dtype).eval().requires_grad_(False) if cfg.engine == "hf" else None
        dist.shard(model)
        if ref_model is not None:
            dist.shard(ref_model)
    if cfg.engine == "vllm":
        from drzero.rollout.vllm_engine import VLLMEngine

        engine = VLLMEngine(resolve_model_path(model_source if not lora_resume else cfg.model), seed=cfg.seed,
                            dtype=cfg.dtype, enable_sleep_mode=device.startswith("cuda"),
                            gpu_memory_utilization=cfg.vllm_memory)
        engine.pad_id = tokenizer.pad_token_id
    else:
        engine = HFEngine(rollout_model, tokenizer, batch_size=cfg.generation_batch_size, dtype=dtype)

    def sync_engine() -> None:
        """The new policy is what generates next."""
        if sharded:  # every rank gathers the whole weights, one tensor at a time, into its engine
            engine.load_weights(dist.iter_full_weights(model, dtype))
        else:
            engine.update_weights(model)  # HF: shares the module (no copy); vLLM: loads the new weights

    if cfg.engine == "vllm":
        sync_engine()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, cfg.adam_beta2), weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg, cfg.max_steps * updates_per_iter)
    monitor = BiasMonitor()
    if resume_state is not None:
        dist.load_optimizer_state(model, optimizer, resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        random.setstate(resume_state["rng"]["python"])
        np.random.set_state(resume_state["rng"]["numpy"])
        torch.set_rng_state(resume_state["rng"]["torch"])
        monitor.__dict__.update(resume_state.get("monitor", {}))
        if dist.is_main():
            for name in ("metrics.jsonl", "samples.jsonl", "weights.jsonl"):
                _truncate_jsonl(run_dir / name, start_step)
        dist.print0(f"resumed from {model_source} at step {start_step}")

    loggers = _external_loggers(cfg, run_dir) if dist.is_main() else []
    metrics_f = open(run_dir / "metrics.jsonl", "a") if dist.is_main() else None
    samples_f = open(run_dir / "samples.jsonl", "a") if dist.is_main() else None
    weights_f = open(run_dir / "weights.jsonl", "a") if dist.is_main() else None
    progress = _Progress(cfg.max_steps, start_step, enabled=cfg.progress and dist.is_main())
    eval_max_new = cfg.eval_max_new_tokens or cfg.max_new_tokens
    last_metrics: dict = {}
    pad_id = engine.pad_id
    rank, world = dist.rank(), dist.world_size()

    def run_eval(step: int) -> dict:
        out = {}
        for name, eval_rows in eval_sets.items():
            res = evaluate_rows(engine, eval_rows, template, n=1, temperature=0.0, max_new_tokens=eval_max_new,
                                grader_workers=cfg.grader_workers, grader_timeout_s=cfg.grader_timeout_s)
            for k in ("accuracy", "format_rate", "length_mean", "length_correct", "length_incorrect", "truncation_rate"):
                out[f"eval/{name}/{k}"] = res.metrics[k]
        return out

    if start_step == 0 and dist.is_main() and eval_sets:
        t = time.perf_counter()
        base_eval = run_eval(0)
        base_eval["time/eval"] = time.perf_counter() - t
        metrics_f.write(json.dumps({"step": 0, **base_eval}) + "\n")
        metrics_f.flush()
        progress.note(" ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in base_eval.items() if k.endswith("/accuracy")), "base model")
    try:
        for step in range(start_step + 1, cfg.max_steps + 1):
            t_step = time.perf_counter()
            timing = {}
            # ---- 1. prompts of this iteration (same order on every rank; each rank takes its share)
            idx = step_prompts(len(rows), B, cfg.seed, step - 1)
            my_idx = idx[rank::world]
            batch_rows = [rows[i] for i in my_idx]
            prompts = [template.render(r["problem"]) for r in batch_rows]

            # ---- 2. generate G responses per prompt
            t = time.perf_counter()
            params = SamplingParams(n=G, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                    stop=template.stop, seed=cfg.seed * 1_000_003 + step * 101 + rank)
            gens = engine.generate(prompts, params)  # prompt-major: [b0 s0..sG-1, b1 ...]
            timing["time/generate"] = time.perf_counter() - t
            n_gen_tokens = sum(len(g.token_ids) for g in gens)

            # ---- 3. grade (parallel, with timeouts): reward 1 if correct else 0
            t = time.perf_counter()
            grades = grade_batch([g.text for g in gens], [batch_rows[g.prompt_index]["answer"] for g in gens],
                                 answer_format=template.answer_format, workers=cfg.grader_workers,
                                 timeout_s=cfg.grader_timeout_s)
            timing["time/grade"] = time.perf_counter() - t
            truncated = torch.tensor([g.truncated for g in gens])
            rewards = torch.tensor([float(gr.correct and not g.truncated) for g, gr in zip(gens, grades)])  # [n]

            # ---- 4. advantages per group
            advantages = group_advantages(rewards, G, scale=objective.advantage_scale, baseline=objective.baseline)
            lengths = torch.tensor([len(g.token_ids) for g in gens], dtype=torch.float32)  # [n]
            keep = ~truncated if cfg.mask_truncated else torch.ones(len(gens), dtype=torch.bool)

            # ---- 5. policy update: optimizer steps over train_batch responses, micro-batches inside
            t = time.perf_counter()
            if cfg.engine == "vllm" and device.startswith("cuda"):
                engine.sleep()  # give vLLM's GPU memory to the learner
            model.train()
            local_n = len(gens)
            per_update_local = local_n * train_batch // N
            order_rng = np.random.default_rng([cfg.seed, step, 7])
            loss_stats, clip_lo, clip_hi, ratios, entropies, grad_norms, kls, gaps = [], [], [], [], [], [], [], []
            tis_w, tis_clip = [], []
            old_logps = None
            if updates_per_iter > 1:  # the policy moves within the iteration: freeze pi_old first
                old_logps = _all_logprobs(model, gens, pad_id, device, cfg, dtype)
            for epoch in range(cfg.ppo_epochs):
                perm = order_rng.permutation(local_n) if train_batch < N else np.arange(local_n)
                for u in range(0, local_n, per_update_local):
                    chunk = perm[u : u + per_update_local].tolist()
                    stats = accumulate_gradients(
                        model, ref_model, gens, chunk, advantages, keep, objective,
                        micro_batch_size=max(1, cfg.micro_batch_size // world), temperature=cfg.temperature,
                        pad_id=pad_id, device=device, dtype=dtype, old_logps=old_logps, tis_cap=cfg.tis_cap)
                    loss_stats.append(stats["loss"])
                    clip_lo.append(stats["clip_frac_low"]); clip_hi.append(stats["clip_frac_high"])  # noqa: E702
                    ratios.append(stats["ratio_mean"]); kls.append(stats["kl"]); entropies.append(stats["entropy"])  # noqa: E702
                    gaps.append(stats["logprob_gap"])
                    tis_w.append(stats["tis_weight_mean"]); tis_clip.append(stats["tis_clip_frac"])  # noqa: E702
                    dist.sum_gradients(model)  # losses use global normalisers, so the sum is the exact gradient
                    grad_norms.append(dist.grad_norm(model, cfg.max_grad_norm))  # clips when max_grad_norm > 0
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            if cfg.engine == "vllm" and device.startswith("cuda"):
                engine.wake_up()
            timing["time/train"] = time.perf_counter() - t
            t = time.perf_counter()
            sync_engine()
            timing["time/sync"] = time.perf_counter() - t

            # ---- 6. metrics (rank 0 sees its own shard; rewards are all-reduced)
            correct = [gr.correct for gr in grades]
            len_c = [len(g.token_ids) for g, c in zip(gens, correct) if c]
            len_i = [len(g.token_ids) for g, c in zip(gens, correct) if not c]
            group_rewards = rewards.view(-1, G)
            zero_var = (group_rewards.std(dim=1) == 0).float().mean().item()
            token_w = bias_weights(advantages, lengths, aggregation=objective.aggregation,
                                   constant_normalizer=objective.constant_normalizer)
            group_std = group_rewards.std(dim=1)  # [B]
            informative = group_std > 0  # zero-variance groups get zero advantage whatever their scale
            q_scale = 1.0 / (group_std + 1e-6) if objective.advantage_scale == "group" else torch.ones(len(batch_rows))
            metrics = {
                "step": step,
                "rollout/reward_mean": dist.all_mean(rewards.mean().item()),
                "rollout/accuracy": dist.all_mean(mean_or_nan(correct)),
                "rollout/format_rate": mean_or_nan([gr.formatted for gr in grades]),
                "rollout/response_length_mean": lengths.mean().item(),
                "rollout/response_length_correct": mean_or_nan(len_c),
                "rollout/response_length_incorrect": mean_or_nan(len_i),
                "rollout/truncation_rate": truncated.float().mean().item(),
                "rollout/zero_variance_group_frac": zero_var,
                "rollout/reflection_rate": mean_or_nan([bool(reflection_keywords(g.text)) for g in gens]),
                "rollout/grader_timeouts": sum(gr.timed_out for gr in grades),
                "rollout/logprob_gap": gaps[0] if gaps else float("nan"),  # engine vs learner, before any update
                "train/loss": sum(loss_stats),
                "train/clip_frac_low": mean_or_nan(clip_lo),
                "train/clip_frac_high": mean_or_nan(clip_hi),
                "train/ratio_mean": mean_or_nan(ratios),
                "train/entropy": mean_or_nan(entropies),
                "train/grad_norm": mean_or_nan(grad_norms),
                "train/lr": scheduler.get_last_lr()[0],
                "train/kl": mean_or_nan(kls),
                **({"train/tis_weight_mean": mean_or_nan(tis_w), "train/tis_clip_frac": mean_or_nan(tis_clip)}
                   if cfg.tis_cap > 0 else {}),
                "bias/token_weight_abs_correct": mean_or_nan([abs(w) for w, c in zip(token_w.tolist(), correct) if c]),
                "bias/token_weight_abs_incorrect": mean_or_nan([abs(w) for w, c in zip(token_w.tolist(), correct) if not c]),
                "bias/question_weight_max_over_min": (q_scale[informative].max() / q_scale[informative].min()).item()
                if informative.any() else float("nan"),
                "time/tokens_per_s": n_gen_tokens / max(timing["time/generate"], 1e-9),
                **timing,
            }
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps:
                if dist.is_main() and eval_sets:
                    t = time.perf_counter()
                    metrics.update(run_eval(step))
                    metrics["time/eval"] = time.perf_counter() - t
                dist.barrier()
            metrics["time/step"] = time.perf_counter() - t_step
            metrics["time/other"] = metrics["time/step"] - sum(
                metrics.get(k, 0.0) for k in ("time/generate", "time/grade", "time/train", "time/sync", "time/eval"))
            warning = monitor.update(step, metrics["rollout/response_length_correct"], metrics["rollout/response_length_incorrect"])
            if dist.is_main():
                metrics_f.write(json.dumps(metrics) + "\n")
                metrics_f.flush()
                for i in range(min(cfg.log_samples, len(gens))):
                    j = i * G  # first sample of each of the first prompts
                    if j >= len(gens):
                        break
                    samples_f.write(json.dumps({
                        "step": step, "question": batch_rows[gens[j].prompt_index]["problem"],
                        "reference": batch_rows[gens[j].prompt_index]["answer"], "response": gens[j].text,
                        "extracted": grades[j].extracted, "reward": rewards[j].item(), "advantage": advantages[j].item(),
                        "length": len(gens[j].token_ids), "finish_reason": gens[j].finish_reason}) + "\n")
                samples_f.flush()
                weights_f.write(json.dumps({
                    "step": step, "length": lengths.tolist(), "correct": correct, "advantage": advantages.tolist(),
                    "token_weight": token_w.tolist(),
                    "question_scale": [v for v, ok in zip(q_scale.tolist(), informative.tolist()) if ok]}) + "\n")
                weights_f.flush()
                for logger in loggers:
                    logger(metrics, step)
                if warning:
                    progress.warn(warning)
                progress.update(step, metrics)
            last_metrics = metrics

            # ---- 7. checkpoint
            if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.max_steps:
                optim_state = dist.optimizer_state(model, optimizer)  # collectives when sharded:
                weights = dist.full_state_dict(model, rank0_cpu=True) if sharded else None  # gathered to rank 0
                if dist.is_main():
                    save_checkpoint(run_dir, step, model, tokenizer, optim_state, scheduler,
                                    {"step": step, "monitor": dict(monitor.__dict__)}, cfg.keep_checkpoints,
                                    model_state=weights)
                dist.barrier()
    finally:
        progress.close()
        for f in (metrics_f, samples_f, weights_f):
            if f:
                f.close()
    if dist.is_main():
        final = latest_checkpoint(run_dir)
        dist.print0(f"done: {cfg.max_steps} steps; last checkpoint {final}; metrics in {run_dir / 'metrics.jsonl'}")
    return last_metrics


def accumulate_gradients(model, ref_model, gens, chunk: list[int], advantages, keep, objective, *, micro_batch_size: int,
                         temperature: float, pad_id: int, device, dtype=torch.float32, old_logps=None,
                         tis_cap: float = 0.0) -> dict:
    """Backward the loss of one optimizer step's responses (``chunk``, indices into
    ``gens``) in micro-batches. The normalisers (responses, tokens) are the step's global
    totals, so the accumulated gradient does not depend on ``micro_batch_size`` or on the
    number of ranks. ``tis_cap`` > 0 weights each token by min(pi_old/pi_rollout, cap),
    pi_rollout being the engine's log-probs. Returns the step's loss and mean metrics."""
    n_resp = dist.all_sum(float(len(chunk)))
    n_tok = dist.all_sum(float(sum(len(gens[i].token_ids) for i in chunk if keep[i])))
    chunk = sorted(chunk, key=lambda i: len(gens[i].token_ids))  # similar lengths together: less padding
    total, stats = 0.0, {"clip_frac_low": [], "clip_frac_high": [], "ratio_mean": [], "kl": [], "entropy": [],
                         "logprob_gap": [], "tis_weight_mean": [], "tis_clip_frac": []}
    for m in range(0, len(chunk), micro_batch_size):
        ids = chunk[m : m + micro_batch_size]
        input_ids, attn, resp_mask, P = collate([gens[i].prompt_token_ids for i in ids], [gens[i].token_ids for i in ids],
                                                pad_id, device)
        resp_mask = resp_mask * keep[ids].to(device).float()[:, None]  # [M, T]
        with torch.autocast(device_type=str(device).split(":")[0], dtype=dtype, enabled=dtype in (torch.bfloat16, torch.float16)):
            logp, ent = response_logprobs(model, input_ids, attn, P, temperature, with_entropy=True)  # [M, T]
        # on-policy single update: pi_old = pi (detached), ratio exactly 1, no extra forward pass
        old = logp.detach() if old_logps is None else _pad_to([old_logps[i] for i in ids], logp.shape, device)
        ref = None
        if ref_model is not None:
            with torch.no_grad():
                ref, _ = response_logprobs(ref_model, input_ids, attn, P, temperature)
        engine_lp, is_w = None, None
        if all(len(gens[i].logprobs) == len(gens[i].token_ids) for i in ids):  # the engine's own log-probs
            engine_lp = _pad_to([torch.tensor(gens[i].logprobs) for i in ids], logp.shape, device)
            stats["logprob_gap"].append(masked_mean((logp.detach() - engine_lp).abs(), resp_mask).item())
        if tis_cap > 0:
            if engine_lp is None:
                raise DrZeroError("tis_cap needs the generation engine's sampled-token log-probs, which it did not return")
            is_w = tis_weights(old, engine_lp, tis_cap)  # [M, T]
            stats["tis_weight_mean"].append(masked_mean(is_w, resp_mask).item())
            stats["tis_clip_frac"].append(masked_mean(((old - engine_lp).exp() > tis_cap).float(), resp_mask).item())
        loss, lm = policy_loss(
            logp, old, advantages[ids].to(device), resp_mask, aggregation=objective.aggregation,
            constant_normalizer=objective.constant_normalizer, clip_eps_low=objective.clip_eps_low,
            clip_eps_high=objective.clip_eps_high, ref_logprobs=ref, beta=objective.beta,
            num_responses=n_resp, num_tokens=n_tok, is_weights=is_w,
        )
        loss.backward()
        total += loss.item()
        for k in ("clip_frac_low", "clip_frac_high", "ratio_mean"):
            stats[k].append(lm[k])
        stats["kl"].append(lm.get("kl", 0.0))
        stats["entropy"].append(masked_mean(ent, resp_mask).item())
    return {"loss": total, **{k: mean_or_nan(v) for k, v in stats.items()}}


def _all_logprobs(model, gens, pad_id, device, cfg, dtype) -> list[torch.Tensor]:
    """pi_old log-probs of every response, before any update of this iteration."""
    out: list[torch.Tensor] = [None] * len(gens)  # type: ignore[list-item]
    order = sorted(range(len(gens)), key=lambda i: len(gens[i].token_ids))
    with torch.no_grad():
        for m in range(0, len(order), cfg.micro_batch_size):
            ids = order[m : m + cfg.micro_batch_size]
            input_ids, attn, resp_mask, P = collate([gens[i].prompt_token_ids for i in ids], [gens[i].token_ids for i in ids], pad_id, device)
            with torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype in (torch.bfloat16, torch.float16)):
                logp, _ = response_logprobs(model, input_ids, attn, P, cfg.temperature)
            for k, i in enumerate(ids):
                out[i] = logp[k, : len(gens[i].token_ids)].float().cpu()
    return out


def _pad_to(rows: list[torch.Tensor], shape, device) -> torch.Tensor:
    out = torch.zeros(shape, dtype=torch.float32)
    for k, r in enumerate(rows):
        out[k, : len(r)] = r
    return out.to(device)


def _external_loggers(cfg: TrainConfig, run_dir: Path) -> list:
    loggers = []
    if cfg.wandb_project:
        try:
            import wandb
        except ImportError:
            raise DrZeroError("--wandb-project needs the wandb package (pip install wandb)") from None
        wandb.init(project=cfg.wandb_project, config=asdict(cfg), dir=str(run_dir))
        loggers.append(lambda m, s: wandb.log(m, step=s))
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DrZeroError("--tensorboard needs the tensorboard package (pip install tensorboard)") from None
        writer = SummaryWriter(str(run_dir / "tb"))

        def tb(m, s):
            for k, v in m.items():
                if isinstance(v, (int, float)) and k != "step" and not math.isnan(v):
                    writer.add_scalar(k, v, s)
            writer.flush()

        loggers.append(tb)
    return loggers


class _Progress:
    """A rich progress bar with ETA and the key metrics; plain lines when disabled."""

    KEYS = (("rollout/reward_mean", "reward"), ("rollout/response_length_correct", "len+"),
            ("rollout/response_length_incorrect", "len-"), ("train/clip_frac_low", "clip"), ("time/step", "s/step"))

    def __init__(self, total: int, start: int, enabled: bool):
        self.enabled = enabled
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self.task = self.bar.add_task("train", total=total, completed=start, info="")
            self.bar.start()

    def _fmt(self, metrics: dict) -> str:
        parts = [f"{label} {metrics[k]:.3g}" for k, label in self.KEYS if k in metrics and not math.isnan(metrics[k])]
        parts += [f"{k.split('/')[1]} {v:.3f}" for k, v in metrics.items() if k.startswith("eval/") and k.endswith("/accuracy")]
        return "  ".join(parts)

    def update(self, step: int, metrics: dict):
        if self.bar:
            self.bar.update(self.task, completed=step, info=self._fmt(metrics))
            if any(k.startswith("eval/") for k in metrics):
                self.bar.console.print(f"step {step}: {self._fmt(metrics)}")
        else:
            dist.print0(f"step {step}: {self._fmt(metrics)}")

    def note(self, text: str, label: str):
        (self.bar.console.print if self.bar else dist.print0)(f"{label}: {text}")

    def warn(self, text: str):
        (self.bar.console.print if self.bar else dist.print0)(f"[yellow]WARNING[/yellow] {text}" if self.bar else f"WARNING {text}")

    def close(self):
        if self.bar:
            self.bar.stop()
