"""An exact miniature of GRPO's two biases (paper Sec. 3): a policy over response *shapes*.

A response is a short sequence of decisions, each one token with a log-prob from a tiny
tabular policy (a handful of logits), padded out with forced tokens (probability 1, no
gradient) to its length in tokens:

    path   short or long solution (``path_tokens``), chosen before anything can go wrong;
    slip   the solution slips (a wrong value) or not; p(slip) = sigmoid(d_q - skill) for
           question q, so questions differ in difficulty (pass rate);
    loops  then, repeatedly: ``recheck`` (``loop_tokens`` more tokens; a re-check re-affirms
           the wrong value unless ``fix_prob`` fixes it), ``stop`` (one token: the answer),
           or ``repeat`` (a rare repetition mode that runs to the token limit: truncated,
           reward 0).
           With ``slip_visibility`` v, a slipped response *shows* its slip to the loop
           decisions with probability v: they then use the "after a visible slip" row of
           the loop table; otherwise the same row as a clean solution (v = 0: the control).
    reward 1 if the answer is right and the response ended within ``max_new_tokens``.

Each iteration samples ``group_size`` responses for each of ``questions`` questions and
takes one on-policy Adam step on drzero.algo's own ``group_advantages`` and
``policy_loss`` for the preset (``resolve_objective``) -- the functions the trainer
uses -- so the only difference between GRPO, Dr. GRPO and DAPO is the preset. The
expected lengths of right and wrong responses are then computed *exactly* (enumerating
every shape), so the curves carry no sampling noise beyond the training run's own.

Why the bias needs a choice after a visible slip: advantages sum to zero in each group,
so a length choice that does not depend on correctness gets E[sum_i A_i f(|o_i|)] = 0,
whatever f. GRPO's 1/|o_i| acts on a length choice that *is* tied to correctness: after
a visible slip every continuation has A < 0, and the per-token penalty A/|o| is smallest
for the longest one (more loops, or repetition); on a clean path A > 0 and the shortest
continuation is rewarded most per token. Dr. GRPO's constant C gives every continuation
the same weight, so the expected push on the loop choice is zero.

    python -m drzero.simulate --output runs/simulate          # ~40 s of one core
    python -m drzero.simulate --help

writes ``summary.json`` (start/end length of wrong and right responses per objective,
mean and std over seeds), ``curves.json`` (every per-iteration curve, every seed),
``lengths.png``, ``question_weights.png``, and the same under ``control/`` (v = 0).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from drzero.algo import (MICROBATCH_AGGREGATIONS, PRESETS, Objective, group_advantages, informative_groups, policy_loss,
                         question_weights, resolve_objective)
from drzero.config import SimulateConfig
from drzero.parsing import validate

RECHECK, STOP, REPEAT = 0, 1, 2  # loop actions (columns of the loop table)
CLEAN, SLIPPED = 0, 1  # rows of the loop table: what the loop decision can see


@dataclass(frozen=True)
class World:
    """The environment's plain numbers (everything in the config that is not training)."""

    path_tokens: tuple[int, int]
    loop_tokens: int
    max_new_tokens: int
    slip_visibility: float
    fix_prob: float

    @property
    def max_loop_decisions(self) -> int:
        """K: loop decisions fit at positions path + j*loop_tokens < max_new_tokens."""
        return math.ceil((self.max_new_tokens - min(self.path_tokens)) / self.loop_tokens)


@dataclass
class Shapes:
    """``N = B*G`` sampled responses (group-major, like the trainer's rollouts)."""

    path: torch.Tensor  # [N] long: 0 short, 1 long
    slipped: torch.Tensor  # [N] bool: the solution slipped (the token that did it is in the response)
    actions: torch.Tensor  # [N, K] long: loop decisions (RECHECK/STOP/REPEAT), -1 after the end
    states: torch.Tensor  # [N, K] long: the loop-table row each decision used (CLEAN/SLIPPED)
    loops: torch.Tensor  # [N] long: re-check loops taken
    repeated: torch.Tensor  # [N] bool: entered the repetition mode
    truncated: torch.Tensor  # [N] bool: reached max_new_tokens
    length: torch.Tensor  # [N] long: tokens
    reward: torch.Tensor  # [N] float: 1 right and not truncated, else 0


