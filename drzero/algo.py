"""The RL objective family as pure tensor functions: GRPO, Dr. GRPO, DAPO, RLOO, GSPO, CISPO,
the KL estimators, and the frameworks' own "Dr. GRPO" and GRPO normalisers (docs/objectives.md).

Nothing here touches a model, a config object or a process group: tensors and numbers
in, tensors out. Shapes use ``B`` prompts, ``G`` samples per prompt (``group_size``),
``N = B*G`` responses, ``T`` response tokens (padded).

The paper (Liu et al. 2025, Sec. 3) writes GRPO's objective as

    J = (1/G) sum_i (1/|o_i|) sum_t min(r_it A_i, clip(r_it, 1-eps, 1+eps) A_i),
    A_i = (R_i - mean(R)) / std(R),   r_it = pi(o_it) / pi_old(o_it)

and names two biases: ``1/|o_i|`` (response-level length bias) and ``/std(R)``
(question-level difficulty bias). Dr. GRPO drops both: ``A_i = R_i - mean(R)`` and the
token sum of every response is divided by one constant C (the generation budget).

The normaliser over responses (and over tokens for ``token_mean``) is the *optimizer
step's* total, passed in by the caller, so the gradient does not depend on how the step
is cut into micro-batches, accumulation steps or data-parallel ranks -- except for the two
``MICROBATCH_AGGREGATIONS``, which reproduce frameworks whose normaliser does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

AGGREGATIONS = ("seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm", "microbatch_token_mean",
                "microbatch_padded_width")
# Aggregations whose normaliser is the micro-batch's own (as some frameworks do): the gradient
# then depends on how the step is cut into micro-batches and ranks. The rest use the step's totals.
MICROBATCH_AGGREGATIONS = ("microbatch_token_mean", "microbatch_padded_width")
SCALES = ("group", "batch", "none")
BASELINES = ("mean", "loo")
RATIO_LEVELS = ("token", "sequence")
SURROGATES = ("clip", "cispo")
KL_ESTIMATORS = ("k3", "k1_reward", "k2", "k3_ratio")


def _check_choice(knob: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{knob} must be one of {choices}, got {value!r}")


def _check_aggregation(aggregation: str, constant_normalizer: float | None) -> None:
    _check_choice("aggregation", aggregation, AGGREGATIONS)
    if aggregation == "seq_mean_token_sum_norm" and not constant_normalizer:
        raise ValueError("seq_mean_token_sum_norm needs constant_normalizer (the generation budget)")


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``rewards [N]`` as ``[B, G]``, refusing a length that is not whole groups."""
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be 1-D with a multiple of group_size={group_size} entries, got {tuple(rewards.shape)}")
    return rewards.view(-1, group_size)


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    *,
    scale: str = "group",
    baseline: str = "mean",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Advantages ``[N]`` from rewards ``[N]`` ordered as B groups of ``group_size``.

    baseline="mean": b_i = mean_j R_j over the group (GRPO, Dr. GRPO);
    baseline="loo":  b_i = (sum_j R_j - R_i) / (G - 1) (RLOO, leave-one-out).
    scale="group": A_i = (R_i - b_i) / (std_group(R) + eps)  (GRPO; unbiased std);
    scale="batch": A_i = (R_i - b_i) / (std_batch(R) + eps);
    scale="none":  A_i = R_i - b_i  (Dr. GRPO).
    A group whose rewards are all equal gets exactly zero advantage (never NaN).
    """
    _check_choice("scale", scale, SCALES)
    _check_choice("baseline", baseline, BASELINES)
    grouped = _grouped(rewards, group_size)  # [B, G]
    if baseline == "mean":
        base = grouped.mean(dim=1, keepdim=True)
    else:
        if group_size < 2:
            raise ValueError("the leave-one-out baseline needs group_size >= 2")
        base = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    adv = grouped - base  # [B, G]
    divisor = _advantage_divisor(rewards, grouped, scale, eps)  # [B, 1], [] or None
    if divisor is not None:
        adv = adv / divisor
    return adv.reshape(-1)


def _advantage_divisor(rewards: torch.Tensor, grouped: torch.Tensor, scale: str, eps: float) -> torch.Tensor | None:
    """What ``group_advantages`` divides ``R - b`` by: std_group + eps ``[B, 1]``, std_batch + eps
    (a scalar), or None for ``scale="none"``. One place, so the advantages and
    ``question_weights`` cannot disagree."""
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True) if grouped.shape[1] > 1 else torch.zeros_like(grouped[:, :1])
        return std + eps
    if scale == "batch":
        return rewards.std() + eps
    return None


def question_weights(rewards: torch.Tensor, group_size: int, *, scale: str, eps: float = 1e-6) -> torch.Tensor:
    """Per-question weight ``[B]``: the factor each group's advantages carry relative to Dr. GRPO's
    unscaled ``R_i - b_i`` (the question-level difficulty bias, paper Sec. 3).

    rewards ``[N]`` ordered as B groups of ``group_size``, as for ``group_advantages``.
    scale="group": w_q = 1 / (std_group(R_q) + eps)  (GRPO, DAPO; unbiased std): the questions
                   whose rewards barely vary (nearly all right or all wrong) weigh most;
    scale="batch": w_q = 1 / (std_batch(R) + eps)   the same for every question of the batch;
    scale="none":  w_q = 1                           (Dr. GRPO, RLOO).
    For every baseline, group_advantages(scale=s) == w[q] * group_advantages(scale="none")
    for the responses of group q. A group whose rewards are all equal gets 1/eps under
    "group", but its advantages are zero whatever the weight: leave such groups out when
    summarising the weights (they carry no gradient).
    """
    _check_choice("scale", scale, SCALES)
    grouped = _grouped(rewards, group_size)  # [B, G]
    divisor = _advantage_divisor(rewards, grouped, scale, eps)
    if divisor is None:
        return torch.ones(grouped.shape[0], dtype=rewards.dtype, device=rewards.device)
    return (1.0 / divisor).expand(grouped.shape[0], 1).reshape(-1)  # [B]


def policy_loss(
    objective: Objective,
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    ref_logprobs: torch.Tensor | None = None,
    num_responses: float | None = None,
    num_tokens: float | None = None,
    is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped-surrogate loss of a (micro-)batch and its metrics, for the ``objective``
    (an ``Objective``, e.g. from ``resolve_objective``: its aggregation, constant
    normaliser, clip range and beta are read here, so a new knob is one field).

    logprobs, old_logprobs, ref_logprobs, response_mask: ``[N, T]``; advantages ``[N]``.
    Per token: l_it = w_it * max(-A_i r_it, -A_i clip(r_it, 1-eps_low, 1+eps_high))
                     + beta * kl_it  (``kl_loss_term``; k3 = exp(ref - logp) - (ref - logp) - 1 by default;
                                      none for kl_estimator="k1_reward", which is in the advantages);
    ratio_level="sequence": r_it -> GSPO's s_i (``sequence_ratio``); surrogate="cispo":
    l_it = -w_it * sg(clip(r_it, 1-eps_low, 1+eps_high)) * A_i * logp_it.
    ``is_weights`` w ``[N, T]`` (default 1) are constants: truncated importance sampling
    (see ``tis_weights``) corrects for the generation engine sampling from a slightly
    different distribution than the learner's pi_old.
    Aggregation (``num_responses`` = N_step, ``num_tokens`` = T_step, the optimizer
    step's totals; they default to this batch's own; M = this call's responses):
      seq_mean_token_mean     (GRPO):     sum_i [sum_t l_it / |o_i|] / N_step
      token_mean              (DAPO):     sum_i sum_t l_it / T_step
      seq_mean_token_sum_norm (Dr. GRPO): sum_i [sum_t l_it / C] / N_step
      microbatch_token_mean   (verl's token-mean in its dp_actor, TRL's bnpo):
                              (M / N_step) * sum_i sum_t l_it / (sum_i |o_i| of this call)
      microbatch_padded_width (verl's seq-mean-token-sum-norm before its PR #5417):
                              (M / N_step) * sum_i sum_t l_it / T  (T = the padded width, response_mask.shape[1])
    The last two depend on how the step is cut into calls (micro-batches, ranks), on purpose:
    they reproduce frameworks that do (``MICROBATCH_AGGREGATIONS``).
    Returns (scalar loss, metrics: clip_frac_low, clip_frac_high, ratio_mean, kl (when
    beta > 0)).
    """
    aggregation, constant_normalizer = objective.aggregation, objective.constant_normalizer
    check_objective(objective)
    clip_eps_low, beta = objective.clip_eps_low, objective.beta
    clip_eps_high = clip_eps_low if objective.clip_eps_high is None else objective.clip_eps_high
    mask = response_mask.to(logprobs.dtype)  # [N, T]
    adv = advantages.to(logprobs.dtype).unsqueeze(1)  # [N, 1]
    lengths = mask.sum(dim=1)  # [N]
    token_ratio = torch.exp(logprobs - old_logprobs)  # [N, T]
    ratio = token_ratio if objective.ratio_level == "token" else sequence_ratio(logprobs, old_logprobs, mask)
    lo, hi = 1.0 - clip_eps_low, 1.0 + clip_eps_high
    if objective.surrogate == "cispo":
        # CISPO (MiniMax-M1, Chen et al. 2025, eq. 4): the clipped ratio is a detached weight
        # on REINFORCE's A * log pi, so a clipped token still has a gradient.
        per_token = -torch.clamp(ratio, lo, hi).detach() * adv * logprobs  # [N, T]
    else:
        per_token = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, lo, hi))  # [N, T]
    if is_weights is not None:
        per_token = per_token * is_weights.detach().to(per_token.dtype)
    kl = None
    if beta and objective.kl_estimator != "k1_reward":  # k1_reward is in the advantages (kl_reward_penalty)
        if ref_logprobs is None:
            raise ValueError("beta > 0 needs ref_logprobs")
        kl = kl_loss_term(logprobs, ref_logprobs, objective.kl_estimator, ratio=token_ratio)  # [N, T]
        per_token = per_token + beta * kl

    n_resp = float(num_responses) if num_responses is not None else float(mask.shape[0])
    n_tok = float(num_tokens) if num_tokens is not None else float(lengths.sum().item())
    token_sums = (per_token * mask).sum(dim=1)  # [N]
    if aggregation == "seq_mean_token_mean":
        loss = (token_sums / lengths.clamp(min=1.0)).sum() / n_resp
    elif aggregation == "token_mean":
        loss = token_sums.sum() / max(n_tok, 1.0)
    elif aggregation == "seq_mean_token_sum_norm":
        loss = (token_sums / constant_normalizer).sum() / n_resp
    else:  # the micro-batch's own normaliser, then 1/accumulation steps and a mean over ranks: x M / N_step
        own = lengths.sum().clamp(min=1.0) if aggregation == "microbatch_token_mean" else float(mask.shape[1])
        loss = token_sums.sum() / own * (mask.shape[0] / n_resp)

    with torch.no_grad():
        if objective.surrogate == "cispo":  # a clipped weight: either side counts, whatever the sign of A
            low, high = (ratio < lo).to(mask.dtype), (ratio > hi).to(mask.dtype)
        else:  # the PPO clip only binds where it removes the gradient
            low = ((ratio < lo) & (adv < 0)).to(mask.dtype)
            high = ((ratio > hi) & (adv > 0)).to(mask.dtype)
        metrics = {
            "clip_frac_low": masked_mean(low, mask).item(),
            "clip_frac_high": masked_mean(high, mask).item(),
            "ratio_mean": masked_mean(ratio, mask).item(),
        }
        if kl is not None:
            metrics["kl"] = masked_mean(kl, mask).item()
    return loss, metrics


