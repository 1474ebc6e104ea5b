"""The RL objective family as pure tensor functions: GRPO, Dr. GRPO, DAPO, RLOO.

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
is cut into micro-batches, accumulation steps or data-parallel ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

AGGREGATIONS = ("seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm")
SCALES = ("group", "batch", "none")
BASELINES = ("mean", "loo")


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
                     + beta * k3(pi, pi_ref),  k3 = exp(ref - logp) - (ref - logp) - 1.
    ``is_weights`` w ``[N, T]`` (default 1) are constants: truncated importance sampling
    (see ``tis_weights``) corrects for the generation engine sampling from a slightly
    different distribution than the learner's pi_old.
    Aggregation (``num_responses`` = N_step, ``num_tokens`` = T_step, the optimizer
    step's totals; they default to this batch's own):
      seq_mean_token_mean     (GRPO):     sum_i [sum_t l_it / |o_i|] / N_step
      token_mean              (DAPO):     sum_i sum_t l_it / T_step
      seq_mean_token_sum_norm (Dr. GRPO): sum_i [sum_t l_it / C] / N_step
    Returns (scalar loss, metrics: clip_frac_low, clip_frac_high, ratio_mean, kl (when
    beta > 0)).
    """
    aggregation, constant_normalizer = objective.aggregation, objective.constant_normalizer
    _check_aggregation(aggregation, constant_normalizer)
    clip_eps_low, beta = objective.clip_eps_low, objective.beta
    clip_eps_high = clip_eps_low if objective.clip_eps_high is None else objective.clip_eps_high
    mask = response_mask.to(logprobs.dtype)  # [N, T]
    adv = advantages.to(logprobs.dtype).unsqueeze(1)  # [N, 1]
    ratio = torch.exp(logprobs - old_logprobs)  # [N, T]
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_eps_low, 1.0 + clip_eps_high)
    per_token = torch.maximum(unclipped, clipped)  # [N, T]
    if is_weights is not None:
        per_token = per_token * is_weights.detach().to(per_token.dtype)
    kl = None
    if beta:
        if ref_logprobs is None:
            raise ValueError("beta > 0 needs ref_logprobs")
        log_ratio_ref = ref_logprobs - logprobs
        kl = torch.exp(log_ratio_ref) - log_ratio_ref - 1.0  # k3 estimator, >= 0
        per_token = per_token + beta * kl

    lengths = mask.sum(dim=1)  # [N]
    n_resp = float(num_responses) if num_responses is not None else float(mask.shape[0])
    n_tok = float(num_tokens) if num_tokens is not None else float(lengths.sum().item())
    token_sums = (per_token * mask).sum(dim=1)  # [N]
    if aggregation == "seq_mean_token_mean":
        loss = (token_sums / lengths.clamp(min=1.0)).sum() / n_resp
    elif aggregation == "token_mean":
        loss = token_sums.sum() / max(n_tok, 1.0)
    else:
        loss = (token_sums / constant_normalizer).sum() / n_resp

    with torch.no_grad():
        low = ((ratio < 1.0 - clip_eps_low) & (adv < 0)).to(mask.dtype)
        high = ((ratio > 1.0 + clip_eps_high) & (adv > 0)).to(mask.dtype)
        metrics = {
            "clip_frac_low": masked_mean(low, mask).item(),
            "clip_frac_high": masked_mean(high, mask).item(),
            "ratio_mean": masked_mean(ratio, mask).item(),
        }
        if kl is not None:
            metrics["kl"] = masked_mean(kl, mask).item()
    return loss, metrics


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
    (The common factor 1/N_step is left out.)
    """
    _check_aggregation(aggregation, constant_normalizer)
    lengths = lengths.to(advantages.dtype).clamp(min=1.0)
    if aggregation == "seq_mean_token_mean":
        return advantages / lengths
    if aggregation == "seq_mean_token_sum_norm":
        return advantages / constant_normalizer
    return advantages / lengths.mean()  # token_mean


@dataclass(frozen=True)
class Objective:
    """The knobs that define an algorithm; a preset fills all of them at once."""

    advantage_scale: str = "none"
    baseline: str = "mean"
    aggregation: str = "seq_mean_token_sum_norm"
    constant_normalizer: float | None = None  # None: the generation budget (max_new_tokens)
    clip_eps_low: float = 0.2
    clip_eps_high: float | None = None
    beta: float = 0.0


PRESETS: dict[str, Objective] = {
    "grpo": Objective(advantage_scale="group", baseline="mean", aggregation="seq_mean_token_mean"),
    "dr_grpo": Objective(advantage_scale="none", baseline="mean", aggregation="seq_mean_token_sum_norm"),
    "dapo": Objective(advantage_scale="group", baseline="mean", aggregation="token_mean", clip_eps_high=0.28),
    "rloo": Objective(advantage_scale="none", baseline="loo", aggregation="seq_mean_token_sum_norm"),
}


def resolve_objective(preset: str, max_new_tokens: int | None = None, **overrides) -> Objective:
    """The preset's knobs with ``overrides`` (None values ignored) applied; the Dr. GRPO
    constant defaults to the generation budget ``max_new_tokens``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown algorithm {preset!r}; choose from {', '.join(PRESETS)}")
    obj = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    _check_choice("advantage_scale", obj.advantage_scale, SCALES)
    _check_choice("baseline", obj.baseline, BASELINES)
    _check_choice("aggregation", obj.aggregation, AGGREGATIONS)
    if obj.aggregation == "seq_mean_token_sum_norm" and obj.constant_normalizer is None:
        if max_new_tokens is None:
            raise ValueError("seq_mean_token_sum_norm needs constant_normalizer or max_new_tokens")
        obj = replace(obj, constant_normalizer=float(max_new_tokens))
    return obj


def describe_objective(name: str, obj: Objective) -> str:
    """One readable line for the start of a training log."""
    base = "mean_group(R)" if obj.baseline == "mean" else "mean_{j!=i}(R)"
    scale = {"group": " / std_group(R)", "batch": " / std_batch(R)", "none": ""}[obj.advantage_scale]
    hi = obj.clip_eps_low if obj.clip_eps_high is None else obj.clip_eps_high
    surrogate = f"min(r*A, clip(r, {1 - obj.clip_eps_low:g}, {1 + hi:g})*A)"
    const = f"{obj.constant_normalizer:g}" if obj.constant_normalizer else "C"
    agg = {
        "seq_mean_token_mean": f"(1/N) sum_i (1/|o_i|) sum_t {surrogate}",
        "token_mean": f"(1/sum_i|o_i|) sum_i sum_t {surrogate}",
        "seq_mean_token_sum_norm": f"(1/N) sum_i (1/{const}) sum_t {surrogate}",
    }[obj.aggregation]
    kl = f" - {obj.beta:g}*KL_k3(pi||pi_ref)" if obj.beta else ", beta=0 (no KL)"
    return f"objective {name}: A_i = R_i - {base}{scale}; maximise {agg}{kl}; N = responses per optimizer step"