class ShapePolicy(torch.nn.Module):
    """Logits for the decisions: path ``[2]``; loop table ``[2 rows, 2]``; shared skill ``[]``.

    A loop decision is one token with three outcomes, parametrised in two nested logits
    per row: a = recheck vs end, b = repeat vs answer once ended, so
    p(recheck) = s(a), p(stop) = s(-a) s(-b), p(repeat) = s(-a) s(b)  (s = sigmoid).
    Then the share of responses that end in repetition, s(b), and the number of loops,
    geometric with mean e^a, are separate parameters: penalising repetition does not
    move the loops as a side effect of the parametrisation (a flat 3-way softmax does).
    """

    def __init__(self, loop_init: float, repeat_init: float):
        super().__init__()
        stay = loop_init / (1.0 + loop_init)  # geometric: E[loops] = stay / (1 - stay)
        recheck_logit = math.log(stay / (1 - stay)) if stay > 0 else -20.0
        start = torch.tensor([recheck_logit, math.log(repeat_init / (1 - repeat_init))])
        self.path_logits = torch.nn.Parameter(torch.zeros(2))
        self.loop_logits = torch.nn.Parameter(start.repeat(2, 1))  # [2, 2]: same start after a slip or not
        self.skill = torch.nn.Parameter(torch.zeros(()))

    def loop_log_probs(self) -> torch.Tensor:
        """log p(action | row) ``[2 rows, 3 actions]`` (RECHECK, STOP, REPEAT)."""
        a, b = self.loop_logits[:, 0], self.loop_logits[:, 1]  # [2]
        ls = torch.nn.functional.logsigmoid
        return torch.stack([ls(a), ls(-a) + ls(-b), ls(-a) + ls(b)], dim=-1)


def question_slip_logits(cfg: SimulateConfig) -> torch.Tensor:
    """d_q ``[B]``: the slip logit of each question at skill 0 (its difficulty)."""
    lo, hi = cfg.slip_rate - cfg.slip_spread, cfg.slip_rate + cfg.slip_spread
    p = torch.linspace(lo, hi, cfg.questions).clamp(0.02, 0.98) if cfg.questions > 1 else torch.tensor([cfg.slip_rate])
    return torch.logit(p)


@torch.no_grad()
def sample_shapes(policy: ShapePolicy, slip_logits: torch.Tensor, group_size: int, world: World,
                  generator: torch.Generator) -> Shapes:
    """Sample ``group_size`` responses per question (``slip_logits`` ``[B]``)."""
    n = slip_logits.numel() * group_size
    K = world.max_loop_decisions
    path = torch.multinomial(policy.path_logits.softmax(0), n, replacement=True, generator=generator)  # [N]
    p_slip = torch.sigmoid(slip_logits.repeat_interleave(group_size) - policy.skill)  # [N]
    slipped = torch.rand(n, generator=generator) < p_slip
    seen = torch.rand(n, generator=generator) < world.slip_visibility  # environment, not a policy token
    wrong = slipped.clone()
    state = (slipped & seen).long()  # [N]
    pos = torch.tensor(world.path_tokens)[path]  # [N] tokens so far
    alive = torch.ones(n, dtype=torch.bool)
    actions = torch.full((n, K), -1, dtype=torch.long)
    states = torch.zeros((n, K), dtype=torch.long)
    loops = torch.zeros(n, dtype=torch.long)
    repeated = torch.zeros(n, dtype=torch.bool)
    truncated = torch.zeros(n, dtype=torch.bool)
    length = torch.zeros(n, dtype=torch.long)
    table = policy.loop_log_probs().exp()  # [2, 3]
    for j in range(K + 1):
        out_of_room = alive & (pos >= world.max_new_tokens)  # no room left for a decision token
        truncated |= out_of_room
        alive &= ~out_of_room
        if j == K or not alive.any():
            break
        a = torch.multinomial(table[state], 1, generator=generator).squeeze(1)  # [N]
        actions[:, j] = torch.where(alive, a, -1)
        states[:, j] = state
        stop, rep, rec = alive & (a == STOP), alive & (a == REPEAT), alive & (a == RECHECK)
        length = torch.where(stop, pos + 1, length)
        repeated |= rep
        truncated |= rep
        alive &= rec
        loops += rec.long()
        pos = pos + rec.long() * world.loop_tokens
        fixed = rec & wrong & (torch.rand(n, generator=generator) < world.fix_prob)
        wrong &= ~fixed
        state = torch.where(fixed, CLEAN, state)
    truncated |= alive  # (cannot happen: K decisions always reach the budget)
    length = torch.where(truncated, world.max_new_tokens, length)
    reward = (~wrong & ~truncated).float()
    return Shapes(path, slipped, actions, states, loops, repeated, truncated, length, reward)