def sequence_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GSPO's sequence-level ratio ``[N, T]`` (Zheng et al. 2025, eqs. 5-7), written per token.

    s_i = (pi(o_i)/pi_old(o_i))^(1/|o_i|) = exp((1/|o_i|) sum_t (logp_it - old_it)), the
    geometric mean of the token ratios; each token carries s_it = sg(s_i) * pi_it / sg(pi_it)
    (GSPO-token): its value is s_i (so one clip decision per response) and d s_it / d logp_it
    = s_i. Under ``seq_mean_token_mean`` the gradient is exactly GSPO's,
    (1/N) sum_i A_i s_i (1/|o_i|) sum_t grad log pi_it -- note the 1/|o_i|: the geometric mean
    brings back GRPO's per-response length normaliser. logprobs, old_logprobs, mask ``[N, T]``.
    """
    lengths = mask.sum(dim=1).clamp(min=1.0)  # [N]
    seq_log_ratio = ((logprobs - old_logprobs) * mask).sum(dim=1) / lengths  # [N]
    return torch.exp(logprobs - logprobs.detach() + seq_log_ratio.detach().unsqueeze(1))  # [N, T]


def kl_loss_term(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str,
                 ratio: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate ``[N, T]`` added to the loss as beta * term
    (Schulman 2020, "Approximating KL divergence"; d = logp - ref):

      k3:       exp(-d) + d - 1            (GRPO, DeepSeekMath; >= 0; today's default)
      k2:       d^2 / 2                    (its gradient d * grad logp is the unbiased
                                            gradient of KL(pi || pi_ref) on-policy)
      k3_ratio: r * k3, r = pi / pi_old   (DeepSeek-V3.2: the samples come from pi_old, so the
                                            importance ratio makes k3 unbiased for pi; r is
                                            the token ratio with its gradient, ``ratio``)
    ``k1_reward`` is not a loss term: see ``kl_reward_penalty``.
    """
    _check_choice("kl_estimator", estimator, KL_ESTIMATORS)
    d = logprobs - ref_logprobs
    if estimator == "k2":
        return 0.5 * d.square()
    k3 = torch.exp(-d) + d - 1.0
    if estimator == "k3_ratio":
        if ratio is None:
            raise ValueError("k3_ratio needs the importance ratio pi / pi_old")
        return ratio * k3
    if estimator == "k1_reward":
        raise ValueError("k1_reward enters the reward (kl_reward_penalty), not the loss")
    return k3


