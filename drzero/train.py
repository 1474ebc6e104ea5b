"""The R1-Zero-like RL training loop: ``setup(cfg)``, then ``train(cfg)`` top to bottom.

    drzero train                                   # toy model, toy task, Dr. GRPO
    drzero train --algo grpo --output-dir runs/toy-grpo
    drzero train --config recipes/qwen2.5-math-1.5b-dr_grpo.yaml

Per policy iteration: sample prompts -> generate G responses each -> grade (parallel,
with timeouts) -> group advantages -> policy update over micro-batches with gradient
accumulation -> sync the engine -> log (metrics.jsonl, samples.jsonl, weights.jsonl) ->
evaluate -> checkpoint.

Shapes: B prompts per iteration, G samples per prompt, N = B*G responses, T tokens.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from drzero import checkpoint, dist, plan, resume, signals
from drzero.algo import (Objective, bias_weights, describe_objective, group_advantages, informative_groups,
                         kl_reward_penalty, masked_mean, policy_loss, question_weights, resolve_objective, tis_weights)
from drzero.analysis import BiasMonitor, mean_or_nan, reflection_keywords
from drzero.config import TrainConfig, resolved_micro_batch_size
from drzero.data import load_questions
from drzero.data.length import drop_long_prompts, load_tokenizer
from drzero.errors import DrZeroError
from drzero.evaluate import evaluate_rows
from drzero.grader import Grader, sandbox
from drzero.parsing import config_text, validate
from drzero.models import (LOGPROB_CHUNK_TOKENS, Forward, add_lora, load_model_and_tokenizer, load_template,
                           plan_forward)
from drzero.reward import RewardFunction, load_reward_function
from drzero.rollout import Engine, Rollouts, SamplingParams, generate_and_grade, load_engine
from drzero.templates import Template
from drzero.tracking import RunLog, check_trackers

TIMED = ("time/generate", "time/grade", "time/train", "time/sync", "time/eval")


@dataclass
class Setup:
    """Everything the loop needs, built once by ``setup``."""

    cfg: TrainConfig
    run_dir: Path
    start_step: int  # the last completed iteration (0 for a new run)
    rows: list[dict]  # the training questions
    eval_sets: dict[str, list[dict]]
    template: Template
    objective: Objective
    grader: Grader
    reward_fn: RewardFunction | None  # the user's --reward function
    model: torch.nn.Module  # the learner: float32 master weights, maybe LoRA-wrapped, maybe FSDP-sharded
    ref_model: torch.nn.Module | None  # the initial policy, only when beta > 0
    tokenizer: object
    engine: Engine
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    monitor: BiasMonitor
    device: str
    dtype: torch.dtype  # compute dtype (autocast)
    sharded: bool  # FSDP2 across ranks
    train_batch: int  # responses per optimizer step (all ranks)
    micro_batch: int  # responses per forward/backward pass on this rank
    updates_per_iter: int  # optimizer steps per policy iteration


# ----------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig) -> dict:
    with signals.Preemption() as stop:  # SIGTERM/SIGUSR1/SIGINT: keep every finished step, then exit (docs/errors.md)
        try:
            with stop.abandonable():  # nothing is finished yet: a signal here stops at once
                s = setup(cfg)
        except signals.Abandon:
            raise preempted(stop, Path(cfg.resume or cfg.output_dir), None) from None
        return _train(s, stop)


def _train(s: Setup, stop: signals.Preemption) -> dict:
    cfg, G = s.cfg, s.cfg.group_size
    log = RunLog(s.run_dir, cfg, total_steps=cfg.max_steps, start_step=s.start_step, progress=cfg.progress)
    metrics, finished, saved, done, stopping = {}, False, s.start_step, s.start_step, False
    try:
        if s.start_step == 0 and s.eval_sets and dist.is_main():  # the base model, for reference
            t = time.perf_counter()
            try:
                with stop.abandonable():
                    base = {"step": 0, **evaluate_policy(s), "time/eval": time.perf_counter() - t}
            except signals.Abandon:
                raise preempted(stop, s.run_dir, None) from None
            log.write("metrics", [base])
            log.note(" ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in base.items() if k.endswith("/accuracy")), "base model")
        for step in range(s.start_step + 1, cfg.max_steps + 1):
            t_step = time.perf_counter()
            rng_before = checkpoint.rng_state()  # the previous step's checkpoint holds this, if this step is abandoned
            # ---- 1. this iteration's questions: one seeded order on every rank and after a resume; each rank takes its share
            order = step_prompts(len(s.rows), cfg.prompts_per_step, cfg.seed, step - 1)
            rows = [s.rows[i] for i in order[dist.rank() :: dist.world_size()]]

            # ---- 2-3. G responses per question, graded in parallel with timeouts: reward 1 if correct, else 0
            params = SamplingParams(n=G, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                    stop=s.template.stop, seed=cfg.seed * 1_000_003 + step * 101 + dist.rank())
            retries = sandbox.RETRIES[0]
            try:  # a signal before the update abandons the step (one process; ranks finish it together)
                with stop.abandonable() if dist.world_size() == 1 else contextlib.nullcontext():
                    batch = generate_and_grade(s.engine, rows, s.template, params, s.grader, s.reward_fn,
                                               cfg.reward_mode)  # N = B*G, prompt-major
            except signals.Abandon:
                checkpoint.set_rng_state(rng_before)
                stopping = True
                break

            # ---- 4. advantages per group (Dr. GRPO: R - mean(R); GRPO also divides by std(R), paper Sec. 3)
            set_advantages(s, batch)  # batch.advantages [N], batch.keep [N]

            # ---- 5. policy update (vLLM lends its memory meanwhile), then the new policy is what generates next
            t = time.perf_counter()
            s.engine.sleep()
            train_stats = update_policy(s, batch, step)
            s.engine.wake_up()
            timing = {"time/train": time.perf_counter() - t}
            t = time.perf_counter()
            s.engine.sync(s.model)
            timing["time/sync"] = time.perf_counter() - t

            # ---- 6. metrics (rank 0 sees its own share; reward and accuracy are averaged over ranks)
            rollout_stats, weights_record = rollout_metrics(batch, s.objective)
            metrics = {"step": step, **rollout_stats, **train_stats, **batch.timing, **timing,
                       "time/tokens_per_s": batch.lengths.sum().item() / max(batch.timing["time/generate"], 1e-9),
                       "grader/retries": sandbox.RETRIES[0] - retries}  # jobs whose grader worker died, graded again

            # ---- 7. evaluate (greedy, rank 0)
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps:
                if dist.is_main() and s.eval_sets:
                    t = time.perf_counter()
                    metrics.update(evaluate_policy(s))
                    metrics["time/eval"] = time.perf_counter() - t
                dist.barrier()
            metrics["time/step"] = time.perf_counter() - t_step
            metrics["time/other"] = metrics["time/step"] - sum(metrics.get(k, 0.0) for k in TIMED)

            # ---- 8. log
            log.write("samples", sample_records(batch, step, cfg.log_samples))
            log.write("weights", [{"step": step, **weights_record}])
            warning = s.monitor.update(step, metrics["rollout/response_length_correct"],
                                       metrics["rollout/response_length_incorrect"])
            if warning:
                log.warn(warning)
            if metrics["grader/retries"]:
                log.warn(f"step {step}: {metrics['grader/retries']} answers graded again on a fresh worker "
                         "(theirs died)")
            log.step(step, metrics)

            # ---- 9. checkpoint
            if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.max_steps:
                save_checkpoint(s, step)
                saved = step
            done = step
            if dist.all_sum(float(stop.requested)) > 0 and step < cfg.max_steps:  # all ranks stop after the same step
                stopping = True
                break
        if stopping:
            if done > saved:  # the last finished step, so that nothing finished is lost
                save_checkpoint(s, done)
            raise preempted(stop, s.run_dir, done)
        finished = True
    finally:
        log.close(ok=finished)  # trackers learn whether the run failed
    if dist.is_main():
        dist.print0(f"done: {cfg.max_steps} steps; last checkpoint {checkpoint.latest(s.run_dir)}; "
                    f"metrics in {s.run_dir / 'metrics.jsonl'}")
    return metrics


def preempted(stop: signals.Preemption, run_dir: Path, step: int | None) -> signals.Interrupted:
    """The one line a stopped run ends with: what was kept and how to go on."""
    what = signals.name(stop.signum or 2)
    last = checkpoint.latest(run_dir) if run_dir.is_dir() else None
    if step:
        where = f"step {step} is saved in {last or run_dir}"
    elif last is not None:  # a resumed run stopped before its first new step
        where = f"no new step had finished; the newest checkpoint is still {last}"
    else:
        where = "no step had finished, nothing to keep"
    again = (f"drzero train --resume {run_dir}" if (run_dir / "config.yaml").is_file()
             else "run the same command again")
    return signals.Interrupted(f"stopped by {what}: {where}; continue with: {again}",
                               signals.exit_code(stop.signum or 2))


# ----------------------------------------------------------------------------- setup
def setup(cfg: TrainConfig) -> Setup:
    """Validate the config, the run directory and the optional loggers; build data,
    objective, models, engine, optimizer; restore the newest intact checkpoint when
    resuming. Nothing is written before all of that has succeeded (``checkpoint.start_run``)."""
    validate(cfg)  # ranges, model folder, question sets, output folder (also run by the CLI's parser)
    dist.init()
    if cfg.prompts_per_step % dist.world_size():
        raise DrZeroError(f"prompts_per_step={cfg.prompts_per_step} must be a multiple of the {dist.world_size()} ranks "
                          "(whole groups are assigned to ranks)")
    run_dir = Path(cfg.resume or cfg.output_dir)
    checkpoint.check_run_dir(run_dir, resume=bool(cfg.resume), overwrite=cfg.overwrite)
    checkpoint.lock_run_dir(run_dir)  # one process per run folder (a new one is locked when created)
    check_trackers(cfg)
    changes = resume.check_resume(run_dir, cfg) if cfg.resume else {}  # a run-defining setting changed: refused
    ckpt, start_step = None, 0
    if cfg.resume:
        ckpt, notes = checkpoint.find_resumable(run_dir)  # verified against its manifest; older ones if broken
        for note in notes:
            dist.print0(note)
        if ckpt is None:
            dist.print0(f"--resume {run_dir}: no intact checkpoint; starting over from step 0 with the run's config")
        start_step = checkpoint.read_step(ckpt) if ckpt else 0
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = dist.resolve_device(cfg.device)

    # ---- data, template, reward, objective
    template = load_template(cfg.template, cfg.model, cfg.system_prompt)
    reward_fn = load_reward_function(cfg.reward, timeout_s=cfg.reward_timeout_s) if cfg.reward else None
    rows = load_questions(cfg.dataset, split=cfg.dataset_split, question_column=cfg.question_column,
                          answer_column=cfg.answer_column, dataset_config=cfg.dataset_config,
                          dataset_filter=cfg.dataset_filter)
    eval_sets = {name: load_questions(name, limit=cfg.eval_limit, question_column=cfg.eval_question_column,
                                      answer_column=cfg.eval_answer_column)
                 for name in (s.strip() for s in cfg.eval_datasets.split(",")) if name}
    if cfg.max_prompt_tokens:  # over-long questions are dropped here, before anything is generated (drzero.data.length)
        counter = load_tokenizer(cfg.model)
        rows = drop_long_prompts(rows, [template], counter, cfg.max_prompt_tokens, f"--dataset {cfg.dataset}",
                                 log=dist.print0)
        eval_sets = {name: drop_long_prompts(r, [template], counter, cfg.max_prompt_tokens, f"--eval-datasets {name}",
                                             log=dist.print0) for name, r in eval_sets.items()}
    if cfg.max_epochs is not None:  # the reference stops after a number of prompt epochs
        cfg = dataclasses.replace(cfg, max_steps=steps_for_epochs(cfg.max_epochs, len(rows), cfg.prompts_per_step))
        dist.print0(f"max_epochs {cfg.max_epochs} over {len(rows)} questions: {cfg.max_steps} policy iterations")
    objective = resolve_objective(cfg.algo, max_new_tokens=cfg.max_new_tokens,  # every Objective knob by its name
                                  **{f.name: getattr(cfg, f.name) for f in dataclasses.fields(Objective)})
    N = cfg.prompts_per_step * cfg.group_size
    train_batch = cfg.train_batch_size or N
    updates_per_iter = (N // train_batch) * cfg.ppo_epochs
    dist.print0(describe_objective(cfg.algo, objective))
    dist.print0(f"batch: {cfg.prompts_per_step} prompts x {cfg.group_size} samples = {N} responses per iteration; "
                f"{train_batch} responses per optimizer step ({updates_per_iter} optimizer steps per iteration); "
                f"micro-batch {resolved_micro_batch_size(cfg)}; {len(rows)} training questions; template {template.name}")
    plan.check_at_start(cfg, dist.resolve_device(cfg.device), dist.world_size())  # refuses what cannot fit a GPU

    # ---- models and the engine (a resumed run loads the checkpoint's export, LoRA: the base model)
    dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
    sharded = cfg.sharding == "fsdp" and dist.world_size() > 1
    if cfg.sharding == "fsdp" and not sharded:
        dist.print0("sharding=fsdp: a single process holds the whole model; nothing to shard")
    model_source = str(ckpt) if ckpt is not None and not cfg.lora_rank else cfg.model
    model, tokenizer, ref_model, engine = load_models(cfg, model_source, objective, device=device, dtype=dtype,
                                                      sharded=sharded)

    # ---- optimizer, schedule, bias monitor; a resumed run restores them, the weights and the RNG states
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  betas=(0.9, cfg.adam_beta2), weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg, cfg.max_steps * updates_per_iter)
    monitor = BiasMonitor()
    if ckpt is not None:
        state = checkpoint.load(ckpt, model, optimizer)  # every rank reads its own shard
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        monitor.load_state_dict(state["monitor"])
    engine.sync(model)

    # ---- all checked and loaded: the run's first writes (clear a replaced run, config.yaml, cut logs back)
    checkpoint.start_run(run_dir, config_text(dataclasses.replace(cfg, overwrite=False)), overwrite=cfg.overwrite,
                         resumed_step=start_step if cfg.resume else None, resumed_from=ckpt)
    if dist.is_main():
        resume.record_changes(run_dir, start_step, changes)
    dist.barrier()
    if ckpt is not None:
        dist.print0(f"resumed from {ckpt} at step {start_step}")
    if changes:
        dist.print0("changed on resume (recorded in resumes.jsonl): "
                    + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    grader = Grader(workers=cfg.grader_workers, timeout_s=cfg.grader_timeout_s, mode=cfg.grader)
    return Setup(cfg, run_dir, start_step, rows, eval_sets, template, objective, grader, reward_fn, model, ref_model,
                 tokenizer, engine, optimizer, scheduler, monitor, device, dtype, sharded, train_batch,
                 max(1, resolved_micro_batch_size(cfg) // dist.world_size()), updates_per_iter)


def load_models(cfg: TrainConfig, model_source: str, objective: Objective, *, device: str, dtype: torch.dtype,
                sharded: bool):
    """The learner, its tokenizer, the reference policy (only when beta > 0) and the engine.

    Trained weights stay in float32 (with lr 1e-6 a bfloat16 weight would round most updates
    away; LoRA: the frozen base is in ``dtype``, peft keeps adapters in float32); forward and
    backward run in ``dtype`` under autocast. A resumed run's float32 masters are loaded
    from the trainer state afterwards (``checkpoint.load``)."""
    model, tokenizer = load_model_and_tokenizer(model_source, device=device)
    model.to(dtype if cfg.lora_rank else torch.float32)
    if cfg.lora_rank:
        model = add_lora(model, rank=cfg.lora_rank, alpha=cfg.lora_alpha, target_modules=cfg.lora_target_modules)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    ref_model = None
    if objective.beta > 0:
        ref_model, _ = load_model_and_tokenizer(cfg.model, device=device)
        ref_model.to(dtype).eval().requires_grad_(False)
    rollout_model = model  # the HF engine generates with the learner's own module ...
    if sharded:  # ... except under FSDP: a whole replica for generation and rank-0 eval, synced every step
        rollout_model = copy.deepcopy(model).to(dtype).eval().requires_grad_(False) if cfg.engine == "hf" else None
        dist.shard(model)
        if ref_model is not None:
            dist.shard(ref_model)
    engine = load_engine(model_source, engine=cfg.engine, policy=rollout_model, tokenizer=tokenizer, device=device,
                         dtype=cfg.dtype, batch_size=cfg.generation_batch_size, vllm_memory=cfg.vllm_memory,
                         tensor_parallel_size=cfg.tensor_parallel_size, seed=cfg.seed, sleep_mode=True)
    return model, tokenizer, ref_model, engine


def steps_for_epochs(max_epochs: float, n_questions: int, prompts_per_step: int) -> int:
    """Policy iterations of ``max_epochs`` passes over ``n_questions``: the reference's count
    (oat's learner loops ``num_prompt_epoch`` times over a prompt loader that drops the last
    incomplete batch, so one epoch is ``n_questions // prompts_per_step`` iterations)."""
    per_epoch = n_questions // prompts_per_step
    if per_epoch < 1:
        raise DrZeroError(f"max_epochs: {n_questions} training questions make no full batch of "
                          f"prompts_per_step={prompts_per_step}; set max_steps instead")
    return max(1, math.floor(max_epochs * per_epoch))


def step_prompts(n_rows: int, batch: int, seed: int, step: int) -> list[int]:
    """Row indices of the prompts of policy iteration ``step`` (0-based): a fresh seeded
    permutation per epoch over the data (the same on every rank and on resume)."""
    out, pos = [], step * batch
    while len(out) < batch:
        epoch, offset = divmod(pos, n_rows)
        order = np.random.default_rng([seed, epoch]).permutation(n_rows)
        take = min(batch - len(out), n_rows - offset)
        out.extend(order[offset : offset + take].tolist())
        pos += take
    return out


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


# ----------------------------------------------------------------------------- the update
def set_advantages(s: Setup, batch: Rollouts) -> None:
    """``batch.advantages [N]`` from the rewards, group by group (with k1 in the reward, the
    KL penalty comes off first, before the baseline), and ``batch.keep [N]``: the responses
    the update trains on (not truncated ones with ``mask_truncated``, not the all-equal
    groups with ``filter_zero_variance``, which leave its normalisers too)."""
    G = s.cfg.group_size
    shaped = batch.rewards
    if s.objective.beta and s.objective.kl_estimator == "k1_reward":
        shaped = batch.rewards - kl_reward_penalty_of(s, batch)  # [N]
    batch.advantages = group_advantages(shaped, G, scale=s.objective.advantage_scale, baseline=s.objective.baseline)
    batch.keep = ~batch.truncated if s.cfg.mask_truncated else torch.ones(len(batch), dtype=torch.bool)  # [N]
    if s.objective.filter_zero_variance:
        batch.keep &= informative_groups(shaped, G)


def update_policy(s: Setup, batch: Rollouts, step: int) -> dict:
    """The iteration's optimizer steps: ``train_batch`` responses each (by default all of
    them: one on-policy step), ``ppo_epochs`` passes, micro-batches inside. Returns the
    ``train/*`` metrics and ``rollout/logprob_gap`` (engine vs learner, before any update)."""
    cfg = s.cfg
    s.model.train()
    n_local = len(batch)
    per_update = n_local * s.train_batch // (cfg.prompts_per_step * cfg.group_size)
    if s.updates_per_iter > 1:  # the policy moves within the iteration: freeze pi_old first
        batch.old_logprobs = frozen_logprobs(s, batch)
    order_rng = np.random.default_rng([cfg.seed, step, 7])
    steps: list[dict] = []
    for _ in range(cfg.ppo_epochs):
        perm = order_rng.permutation(n_local) if per_update < n_local else np.arange(n_local)
        for u in range(0, n_local, per_update):
            stats = accumulate_gradients(
                s.model, batch.select(perm[u : u + per_update].tolist()), s.objective, ref_model=s.ref_model,
                micro_batch_size=s.micro_batch, temperature=cfg.temperature, pad_id=s.engine.pad_id, device=s.device,
                dtype=s.dtype, tis_cap=cfg.tis_cap, logprob_chunk_tokens=cfg.logprob_chunk_tokens)
            dist.sum_gradients(s.model)  # losses use global normalisers, so the sum is the exact gradient
            stats["grad_norm"] = dist.grad_norm(s.model, cfg.max_grad_norm)  # clips when max_grad_norm > 0
            s.optimizer.step()
            s.scheduler.step()
            s.optimizer.zero_grad(set_to_none=True)
            steps.append(stats)
    out = {f"train/{k}": mean_or_nan(st[k] for st in steps)
           for k in ("clip_frac_low", "clip_frac_high", "ratio_mean", "entropy", "grad_norm", "kl")}
    out["train/loss"] = sum(st["loss"] for st in steps)
    out["train/lr"] = s.scheduler.get_last_lr()[0]
    if cfg.tis_cap > 0:
        out.update({f"train/{k}": mean_or_nan(st[k] for st in steps) for k in ("tis_weight_mean", "tis_clip_frac")})
    out["rollout/logprob_gap"] = steps[0]["logprob_gap"]
    return out


def accumulate_gradients(model, batch: Rollouts, objective: Objective, *, ref_model=None, micro_batch_size: int,
                         temperature: float, pad_id: int, device, dtype=torch.float32, tis_cap: float = 0.0,
                         share_prompts: bool = True, logprob_chunk_tokens: int = LOGPROB_CHUNK_TOKENS) -> dict:
    """Backward the loss of one optimizer step's responses (``batch``, with ``advantages``
    and ``keep`` set) in micro-batches. The normalisers (responses, tokens) are the step's
    global totals, so the accumulated gradient does not depend on ``micro_batch_size`` or
    on the number of ranks. pi_old is ``batch.old_logprobs`` when set, else the detached
    current log-probs (on-policy: ratio exactly 1, no extra forward pass). ``tis_cap`` > 0
    weights each token by min(pi_old/pi_rollout, cap), pi_rollout being the engine's
    log-probs. ``share_prompts``: each prompt runs once per chunk of micro-batches, its
    keys/values shared by all its responses where the model allows it (``models.plan_forward``,
    ``models.Forward``; the same gradient). Returns the step's loss and its metrics, averaged
    over micro-batches."""
    gens = batch.generations
    # filtering: N_step counts the responses trained on (keep), not the filtered groups'
    n_resp = dist.all_sum(float(batch.keep.sum() if objective.filter_zero_variance else len(batch)))
    n_tok = dist.all_sum(float(sum(len(g.token_ids) for g, k in zip(gens, batch.keep.tolist()) if k)))
    cut = plan_forward(model, [g.prompt_token_ids for g in gens], [len(g.token_ids) for g in gens], micro_batch_size,
                        share_prompts=share_prompts)
    total = 0.0
    stats: dict[str, list[float]] = {k: [] for k in ("clip_frac_low", "clip_frac_high", "ratio_mean", "kl", "entropy",
                                                      "logprob_gap", "tis_weight_mean", "tis_clip_frac")}
    for chunk in cut.chunks:
        # shared: the chunk's prompts run once (their gradient goes through them after the last micro-batch)
        chunk_prompts = [gens[i].prompt_token_ids for idx in chunk for i in idx]
        forward = Forward(model, chunk_prompts, shared=cut.shared, pad_id=pad_id, device=device, dtype=dtype,
                          separate_backward=len(chunk) > 1, chunk_tokens=logprob_chunk_tokens)
        ref_forward = None
        if ref_model is not None:
            with torch.no_grad():
                ref_forward = Forward(ref_model, chunk_prompts, shared=cut.shared, pad_id=pad_id, device=device,
                                      dtype=dtype, chunk_tokens=logprob_chunk_tokens)
        for idx in chunk:
            mb = batch.select(idx)
            prompts, responses = [g.prompt_token_ids for g in mb.generations], [g.token_ids for g in mb.generations]
            logp, ent, mask = forward.logprobs(prompts, responses, temperature=temperature, with_entropy=True)
            mask = mask * mb.keep.to(device).float()[:, None]  # [M, T]
            old = logp.detach() if mb.old_logprobs is None else _pad_rows(mb.old_logprobs, logp.shape, device)
            ref = None
            if ref_forward is not None:
                with torch.no_grad():
                    ref, _, _ = ref_forward.logprobs(prompts, responses, temperature=temperature)
            engine_lp, is_w = None, None
            if all(len(g.logprobs) == len(g.token_ids) for g in mb.generations):  # the engine's own log-probs
                engine_lp = _pad_rows([torch.tensor(g.logprobs) for g in mb.generations], logp.shape, device)
                stats["logprob_gap"].append(masked_mean((logp.detach() - engine_lp).abs(), mask).item())
            if tis_cap > 0:
                if engine_lp is None:
                    raise DrZeroError("tis_cap needs the generation engine's sampled-token log-probs, which it did not "
                                      "return")
                is_w = tis_weights(old, engine_lp, tis_cap)  # [M, T]
                stats["tis_weight_mean"].append(masked_mean(is_w, mask).item())
                stats["tis_clip_frac"].append(masked_mean(((old - engine_lp).exp() > tis_cap).float(), mask).item())
            loss, lm = policy_loss(
                objective, logp, old, mb.advantages.to(device), mask, ref_logprobs=ref,
                num_responses=n_resp, num_tokens=n_tok, is_weights=is_w,
            )
            loss.backward()
            total += loss.item()
            for k in ("clip_frac_low", "clip_frac_high", "ratio_mean"):
                stats[k].append(lm[k])
            stats["kl"].append(lm.get("kl", 0.0))
            stats["entropy"].append(masked_mean(ent, mask).item())
        forward.backward()
    return {"loss": total, **{k: mean_or_nan(v) for k, v in stats.items()}}


def kl_reward_penalty_of(s: Setup, batch: Rollouts) -> torch.Tensor:
    """``[N]`` beta * sum_t log(pi_old / pi_ref) of each response (algo.kl_reward_penalty)."""
    old, ref = frozen_logprobs(s, batch), frozen_logprobs(s, batch, model=s.ref_model)
    return torch.stack([kl_reward_penalty(o[None], r[None], torch.ones(1, len(o)), s.objective.beta)[0]
                        for o, r in zip(old, ref)])


def frozen_logprobs(s: Setup, batch: Rollouts, model=None) -> list[torch.Tensor]:
    """pi_old log-probs ``[T_i]`` of every response, before any update of this iteration
    (of ``model`` instead of the policy when given: the reference, for k1 in the reward)."""
    model = s.model if model is None else model
    gens = batch.generations
    out: list[torch.Tensor] = [None] * len(gens)  # type: ignore[list-item]
    cut = plan_forward(model, [g.prompt_token_ids for g in gens], [len(g.token_ids) for g in gens], s.micro_batch)
    with torch.no_grad():
        for chunk in cut.chunks:
            forward = Forward(model, [gens[i].prompt_token_ids for idx in chunk for i in idx], shared=cut.shared,
                              pad_id=s.engine.pad_id, device=s.device, dtype=s.dtype,
                              chunk_tokens=s.cfg.logprob_chunk_tokens)
            for ids in chunk:
                prompts, responses = [gens[i].prompt_token_ids for i in ids], [gens[i].token_ids for i in ids]
                logp, _, _ = forward.logprobs(prompts, responses, temperature=s.cfg.temperature)
                for k, i in enumerate(ids):
                    out[i] = logp[k, : len(gens[i].token_ids)].float().cpu()
    return out


def _pad_rows(rows: list[torch.Tensor], shape, device) -> torch.Tensor:
    out = torch.zeros(shape, dtype=torch.float32)
    for k, r in enumerate(rows):
        out[k, : len(r)] = r
    return out.to(device)


# ----------------------------------------------------------------------------- metrics, eval, checkpoints
def rollout_metrics(batch: Rollouts, objective: Objective) -> tuple[dict, dict]:
    """The iteration's ``rollout/*`` and ``bias/*`` metrics, and its weights.jsonl record:
    every response's length, reward, correctness, advantage and per-token gradient weight
    (``drzero.algo.bias_weights``), and each informative question's scale.

    Lengths are split by *reward* (a truncated response the grader would accept still has
    reward 0 and is trained on as a failure), and ``rollout/length_gap_within_group`` is the
    mean over groups with both outcomes of (mean unrewarded length - mean rewarded length):
    a within-question comparison, so question difficulty cannot confound it (paper Sec. 3.1:
    under GRPO this gap grows)."""
    lengths, G = batch.lengths, batch.group_size  # [N]
    rewarded = batch.solved.tolist()  # [N]: the verdict part of the reward (a --reward function's part aside)
    group_std = batch.rewards.view(-1, G).std(dim=1)  # [B]
    informative = group_std > 0  # zero-variance groups get zero advantage whatever their scale
    q_scale = question_weights(batch.rewards, G, scale=objective.advantage_scale)  # [B]
    token_w = bias_weights(batch.advantages, lengths, aggregation=objective.aggregation,
                           constant_normalizer=objective.constant_normalizer).tolist()  # [N]
    lens = lengths.tolist()
    gaps = []
    for start in range(0, len(batch), G):
        group = list(zip(lens[start : start + G], rewarded[start : start + G]))
        right, wrong = [x for x, r in group if r], [x for x, r in group if not r]
        if right and wrong:
            gaps.append(mean_or_nan(wrong) - mean_or_nan(right))
    metrics = {
        "rollout/reward_mean": dist.all_mean(batch.rewards.mean().item()),
        "rollout/accuracy": dist.all_mean(mean_or_nan(batch.correct.tolist())),
        "rollout/format_rate": mean_or_nan(g.formatted for g in batch.grades),
        "rollout/response_length_mean": lengths.mean().item(),
        "rollout/response_length_correct": mean_or_nan(x for x, r in zip(lens, rewarded) if r),
        "rollout/response_length_incorrect": mean_or_nan(x for x, r in zip(lens, rewarded) if not r),
        "rollout/length_gap_within_group": mean_or_nan(gaps),
        "rollout/truncation_rate": batch.truncated.float().mean().item(),
        "rollout/zero_variance_group_frac": (group_std == 0).float().mean().item(),
        "rollout/reflection_rate": mean_or_nan(bool(reflection_keywords(g.text)) for g in batch.generations),
        "rollout/grader_timeouts": sum(g.timed_out for g in batch.grades),
        "bias/token_weight_abs_correct": mean_or_nan(abs(w) for w, r in zip(token_w, rewarded) if r),
        "bias/token_weight_abs_incorrect": mean_or_nan(abs(w) for w, r in zip(token_w, rewarded) if not r),
        "bias/question_weight_max_over_min": (q_scale[informative].max() / q_scale[informative].min()).item()
        if informative.any() else float("nan"),
    }
    record = {"length": lens, "reward": batch.rewards.tolist(), "correct": batch.correct.tolist(),
              "advantage": batch.advantages.tolist(), "token_weight": token_w,
              "question_scale": q_scale[informative].tolist()}
    return metrics, record


def sample_records(batch: Rollouts, step: int, n: int) -> list[dict]:
    """The first response of each of the first ``n`` questions, for samples.jsonl."""
    out = []
    for j in range(0, min(n * batch.group_size, len(batch)), batch.group_size):
        g, gr = batch.generations[j], batch.grades[j]
        out.append({"step": step, "question": batch.rows[j]["problem"], "reference": batch.rows[j]["answer"],
                    "response": g.text, "extracted": gr.extracted, "reward": batch.rewards[j].item(),
                    "advantage": batch.advantages[j].item(), "length": len(g.token_ids), "finish_reason": g.finish_reason})
    return out


def evaluate_policy(s: Setup) -> dict:
    """Greedy accuracy (and lengths of correct and incorrect responses, format and truncation
    rates) on every eval set, and their mean when there are several."""
    out = {}
    for name, rows in s.eval_sets.items():
        res = evaluate_rows(s.engine, rows, s.template, n=1, temperature=0.0,
                            max_new_tokens=s.cfg.eval_max_new_tokens or s.cfg.max_new_tokens, grader=s.grader)
        for k in ("accuracy", "format_rate", "length_mean", "length_correct", "length_incorrect", "truncation_rate"):
            out[f"eval/{name}/{k}"] = res.metrics[k]
    if len(s.eval_sets) > 1:  # the paper's headline number: the mean over benchmarks
        out["eval/average/accuracy"] = mean_or_nan(out[f"eval/{name}/accuracy"] for name in s.eval_sets)
    return out


def save_checkpoint(s: Setup, step: int) -> None:
    """``checkpoints/step-N``: the HF model folder in the training dtype with its model card
    (gathered once to rank 0 when sharded), and beside it the trainer state, every rank
    saving its own shard (a collective)."""
    card = checkpoint.model_card(s.cfg, step, objective_line=describe_objective(s.cfg.algo, s.objective),
                                 template=s.template, run_dir=s.run_dir) if dist.is_main() else ""
    checkpoint.save(s.run_dir, step, s.model, s.tokenizer, s.optimizer, export_dtype=s.dtype, card=card,
                    keep=s.cfg.keep_checkpoints,
                    small_state={"scheduler": s.scheduler.state_dict(), "monitor": s.monitor.state_dict()})