def token_logprobs(policy: ShapePolicy, shapes: Shapes, slip_logits: torch.Tensor, group_size: int,
                   world: World) -> tuple[torch.Tensor, torch.Tensor]:
    """(logprobs ``[N, T]``, response_mask ``[N, T]``) with T = max_new_tokens, differentiable.

    The decision tokens (path, slip, each loop decision) come first, then the forced tokens
    (log-prob 0, no gradient) up to each response's length. ``policy_loss`` sums over
    masked positions, so the order of the tokens inside a response does not matter.
    """
    n, T = shapes.length.numel(), world.max_new_tokens
    lp_path = policy.path_logits.log_softmax(0)[shapes.path]  # [N]
    slip_logit = slip_logits.repeat_interleave(group_size) - policy.skill  # [N]
    lp_slip = torch.where(shapes.slipped, torch.nn.functional.logsigmoid(slip_logit),
                          torch.nn.functional.logsigmoid(-slip_logit))  # [N]
    taken = shapes.actions >= 0  # [N, K]
    lp_loop = policy.loop_log_probs()[shapes.states, shapes.actions.clamp(min=0)] * taken  # [N, K]
    decisions = torch.cat([lp_path[:, None], lp_slip[:, None], lp_loop], dim=1)  # [N, 2+K]
    logprobs = torch.cat([decisions, decisions.new_zeros(n, T - decisions.shape[1])], dim=1)  # [N, T]
    response_mask = (torch.arange(T)[None, :] < shapes.length[:, None]).float()  # [N, T]
    return logprobs, response_mask