def kl_reward_penalty(old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor, response_mask: torch.Tensor,
                      beta: float) -> torch.Tensor:
    """k1 in the reward ``[N]``: beta * sum_t (log pi_old(o_it) - log pi_ref(o_it)), subtracted
    from R_i *before* the group baseline and scale (PPO/RLHF-style; verl's use_kl_in_reward with
    GRPO sums its token-level rewards the same way). Constant (no gradient). It grows with the
    response's length: a longer response pays more, a length bias of its own (docs/objectives.md).
    old_logprobs, ref_logprobs, response_mask ``[N, T]``."""
    with torch.no_grad():
        return beta * ((old_logprobs - ref_logprobs) * response_mask).sum(dim=1)


def informative_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[N]`` bool: the response's group has rewards that are not all equal (zero-variance
    filtering keeps only these; the others' advantages are exactly zero anyway, so filtering
    changes only the normalisers and the KL term). rewards ``[N]`` as B groups of ``group_size``."""
    grouped = _grouped(rewards, group_size)  # [B, G]
    varied = (grouped != grouped[:, :1]).any(dim=1)  # [B]
    return varied.repeat_interleave(group_size)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1 (0 when there are none)."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def tis_weights(old_logprobs: torch.Tensor, rollout_logprobs: torch.Tensor, cap: float) -> torch.Tensor:
    """Truncated importance-sampling weights ``[N, T]``: min(pi_old / pi_rollout, cap).

    The engine that sampled the tokens (vLLM, bf16 kernels) is not bit-identical to the
    learner, so the tokens come from pi_rollout, not pi_old. Weighting each token's
    surrogate by the ratio corrects the policy gradient; truncating it at ``cap`` bounds
    the variance (Yao et al. 2025, "Your efficient RL framework secretly brings you
    off-policy RL training"). No gradient flows through the weights.
    """
    if cap <= 0:
        raise ValueError(f"the truncation cap must be > 0, got {cap}")
    with torch.no_grad():
        return torch.exp(old_logprobs - rollout_logprobs).clamp(max=cap)


def bias_weights(
    advantages: torch.Tensor,
    lengths: torch.Tensor,
    *,
    aggregation: str,
    constant_normalizer: float | None = None,
) -> torch.Tensor:
    """Per-token gradient weight ``[N]`` each response gets (on-policy, before clipping).

    GRPO (seq_mean_token_mean): A_i / |o_i|  -- short correct answers pushed hardest,
                                               long wrong answers punished least;
    Dr. GRPO (seq_mean_token_sum_norm): A_i / C  -- the same for every length;
    DAPO (token_mean): A_i / mean_j |o_j|     -- one weight for the batch.
    The micro-batch aggregations as if the step were one micro-batch padded to its longest
    response: microbatch_token_mean A_i / mean_j |o_j|, microbatch_padded_width N * A_i / max_j |o_j|
    (no 1/N: the width replaces Dr. GRPO's N*C, verl #3741's "loss is micro_batch_size * loss").
    (The common factor 1/N_step is left out.)
    """
    _check_aggregation(aggregation, constant_normalizer)
    lengths = lengths.to(advantages.dtype).clamp(min=1.0)
    if aggregation == "seq_mean_token_mean":
        return advantages / lengths
    if aggregation == "seq_mean_token_sum_norm":
        return advantages / constant_normalizer
    if aggregation == "microbatch_padded_width":
        return advantages * advantages.numel() / lengths.max()
    return advantages / lengths.mean()  # token_mean, microbatch_token_mean


@dataclass(frozen=True)
class Objective:
    """The knobs that define an algorithm; a preset fills all of them at once. A knob is a
    field here and a field of the same name in ``config.TrainConfig`` (the trainer passes
    every field of this record through ``resolve_objective``)."""

    advantage_scale: str = "none"
    baseline: str = "mean"
    aggregation: str = "seq_mean_token_sum_norm"
    constant_normalizer: float | None = None  # None: the generation budget (max_new_tokens)
    clip_eps_low: float = 0.2
    clip_eps_high: float | None = None
    beta: float = 0.0
    ratio_level: str = "token"  # "sequence": GSPO's geometric-mean ratio, clipped per response
    surrogate: str = "clip"  # "cispo": sg(clip(r)) * A * log pi instead of PPO's min(rA, clip(r)A)
    kl_estimator: str = "k3"  # k3 | k2 | k3_ratio (loss terms) | k1_reward (in the reward); with beta > 0
    filter_zero_variance: bool = False  # all-equal groups leave the update and its normalisers


PRESETS: dict[str, Objective] = {
    "grpo": Objective(advantage_scale="group", baseline="mean", aggregation="seq_mean_token_mean"),
    "dr_grpo": Objective(advantage_scale="none", baseline="mean", aggregation="seq_mean_token_sum_norm"),
    "dapo": Objective(advantage_scale="group", baseline="mean", aggregation="token_mean", clip_eps_high=0.28),
    "rloo": Objective(advantage_scale="none", baseline="loo", aggregation="seq_mean_token_sum_norm"),
    # GSPO (Zheng et al. 2025, Sec. 4-5): GRPO's advantages, sequence ratio, its clip range 3e-4 / 4e-4
    "gspo": Objective(advantage_scale="group", aggregation="seq_mean_token_mean", ratio_level="sequence",
                      clip_eps_low=3e-4, clip_eps_high=4e-4),
    # CISPO (MiniMax-M1, Chen et al. 2025, Sec. 3.1): token mean, no lower bound on the weight;
    # upper bound 1 + 4 = 5, ScaleRL's eps_max = 5 (Khatri et al. 2025; TRL's recommended epsilon_high)
    "cispo": Objective(advantage_scale="group", aggregation="token_mean", surrogate="cispo",
                       clip_eps_low=1.0, clip_eps_high=4.0),
    # How frameworks' own "Dr. GRPO" and GRPO normalise, named by behaviour; each one's source
    # file and line are in docs/objectives.md. (oat and understand-r1-zero's drgrpo, TRL's
    # loss_type="dr_grpo" with scale_rewards="none", SkyRL's seq_mean_token_sum_norm: dr_grpo
    # above with their constant as --constant-normalizer. TRL's grpo: grpo above.)
    # TRL loss_type="dr_grpo" alone: its scale_rewards defaults to "group", so the std stays
    "dr_grpo_with_std": Objective(advantage_scale="group", aggregation="seq_mean_token_sum_norm"),
    # OpenRLHF advantage estimator dr_grpo: R - mean, then its default token-level loss (step-global token mean)
    "dr_grpo_token_mean": Objective(advantage_scale="none", aggregation="token_mean"),
    # verl norm_adv_by_std_in_grpo=False + loss_agg_mode=seq-mean-token-sum-norm (dp_actor, before PR #5417)
    "dr_grpo_padded_width": Objective(advantage_scale="none", aggregation="microbatch_padded_width"),
    # verl's default GRPO (loss_agg_mode=token-mean in its dp_actor) and TRL's loss_type="bnpo"
    "grpo_microbatch_token_mean": Objective(advantage_scale="group", aggregation="microbatch_token_mean"),
}


def check_objective(obj: Objective) -> None:
    """Refuse an unknown knob value or a combination we define as meaningless (ValueError, one line).

    Refused: ratio_level="sequence" with aggregation="token_mean". The sequence ratio makes
    each response one clipped decision; token_mean divides the step's token sum by the step's
    token count, so that one decision is counted |o_i| times and a response's weight depends
    on the other responses' lengths. GSPO (eq. 5) averages over responses: use
    seq_mean_token_mean (as published) or seq_mean_token_sum_norm (a constant per token).
    (TRL only warns here, grpo_trainer.py "weights each sequence by its completion length".)
    """
    _check_choice("advantage_scale", obj.advantage_scale, SCALES)
    _check_choice("baseline", obj.baseline, BASELINES)
    _check_aggregation(obj.aggregation, obj.constant_normalizer)
    _check_choice("ratio_level", obj.ratio_level, RATIO_LEVELS)
    _check_choice("surrogate", obj.surrogate, SURROGATES)
    _check_choice("kl_estimator", obj.kl_estimator, KL_ESTIMATORS)
    if obj.ratio_level == "sequence" and obj.aggregation in ("token_mean", "microbatch_token_mean"):
        raise ValueError(f"ratio_level=sequence with aggregation={obj.aggregation} is refused: a sequence ratio is one "
                         "decision per response, which token_mean would count |o_i| times; use seq_mean_token_mean "
                         "(GSPO) or seq_mean_token_sum_norm")


def resolve_objective(preset: str, max_new_tokens: int | None = None, **overrides) -> Objective:
    """The preset's knobs with ``overrides`` (None values ignored) applied; the Dr. GRPO
    constant defaults to the generation budget ``max_new_tokens``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown algorithm {preset!r}; choose from {', '.join(PRESETS)}")
    obj = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    _check_choice("aggregation", obj.aggregation, AGGREGATIONS)
    if obj.aggregation == "seq_mean_token_sum_norm" and obj.constant_normalizer is None:
        if max_new_tokens is None:
            raise ValueError("seq_mean_token_sum_norm needs constant_normalizer or max_new_tokens")
        obj = replace(obj, constant_normalizer=float(max_new_tokens))
    check_objective(obj)
    return obj


def describe_objective(name: str, obj: Objective) -> str:
    """One readable line for the start of a training log."""
    base = "mean_group(R)" if obj.baseline == "mean" else "mean_{j!=i}(R)"
    scale = {"group": " / std_group(R)", "batch": " / std_batch(R)", "none": ""}[obj.advantage_scale]
    hi = obj.clip_eps_low if obj.clip_eps_high is None else obj.clip_eps_high
    r = "s_i" if obj.ratio_level == "sequence" else "r"
    clip = f"clip({r}, {1 - obj.clip_eps_low:g}, {1 + hi:g})"
    surrogate = f"sg({clip})*A*log pi" if obj.surrogate == "cispo" else f"min({r}*A, {clip}*A)"
    const = f"{obj.constant_normalizer:g}" if obj.constant_normalizer else "C"
    agg = {
        "seq_mean_token_mean": f"(1/N) sum_i (1/|o_i|) sum_t {surrogate}",
        "token_mean": f"(1/sum_i|o_i|) sum_i sum_t {surrogate}",
        "seq_mean_token_sum_norm": f"(1/N) sum_i (1/{const}) sum_t {surrogate}",
        "microbatch_token_mean": f"(M/N) (1/sum_(i in mb)|o_i|) sum_(i in mb) sum_t {surrogate} per micro-batch mb "
                                 f"of M responses",
        "microbatch_padded_width": f"(M/N) (1/T_mb) sum_(i in mb) sum_t {surrogate} per micro-batch mb of M responses "
                                   f"padded to T_mb tokens",
    }[obj.aggregation]
    reward = "R_i"
    if not obj.beta:
        kl = ", beta=0 (no KL)"
    elif obj.kl_estimator == "k1_reward":
        reward, kl = f"(R_i - {obj.beta:g}*sum_t log(pi_old/pi_ref))", ""
    else:
        kl = {"k3": f" - {obj.beta:g}*KL_k3(pi||pi_ref)", "k2": f" - {obj.beta:g}*KL_k2(pi||pi_ref)",
              "k3_ratio": f" - {obj.beta:g}*r*KL_k3(pi||pi_ref)"}[obj.kl_estimator]
    notes = []
    if obj.ratio_level == "sequence":
        notes.append("s_i = exp(mean_t log r_it), GSPO's sequence ratio")
    if obj.aggregation in MICROBATCH_AGGREGATIONS:
        notes.append("DEPENDS on how the step is cut into micro-batches and ranks (their size and which responses "
                     "share one: a micro-batch normaliser, as in the framework it reproduces)")
    if obj.filter_zero_variance:
        notes.append("all-equal groups filtered out: N and sum_i|o_i| count the remaining responses only")
    tail = "; N = responses per optimizer step" + "".join(f"; {n}" for n in notes)
    if reward != "R_i":
        base = base.replace("(R)", "(R')")
        return f"objective {name}: R'_i = {reward}; A_i = R'_i - {base}{scale}; maximise {agg}{kl}{tail}"
    return f"objective {name}: A_i = R_i - {base}{scale}; maximise {agg}{kl}{tail}"