@torch.no_grad()
def exact_stats(policy: ShapePolicy, slip_logits: torch.Tensor, world: World) -> dict:
    """Expected statistics of the policy over every response shape, questions weighted equally.

    Returns floats: accuracy (mean reward), incorrect_length / correct_length (mean tokens of
    reward-0 / reward-1 responses), loops_incorrect / loops_correct, repeat_rate,
    truncation_rate, long_path_rate, recheck_after_slip / recheck_clean (p(recheck) in each
    row of the loop table), repeat_share_after_slip / repeat_share_clean (p(repeat | the
    response stops re-checking) in each row); and pass_rate, a list ``[B]``.
    """
    v, fix = world.slip_visibility, world.fix_prob
    loop_p = policy.loop_log_probs().exp()  # [2 rows, 3 actions]
    table = loop_p[[CLEAN, SLIPPED, CLEAN]]  # [3 states, 3 actions]
    p_slip = torch.sigmoid(slip_logits - policy.skill)  # [B]
    # mass [B, 2 paths, 3 states: clean, slipped & visible, slipped & hidden]
    start = torch.stack([1 - p_slip, p_slip * v, p_slip * (1 - v)], dim=-1)  # [B, 3]
    mass = policy.path_logits.softmax(0)[None, :, None] * start[:, None, :]  # [B, 2, 3]
    pos = torch.tensor(world.path_tokens, dtype=mass.dtype)  # [2]
    B = slip_logits.numel()
    right, len_right, len_wrong, loops_right, loops_wrong, rep, trunc = (torch.zeros(B) for _ in range(7))
    for j in range(world.max_loop_decisions + 1):
        room = (pos < world.max_new_tokens).to(mass.dtype)  # [2]
        cut = (mass.sum(-1) * (1 - room)).sum(-1)  # [B] truncated: no room left
        trunc += cut
        len_wrong += cut * world.max_new_tokens
        loops_wrong += cut * j
        mass = mass * room[None, :, None]
        stop = mass * table[:, STOP]  # [B, 2, 3]
        right += stop[..., CLEAN].sum(-1)
        len_right += (stop[..., CLEAN] * (pos + 1)).sum(-1)
        loops_right += stop[..., CLEAN].sum(-1) * j
        len_wrong += (stop[..., 1:].sum(-1) * (pos + 1)).sum(-1)
        loops_wrong += stop[..., 1:].sum((-1, -2)) * j
        r = (mass * table[:, REPEAT]).sum((-1, -2))  # [B]
        rep += r
        trunc += r
        len_wrong += r * world.max_new_tokens
        loops_wrong += r * j
        mass = mass * table[:, RECHECK]
        fixed = mass[..., 1:].sum(-1) * fix  # a completed re-check fixes the slip
        mass = torch.cat([mass[..., :1] + fixed[..., None], mass[..., 1:] * (1 - fix)], dim=-1)
        pos = pos + world.loop_tokens
    wrong = 1 - right
    return {
        "accuracy": right.mean().item(),
        "incorrect_length": (len_wrong.sum() / wrong.sum().clamp(min=1e-12)).item(),
        "correct_length": (len_right.sum() / right.sum().clamp(min=1e-12)).item(),
        "loops_incorrect": (loops_wrong.sum() / wrong.sum().clamp(min=1e-12)).item(),
        "loops_correct": (loops_right.sum() / right.sum().clamp(min=1e-12)).item(),
        "repeat_rate": rep.mean().item(),
        "truncation_rate": trunc.mean().item(),
        "long_path_rate": policy.path_logits.softmax(0)[1].item(),
        "recheck_after_slip": loop_p[SLIPPED, RECHECK].item(),
        "recheck_clean": loop_p[CLEAN, RECHECK].item(),
        "repeat_share_after_slip": torch.sigmoid(policy.loop_logits[SLIPPED, 1]).item(),
        "repeat_share_clean": torch.sigmoid(policy.loop_logits[CLEAN, 1]).item(),
        "pass_rate": right.tolist(),
    }


CURVE_KEYS = ("incorrect_length", "correct_length", "accuracy", "loops_incorrect", "loops_correct",
              "repeat_rate", "truncation_rate", "long_path_rate", "recheck_after_slip", "recheck_clean",
              "repeat_share_after_slip", "repeat_share_clean")


def world_of(cfg: SimulateConfig) -> World:
    return World(tuple(cfg.path_tokens), cfg.loop_tokens, cfg.max_new_tokens, cfg.slip_visibility, cfg.fix_prob)


def step_loss(objective: Objective, logprobs: torch.Tensor, advantages: torch.Tensor, response_mask: torch.Tensor,
              micro_batch_size: int) -> torch.Tensor:
    """The on-policy loss of one optimizer step. For an aggregation whose normaliser is the
    micro-batch's own (``MICROBATCH_AGGREGATIONS``) the step is cut as the trainer cuts it:
    responses sorted by length, ``micro_batch_size`` at a time, each micro-batch padded to
    its own longest response; for every other aggregation one call (the same gradient)."""
    if objective.aggregation not in MICROBATCH_AGGREGATIONS:
        return policy_loss(objective, logprobs, logprobs.detach(), advantages, response_mask)[0]
    lengths = response_mask.sum(dim=1)  # [N]
    order = torch.argsort(lengths, stable=True)
    total = logprobs.new_zeros(())
    for idx in order.split(micro_batch_size):
        width = int(lengths[idx].max().item())
        lp = logprobs[idx, :width]
        total = total + policy_loss(objective, lp, lp.detach(), advantages[idx], response_mask[idx, :width],
                                    num_responses=float(len(lengths)))[0]
    return total


WEIGHT_PARTS = ("length", "std", "ratio")


def token_weight_parts(objective: Objective, logprobs: torch.Tensor, grad: torch.Tensor, rewards: torch.Tensor,
                       response_mask: torch.Tensor, group_size: int) -> dict[str, float]:
    """Where each token's weight comes from, on one step: the variance over tokens of the log of
    each factor of |d loss / d logp_it| = (1/N) |R_i - b_i| * length_it * std_q * ratio_it.

    |R_i - b_i| is the signal (left out); std_q = ``question_weights``; ratio_it the ratio's
    factor in the gradient (r, s_i or clip(r) for CISPO: 1 on-policy, as here); length_it is
    the rest, measured from the gradient itself (so a micro-batch normaliser is included).
    Tokens of informative groups only. Returns {"length", "std", "ratio"} variances."""
    G = group_size
    keep = informative_groups(rewards, G)  # [N]
    centred = group_advantages(rewards, G, scale="none", baseline=objective.baseline)  # [N] R - b
    keep &= centred.abs() > 0
    if not keep.any():
        return {k: 0.0 for k in WEIGHT_PARTS}
    q = question_weights(rewards, G, scale=objective.advantage_scale).repeat_interleave(G)  # [N]
    ratio = torch.ones_like(grad)  # on-policy: r = s_i = clip(r) = 1
    n = float(rewards.numel())
    mask = response_mask.bool() & keep[:, None]  # [N, T]
    length = grad.abs() * n / (centred.abs()[:, None] * q[:, None] * ratio)  # [N, T]
    logs = {"length": length[mask].log(), "std": q[:, None].expand_as(grad)[mask].log(),
            "ratio": ratio[mask].log()}
    return {k: v.var(unbiased=False).item() for k, v in logs.items()}


def run_seed(cfg: SimulateConfig, objective_name: str, seed: int, decompose: bool = False) -> dict:
    """Train one policy; returns every curve (exact, before each update and after the last)
    and the question-weight points [question, exact pass rate, weight] of informative groups;
    with ``decompose``, also "weight_parts": ``token_weight_parts`` averaged over every 10th step."""
    world = world_of(cfg)
    objective = resolve_objective(objective_name, max_new_tokens=cfg.max_new_tokens)
    slip_logits = question_slip_logits(cfg)  # [B]
    G = cfg.group_size
    policy = ShapePolicy(cfg.loop_init, cfg.repeat_init)
    policy.skill.requires_grad_(cfg.train_skill)
    optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(seed)
    curves = {"iteration": [], **{k: [] for k in CURVE_KEYS}}
    sampled = {"sampled_incorrect_length": [], "sampled_correct_length": [], "sampled_reward": []}
    weight_points = []
    parts = {k: [] for k in WEIGHT_PARTS}
    for it in range(cfg.iterations + 1):
        if it % cfg.curve_every == 0 or it == cfg.iterations:
            stats = exact_stats(policy, slip_logits, world)
            curves["iteration"].append(it)
            for k in CURVE_KEYS:
                curves[k].append(stats[k])
        if it == cfg.iterations:
            break
        shapes = sample_shapes(policy, slip_logits, G, world, generator)
        rewards = shapes.reward  # [N]
        advantages = group_advantages(rewards, G, scale=objective.advantage_scale, baseline=objective.baseline)
        logprobs, response_mask = token_logprobs(policy, shapes, slip_logits, G, world)
        loss = step_loss(objective, logprobs, advantages, response_mask, cfg.micro_batch_size)
        if decompose and it % 10 == 0:  # the gradient per token, before the parameters see it
            (grad,) = torch.autograd.grad(loss, logprobs, retain_graph=True)
            for k, v in token_weight_parts(objective, logprobs, grad, rewards, response_mask, G).items():
                parts[k].append(v)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        right = rewards > 0
        lengths = shapes.length.float()
        sampled["sampled_incorrect_length"].append(lengths[~right].mean().item() if (~right).any() else float("nan"))
        sampled["sampled_correct_length"].append(lengths[right].mean().item() if right.any() else float("nan"))
        sampled["sampled_reward"].append(rewards.mean().item())
        if it % (10 * cfg.curve_every) == 0:
            weights = question_weights(rewards, G, scale=objective.advantage_scale)  # [B]
            informative = rewards.view(-1, G).std(dim=1) > 0  # all-equal groups carry no gradient
            weight_points += [[q, p, w] for q, (p, w, ok) in enumerate(zip(stats["pass_rate"], weights.tolist(),
                                                                            informative.tolist())) if ok]
    out = {**curves, **sampled, "question_weights": weight_points}
    if decompose:
        out["weight_parts"] = {k: sum(v) / max(len(v), 1) for k, v in parts.items()}
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(values) > 1 else 0.0)


def _start_end(per_seed: list[list[float]]) -> dict:
    """{"start", "end", "end_std"} of a curve given per seed: means over seeds, and the std of the end."""
    start, _ = _mean_std([c[0] for c in per_seed])
    end, end_std = _mean_std([c[-1] for c in per_seed])
    return {"start": start, "end": end, "end_std": end_std}


def _train_all(cfg: SimulateConfig) -> dict:
    """Every objective over every seed: {"summary", "curves", "config"}."""
    names = [o.strip() for o in cfg.objectives.split(",") if o.strip()]
    curves = {}
    for name in names:
        runs = [run_seed(cfg, name, seed) for seed in range(cfg.seeds)]
        curves[name] = {k: [r[k] for r in runs] for k in runs[0] if k not in ("question_weights", "iteration")}
        curves[name]["iteration"] = runs[0]["iteration"]
        curves[name]["question_weights"] = [pt for r in runs for pt in r["question_weights"]]
    summary = {name: {key: _start_end(curves[name][key]) for key in ("incorrect_length", "correct_length")}
               for name in names}
    return {"summary": summary, "curves": curves, "config": asdict(cfg)}


def run_simulate(cfg: SimulateConfig) -> dict:
    """Train every objective over every seed, then the control (slip_visibility=0) when
    cfg.control. Returns {"summary": {objective: {"incorrect_length": {"start", "end",
    "end_std"}, "correct_length": {...}}}, "curves": {objective: {key: [seeds][points],
    "iteration": [points], "question_weights": [[question, pass_rate, weight], ...]}},
    "config": {...}, "seconds": float, "control": the same three keys, or absent}.
    With cfg.output, writes summary.json, curves.json, lengths.png, question_weights.png
    there and the control's under control/."""
    validate(cfg)
    t0 = time.perf_counter()
    result = _train_all(cfg)
    control = None
    if cfg.control and cfg.slip_visibility > 0:
        control = result["control"] = _train_all(replace(cfg, slip_visibility=0.0, control=False))
    result["seconds"] = time.perf_counter() - t0
    if cfg.output:
        out = Path(cfg.output)
        write_outputs(result, out, control)
        if control:
            write_outputs(control, out / "control")
    return result


def _rounded(x):
    """Floats to 6 significant digits (curves.json stays small)."""
    if isinstance(x, float):
        return float(f"{x:.6g}")
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return x


def write_outputs(result: dict, out: Path, control: dict | None = None) -> None:
    """summary.json, curves.json (with the config) and the two plots."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result["summary"], indent=2) + "\n")
    (out / "curves.json").write_text(json.dumps({"config": result["config"], "curves": _rounded(result["curves"])}) + "\n")
    plot_lengths(result, out / "lengths.png", control)
    plot_question_weights(result, out / "question_weights.png")


def plot_lengths(result: dict, path: Path, control: dict | None = None) -> None:
    """Length of right and wrong responses vs iteration, one panel per objective (mean +- std
    over seeds); the control's means dashed when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, cfg = result["curves"], result["config"]
    fig, axes = plt.subplots(1, len(curves), figsize=(3.4 * len(curves), 3.1), sharey=True, squeeze=False)
    for ax, (name, c) in zip(axes[0], curves.items()):
        for key, color, label in (("incorrect_length", "tab:red", "reward 0"), ("correct_length", "tab:blue", "reward 1")):
            t = torch.tensor(c[key])  # [seeds, points]
            mean, std = t.mean(0), (t.std(0) if t.shape[0] > 1 else torch.zeros(t.shape[1]))
            ax.plot(c["iteration"], mean, color=color, label=label)
            ax.fill_between(c["iteration"], mean - std, mean + std, color=color, alpha=0.25, linewidth=0)
            if control and name in control["curves"]:
                cc = control["curves"][name]
                ax.plot(cc["iteration"], torch.tensor(cc[key]).mean(0), color=color, ls="--", lw=1,
                        label=f"{label}, control" if ax is axes[0][0] else None)
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean response length (tokens)")
    axes[0][0].legend(loc="upper left", fontsize=7)
    fig.suptitle(f"slip visibility {cfg['slip_visibility']:g}" + (" (dashed: control, 0)" if control else "")
                 + f", B={cfg['questions']}, G={cfg['group_size']}, Adam lr={cfg['lr']:g}, "
                 f"{cfg['seeds']} seeds (band: +-1 std)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def expected_question_weight(pass_rate: float, group_size: int, scale: str) -> float:
    """E[question_weights | the group is informative] for a question of this pass rate:
    k ~ Binomial(G, p) right answers, groups with k = 0 or G (zero advantages) left out."""
    G = group_size
    num = den = 0.0
    for k in range(1, G):
        pk = math.comb(G, k) * pass_rate**k * (1 - pass_rate) ** (G - k)
        rewards = torch.tensor([1.0] * k + [0.0] * (G - k))
        num += pk * question_weights(rewards, G, scale=scale).item()
        den += pk
    return num / den if den > 0 else float("nan")


def plot_question_weights(result: dict, path: Path) -> None:
    """Per-question weight vs pass rate: for k of G right, expected for a pass rate, and the
    runs' mean per question."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    G = result["config"]["group_size"]
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    colors = {"group": "tab:red", "batch": "tab:green", "none": "tab:blue"}
    ps = [i / 100 for i in range(2, 99)]
    for scale in ("group", "none"):
        ks = range(1, G)
        exact = [question_weights(torch.tensor([1.0] * k + [0.0] * (G - k)), G, scale=scale).item() for k in ks]
        ax.plot([k / G for k in ks], exact, "o", color=colors[scale], ms=4, label=f"scale={scale}: k of {G} right")
        ax.plot(ps, [expected_question_weight(p, G, scale) for p in ps], "-", color=colors[scale], lw=1,
                label=f"scale={scale}: expected at pass rate")
    shown = set()
    for name, c in result["curves"].items():
        scale = PRESETS[name].advantage_scale
        pts = torch.tensor(c["question_weights"])  # [points, 3]: question, pass rate, weight
        if not pts.numel() or scale in shown:
            continue
        shown.add(scale)
        qs = pts[:, 0].long()
        for q in qs.unique():
            sel = pts[qs == q]
            ax.plot(sel[:, 1].mean(), sel[:, 2].mean(), "x", color=colors[scale], ms=5,
                    label=f"{name} runs: mean per question" if q == qs.min() else None)
    ax.set_xlabel("question pass rate")
    ax.set_ylabel("weight on R - mean(R)")
    ax.set_title(f"question-level difficulty bias (G={G}; all-equal groups left out)", fontsize=8)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def question_weight_spread(cfg: SimulateConfig, scale: str) -> float:
    """max / min over the questions of E[per-question weight | informative group], at each
    question's starting pass rate (exact, ``expected_question_weight``): 1 = no difficulty bias."""
    pass_rates = (1 - torch.sigmoid(question_slip_logits(cfg))).tolist()  # skill 0 at the start
    w = [expected_question_weight(p, cfg.group_size, scale) for p in pass_rates]
    return max(w) / min(w)


def bias_table(cfg: SimulateConfig) -> dict:
    """``drzero simulate --algo all``: every preset over ``cfg.seeds`` seeds, the exact length
    statistics only at the start and the end (the same training runs as ``run_simulate``'s:
    the exact statistics draw no random numbers), no control. Returns {"rows": {preset:
    {"incorrect_length", "correct_length" (as in the summary), "question_weight_spread",
    "weight_parts": {"length", "std", "ratio"} variances, mean over seeds}}, "seconds"}."""
    validate(cfg)
    t0 = time.perf_counter()
    fast = replace(cfg, curve_every=cfg.iterations, control=False)
    rows = {}
    for name in PRESETS:
        runs = [run_seed(fast, name, seed, decompose=True) for seed in range(cfg.seeds)]
        row = {key: _start_end([r[key] for r in runs]) for key in ("incorrect_length", "correct_length")}
        row["question_weight_spread"] = question_weight_spread(cfg, PRESETS[name].advantage_scale)
        row["weight_parts"] = {k: sum(r["weight_parts"][k] for r in runs) / len(runs) for k in WEIGHT_PARTS}
        rows[name] = row
    return {"rows": rows, "seconds": time.perf_counter() - t0, "config": asdict(cfg)}


def format_bias_table(table: dict) -> str:
    """One line per preset: length drift (start -> end, +- std over seeds) of incorrect and
    correct responses, the question-weight spread, and the shares of the per-token weight's
    log-variance that come from length, std and ratio ("-": every token weighs the same)."""
    lines = [("bias table (docs/objectives.md): mean length start -> end (+- std over seeds); q-spread = max/min "
              "expected per-question weight; token weight: share of its log-variance from length / std / ratio"),
             f"  {'preset':<27} {'incorrect':>21} {'correct':>20} {'q-spread':>8}  {'length':>6} {'std':>5} {'ratio':>5}"]
    for name, row in table["rows"].items():
        cells = [f"{e['start']:.1f} -> {e['end']:.1f} +- {e['end_std']:.1f}"
                 for e in (row["incorrect_length"], row["correct_length"])]
        parts = row["weight_parts"]
        total = sum(parts.values())
        shares = [f"{100 * parts[k] / total:.0f}%" if total > 1e-9 else "-" for k in WEIGHT_PARTS]
        lines.append(f"  {name:<27} {cells[0]:>21} {cells[1]:>20} {row['question_weight_spread']:>7.2f}x  "
                     f"{shares[0]:>6} {shares[1]:>5} {shares[2]:>5}")
    return "\n".join(lines)


def simulate_command(cfg: SimulateConfig) -> dict:
    """``drzero simulate``: run, print the summary tables, write the files (``--algo all``:
    the bias table, and table.json under --output)."""
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    if cfg.algo == "all":
        table = bias_table(cfg)
        print(format_bias_table(table))
        if cfg.output:
            Path(cfg.output).mkdir(parents=True, exist_ok=True)
            (Path(cfg.output) / "table.json").write_text(json.dumps(_rounded(table), indent=2) + "\n")
        print(f"{table['seconds']:.1f}s" + (f"; wrote {cfg.output}/table.json" if cfg.output else ""))
        return table
    result = run_simulate(cfg)
    print(format_summary(result["summary"], f"slip_visibility={cfg.slip_visibility:g}"))
    if "control" in result:
        print(format_summary(result["control"]["summary"], "control, slip_visibility=0"))
    print(f"{result['seconds']:.1f}s" + (f"; wrote {cfg.output}" if cfg.output else ""))
    return result


def format_summary(summary: dict, title: str) -> str:
    """The summary as a small table: mean length start -> end +- std over seeds."""
    lines = [f"{title}: mean length, start -> end (+- std over seeds)",
             f"  {'objective':<10} {'reward 0 (incorrect)':>24} {'reward 1 (correct)':>24}"]
    for name, entry in summary.items():
        cells = [f"{e['start']:.1f} -> {e['end']:.1f} +- {e['end_std']:.1f}" for e in (entry["incorrect_length"], entry["correct_length"])]
        lines.append(f"  {name:<10} {cells[0]:>24} {cells[1]:>24}")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m drzero.simulate ... == drzero simulate ...
    from drzero.cli import main

    raise SystemExit(main(["simulate", *sys.argv[1:]]))
