"""drzero.algo: hand-computed values, autograd weights, split invariance, presets."""

import math

import pytest
import torch

from drzero.algo import (
    MICROBATCH_AGGREGATIONS,
    PRESETS,
    Objective,
    bias_weights,
    describe_objective,
    group_advantages,
    informative_groups,
    kl_reward_penalty,
    policy_loss,
    question_weights,
    resolve_objective,
    tis_weights,
)


@pytest.fixture
def float64():
    """Float64 for the tests that compare gradients to 1e-12; the previous default dtype is
    restored afterwards, so every other test sees production float32."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_group_advantages_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # B=2, G=4
    none = group_advantages(r, 4, scale="none")
    assert torch.allclose(none, torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]))
    grp = group_advantages(r, 4, scale="group")
    std = math.sqrt((0.75**2 + 3 * 0.25**2) / 3)  # unbiased std of [1,0,0,0]
    assert torch.allclose(grp[:4], torch.tensor([0.75, -0.25, -0.25, -0.25]) / (std + 1e-6))
    assert torch.equal(grp[4:], torch.zeros(4))  # equal rewards: exactly zero, no NaN
    loo = group_advantages(r, 4, scale="none", baseline="loo")
    assert torch.allclose(loo[:4], torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3]))
    # Dr. GRPO's advantage is RLOO's times (G-1)/G (paper Sec. 3.2)
    assert torch.allclose(none, loo * 3 / 4)
    batch = group_advantages(r, 4, scale="batch")
    assert torch.allclose(batch, none / (r.std() + 1e-6))


def test_all_equal_rewards_never_nan():
    for scale in ("group", "batch", "none"):
        for baseline in ("mean", "loo"):
            a = group_advantages(torch.ones(8), 4, scale=scale, baseline=baseline)
            assert torch.equal(a, torch.zeros(8))


def test_difficulty_weights_follow_std():
    """GRPO weights a group by 1/std: p=1/8 or 7/8 correct gets more weight than p=1/2."""
    G = 8
    for k in range(1, G):
        r = torch.tensor([1.0] * k + [0.0] * (G - k))
        a = group_advantages(r, G, scale="group", eps=0.0)
        std = math.sqrt(k * (G - k) / (G * (G - 1)))
        assert torch.allclose(a, (r - k / G) / std)
    w = lambda k: 1 / math.sqrt(k * (G - k) / (G * (G - 1)))  # noqa: E731
    assert w(1) > w(4) and w(7) > w(4)


def _batch(N=6, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(N, T, generator=g) * 2
    old = logp + (torch.rand(N, T, generator=g) - 0.5) * 0.6
    adv = torch.randn(N, generator=g)
    lengths = torch.randint(1, T + 1, (N,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    return logp, old, adv, mask


def test_policy_loss_hand_computed_each_aggregation():
    logp = torch.log(torch.tensor([[0.5, 0.5, 1.0], [0.5, 1.0, 1.0]]))
    old = logp.clone()
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    # on-policy: ratio 1, per token loss = -A
    grpo, _ = policy_loss(Objective(aggregation="seq_mean_token_mean"), logp, old, adv, mask)
    assert grpo.item() == pytest.approx(((-1 * 2 / 2) + (2 * 3 / 3)) / 2)
    dapo, _ = policy_loss(Objective(aggregation="token_mean"), logp, old, adv, mask)
    assert dapo.item() == pytest.approx((-1 * 2 + 2 * 3) / 5)
    dr, _ = policy_loss(Objective(constant_normalizer=10), logp, old, adv, mask)
    assert dr.item() == pytest.approx((-2 / 10 + 6 / 10) / 2)


def test_clipping_hand_computed():
    logp = torch.log(torch.tensor([[1.5], [0.5], [1.5], [0.5]]))
    old = torch.zeros(4, 1)
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])
    mask = torch.ones(4, 1)
    loss, m = policy_loss(Objective(aggregation="token_mean", clip_eps_low=0.2, clip_eps_high=0.3), logp, old, adv, mask)
    # rows: A>0 r=1.5 -> clip at 1.3: -1.3 ; A<0 r=.5 -> max(.5, .8) = .8 ; A<0 r=1.5 -> 1.5 ; A>0 r=.5 -> -.5
    assert loss.item() == pytest.approx((-1.3 + 0.8 + 1.5 - 0.5) / 4)
    assert m["clip_frac_high"] == pytest.approx(0.25) and m["clip_frac_low"] == pytest.approx(0.25)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("preset", list(PRESETS))
def test_gradient_equals_bias_weights_on_policy(preset):
    obj = resolve_objective(preset, max_new_tokens=7)
    logp, _, adv, mask = _batch()
    width = int(mask.sum(1).max())  # padded to the longest response (what bias_weights assumes for padded_width)
    logp, mask = logp[:, :width].contiguous(), mask[:, :width]
    logp.requires_grad_(True)
    loss, metrics = policy_loss(obj, logp, logp.detach(), adv, mask)
    assert metrics["ratio_mean"] == pytest.approx(1.0) and metrics["clip_frac_low"] == metrics["clip_frac_high"] == 0
    loss.backward()
    N = logp.shape[0]
    w = bias_weights(adv, mask.sum(1), aggregation=obj.aggregation, constant_normalizer=obj.constant_normalizer)
    expected = -(w / N)[:, None] * mask
    assert torch.allclose(logp.grad, expected, atol=1e-12)


def _grad(preset, logp, old, adv, mask, splits, accumulate=True):
    obj = resolve_objective(preset, max_new_tokens=7)
    p = logp.clone().requires_grad_(True)
    n_resp, n_tok = mask.shape[0], mask.sum().item()
    total = 0.0
    for idx in torch.arange(mask.shape[0]).chunk(splits):
        loss, _ = policy_loss(obj, p[idx], old[idx], adv[idx], mask[idx], num_responses=n_resp, num_tokens=n_tok)
        loss.backward()
        total += loss.item()
    return total, p.grad


INVARIANT = [p for p in PRESETS if PRESETS[p].aggregation not in MICROBATCH_AGGREGATIONS]
DEPENDENT = [p for p in PRESETS if PRESETS[p].aggregation in MICROBATCH_AGGREGATIONS]


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("preset", INVARIANT)
def test_split_invariance(preset):
    logp, old, adv, mask = _batch(N=8, seed=3)
    ref_loss, ref_grad = _grad(preset, logp, old, adv, mask, 1)
    for splits in (2, 4, 8):
        loss, grad = _grad(preset, logp, old, adv, mask, splits)
        assert loss == pytest.approx(ref_loss, abs=1e-12)
        assert torch.allclose(grad, ref_grad, atol=1e-12)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("preset", DEPENDENT)
def test_microbatch_normalisers_do_depend_on_the_split(preset):
    """The framework presets with a micro-batch normaliser: the step's gradient changes with
    the micro-batch size (here on a batch padded to T whatever the split, as verl pads to its
    response_length, and on micro-batches padded to their own longest response, as drzero's
    trainer does), and it equals the framework's formula per split."""
    assert preset in ("dr_grpo_padded_width", "grpo_microbatch_token_mean")
    logp, old, adv, mask = _batch(N=8, seed=3)
    _, whole = _grad(preset, logp, old, adv, mask, 1)
    _, halves = _grad(preset, logp, old, adv, mask, 2)
    assert not torch.allclose(whole, halves, atol=1e-6)
    obj = resolve_objective(preset)
    for splits in (1, 2, 4):  # the framework's formula: per micro-batch normaliser, x M / N_step
        expected = torch.zeros_like(logp)
        for idx in torch.arange(8).chunk(splits):
            m = mask[idx]
            own = m.sum() if obj.aggregation == "microbatch_token_mean" else m.shape[1]
            expected[idx] = -(adv[idx][:, None] * m) / own * (len(idx) / 8)  # on-policy: d loss / d logp = -A / own * M/N
        p = logp.clone().requires_grad_(True)
        for idx in torch.arange(8).chunk(splits):
            loss, _ = policy_loss(obj, p[idx], p[idx].detach(), adv[idx], mask[idx], num_responses=8)
            loss.backward()
        assert torch.allclose(p.grad, expected, atol=1e-12)
    # drzero's trainer pads each micro-batch to its own longest response: the width itself moves
    if obj.aggregation == "microbatch_padded_width":
        lengths = mask.sum(1)
        order = torch.argsort(lengths)
        p = logp.clone().requires_grad_(True)
        for idx in order.chunk(2):
            width = int(lengths[idx].max())
            loss, _ = policy_loss(obj, p[idx][:, :width], p[idx][:, :width].detach(), adv[idx], mask[idx][:, :width],
                                  num_responses=8)
            loss.backward()
        short, long_ = order.chunk(2)
        w_short, w_long = int(lengths[short].max()), int(lengths[long_].max())
        assert w_short < w_long
        assert torch.allclose(p.grad[short], -(adv[short][:, None] * mask[short]) / w_short * 0.5, atol=1e-12)


def test_equal_reward_groups_give_zero_gradient():
    logp, old, _, mask = _batch(N=8)
    adv = group_advantages(torch.tensor([1.0] * 4 + [0.0] * 4), 4, scale="group")
    for preset in PRESETS:
        obj = resolve_objective(preset, max_new_tokens=7)
        p = logp.clone().requires_grad_(True)
        loss, _ = policy_loss(obj, p, old, adv, mask)
        loss.backward()
        assert torch.count_nonzero(p.grad) == 0


def test_kl_term_k3():
    logp = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    kl_obj = Objective(aggregation="token_mean", beta=0.1)
    loss, m = policy_loss(kl_obj, logp, logp, torch.zeros(1), torch.ones(1, 1), ref_logprobs=ref)
    k3 = 0.5 - math.log(0.5) - 1
    assert m["kl"] == pytest.approx(k3) and loss.item() == pytest.approx(0.1 * k3)
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_loss(kl_obj, logp, logp, torch.zeros(1), torch.ones(1, 1))


def test_length_bias_direction():
    """GRPO punishes a long wrong answer less per token than a short one; Dr. GRPO does not."""
    adv = torch.tensor([-1.0, -1.0])
    lengths = torch.tensor([10, 100])
    g = bias_weights(adv, lengths, aggregation="seq_mean_token_mean")
    d = bias_weights(adv, lengths, aggregation="seq_mean_token_sum_norm", constant_normalizer=100)
    assert abs(g[1]) < abs(g[0])
    assert d[0] == d[1]


def test_presets_and_overrides_and_description():
    dr = resolve_objective("dr_grpo", max_new_tokens=3000)
    assert (dr.advantage_scale, dr.aggregation, dr.constant_normalizer) == ("none", "seq_mean_token_sum_norm", 3000.0)
    g = resolve_objective("grpo", advantage_scale="none")
    assert g.aggregation == "seq_mean_token_mean" and g.advantage_scale == "none"
    line = describe_objective("dr_grpo", dr)
    assert "3000" in line and "std" not in line and "\n" not in line
    assert "std_group" in describe_objective("grpo", resolve_objective("grpo"))
    with pytest.raises(ValueError, match="unknown algorithm"):
        resolve_objective("ppo2")
    with pytest.raises(ValueError):
        resolve_objective("grpo", aggregation="bogus")


def test_tis_weights_truncate_the_ratio_and_carry_no_gradient():
    old = torch.tensor([[0.0, -1.0, -2.0]], requires_grad=True)
    rollout = torch.tensor([[0.0, -2.0, -1.0]])
    w = tis_weights(old, rollout, cap=2.0)
    assert torch.allclose(w, torch.tensor([[1.0, 2.0, math.exp(-1.0)]]))  # e^1 = 2.72 is truncated to 2
    assert not w.requires_grad
    with pytest.raises(ValueError):
        tis_weights(old, rollout, cap=0.0)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("preset", list(PRESETS))
def test_is_weights_scale_each_tokens_gradient(preset):
    """On-policy, d loss / d logp_it = -w_it * bias_weight_i / N: the weight multiplies each
    token's gradient and nothing else; all-ones weights change nothing."""
    obj = resolve_objective(preset, max_new_tokens=7)
    logp, _, adv, mask = _batch()
    w = torch.rand_like(logp) * 2
    grads, losses = [], []
    for weights in (None, torch.ones_like(logp), w):
        p = logp.clone().requires_grad_(True)
        loss, _ = policy_loss(obj, p, p.detach(), adv, mask, is_weights=weights)
        loss.backward()
        grads.append(p.grad)
        losses.append(loss.item())
    assert losses[0] == losses[1] and torch.equal(grads[0], grads[1])
    assert torch.allclose(grads[2], grads[0] * w, atol=1e-12)


def test_question_weights_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # B=3, G=4
    std_1 = math.sqrt((0.75**2 + 3 * 0.25**2) / 3)  # unbiased std of [1,0,0,0] = 0.5
    std_2 = math.sqrt(4 * 0.25 / 3)  # [1,1,0,0] = 0.5774
    w = question_weights(r, 4, scale="group")
    assert torch.allclose(w, torch.tensor([1 / (std_1 + 1e-6), 1 / (std_2 + 1e-6), 1e6]))
    assert w[0] > w[1]  # 1 right of 4 weighs more than 2 of 4: the difficulty bias
    std_b = math.sqrt(7 * 5 / (12 * 11))  # 7 of 12 right: sqrt(N p (1-p) / (N-1))
    assert torch.allclose(question_weights(r, 4, scale="batch"), torch.full((3,), 1 / (std_b + 1e-6)))
    assert torch.equal(question_weights(r, 4, scale="none"), torch.ones(3))
    assert torch.allclose(question_weights(r, 4, scale="group", eps=0.0)[:2], torch.tensor([2.0, 1 / std_2]))
    with pytest.raises(ValueError, match="scale"):
        question_weights(r, 4, scale="std")
    with pytest.raises(ValueError, match="group_size"):
        question_weights(r, 5, scale="group")


@pytest.mark.parametrize("baseline", ["mean", "loo"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_question_weights_are_the_advantage_scale(scale, baseline):
    """group_advantages(scale=s) == question_weights(s)[group] * group_advantages(scale="none")."""
    G = 4
    r = torch.bernoulli(torch.full((6 * G,), 0.4), generator=torch.Generator().manual_seed(1))
    r[:G] = 1.0  # one all-equal group
    w = question_weights(r, G, scale=scale)  # [B]
    scaled = group_advantages(r, G, scale=scale, baseline=baseline)
    unscaled = group_advantages(r, G, scale="none", baseline=baseline)
    assert torch.allclose(scaled, w.repeat_interleave(G) * unscaled)


def test_default_dtype_is_float32_outside_the_fixture():
    """The float64 fixture does not leak: this module's other tests (and later modules) run in float32."""
    assert torch.get_default_dtype() == torch.float32


# ----------------------------------------------------------------------------- GSPO, CISPO, KL estimators (issue 32)
# Each published formula is written again below, separately from drzero.algo: a loop over
# responses and tokens in float64, differentiated by autograd, and compared with
# policy_loss for the loss and the gradient, off-policy (ratios away from 1, some clipped).


def _off_policy_batch(N=6, T=7, seed=0, spread=0.6):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(N, T, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    old = logp.detach() + (torch.rand(N, T, generator=g, dtype=torch.float64) - 0.5) * spread
    adv = torch.randn(N, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (N,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    return logp, old, adv, mask


def _gspo_reference(logp, old, adv, mask, eps_low, eps_high, normaliser=None):
    """GSPO, Zheng et al. 2025 eq. 5-7: J = (1/G) sum_i min(s_i A_i, clip(s_i, 1-e_l, 1+e_h) A_i),
    s_i = (pi(o_i)/pi_old(o_i))^(1/|o_i|). ``normaliser`` C: (1/N) sum_i (|o_i|/C) * the same
    (the sequence ratio under Dr. GRPO's constant: every token carries the response's term)."""
    total = 0.0
    for i in range(logp.shape[0]):
        toks = [t for t in range(logp.shape[1]) if mask[i, t] > 0]
        log_s = sum(logp[i, t] - old[i, t] for t in toks) / len(toks)
        s = torch.exp(log_s)
        term = torch.min(s * adv[i], torch.clamp(s, 1 - eps_low, 1 + eps_high) * adv[i])
        total = total + (term if normaliser is None else term * len(toks) / normaliser)
    return -total / logp.shape[0]


def _cispo_reference(logp, old, adv, mask, eps_low, eps_high):
    """CISPO, MiniMax-M1 (Chen et al. 2025) eq. 4: J = 1/sum_i|o_i| sum_i sum_t
    sg(clip(r_it, 1-e_l, 1+e_h)) A_i log pi(o_it)."""
    total, count = 0.0, 0
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[i, t] > 0:
                r = math.exp((logp[i, t] - old[i, t]).item())
                w = min(max(r, 1 - eps_low), 1 + eps_high)  # a plain float: no gradient through it
                total = total + w * adv[i] * logp[i, t]
                count += 1
    return -total / count


def _kl_reference(logp, ref, old, mask, estimator):
    """Schulman's estimators of KL(pi || pi_ref) per token, token-mean over the batch:
    k2 = (log pi - log ref)^2 / 2; k3 = ref/pi - log(ref/pi) - 1; k3_ratio = (pi/pi_old) k3
    (DeepSeek-V3.2's unbiased KL under samples from pi_old)."""
    total, count = 0.0, 0
    for i in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            if mask[i, t] > 0:
                d = logp[i, t] - ref[i, t]
                if estimator == "k2":
                    v = 0.5 * d * d
                else:
                    v = torch.exp(-d) + d - 1
                    if estimator == "k3_ratio":
                        v = torch.exp(logp[i, t] - old[i, t]) * v
                total = total + v
                count += 1
    return total / count


def _loss_and_grad(fn, logp):
    p = logp.detach().clone().requires_grad_(True)
    loss = fn(p)
    (grad,) = torch.autograd.grad(loss, p)
    return loss.item(), grad


def _assert_same_loss_and_grad(ours_fn, ref_fn, logp):
    """drzero's loss and its gradient in ``logp`` equal the float64 reference's."""
    ours, ref = _loss_and_grad(ours_fn, logp), _loss_and_grad(ref_fn, logp)
    assert ours[0] == pytest.approx(ref[0], abs=1e-12, rel=1e-12)
    assert torch.allclose(ours[1], ref[1], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("eps", [(0.2, 0.2), (3e-4, 4e-4), (0.05, 0.1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gspo_matches_the_published_formula(eps, seed):
    logp, old, adv, mask = _off_policy_batch(seed=seed, spread=0.3)
    obj = resolve_objective("gspo", clip_eps_low=eps[0], clip_eps_high=eps[1])
    _assert_same_loss_and_grad(lambda p: policy_loss(obj, p, old, adv, mask)[0],
                               lambda p: _gspo_reference(p, old, adv, mask, *eps), logp)
    # the sequence ratio under Dr. GRPO's constant C is one published term per token, / C
    obj_c = resolve_objective("gspo", aggregation="seq_mean_token_sum_norm", constant_normalizer=9.0,
                              clip_eps_low=eps[0], clip_eps_high=eps[1])
    _assert_same_loss_and_grad(lambda p: policy_loss(obj_c, p, old, adv, mask)[0],
                               lambda p: _gspo_reference(p, old, adv, mask, *eps, normaliser=9.0), logp)


def test_gspo_clips_whole_responses():
    """One clip decision per response: every token of a clipped response has zero gradient."""
    logp, old, adv, mask = _off_policy_batch(N=12, seed=4, spread=0.6)
    obj = resolve_objective("gspo")  # 3e-4 / 4e-4: almost every response is clipped one way or the other
    _, grad = _loss_and_grad(lambda p: policy_loss(obj, p, old, adv, mask)[0], logp)
    s = torch.exp(((logp.detach() - old) * mask).sum(1) / mask.sum(1))
    clipped = ((s > 1 + 4e-4) & (adv > 0)) | ((s < 1 - 3e-4) & (adv < 0))
    assert clipped.any() and (~clipped).any()
    assert torch.count_nonzero(grad[clipped]) == 0
    assert (grad[~clipped].abs().sum(1) > 0).all()


@pytest.mark.parametrize("eps", [(1.0, 4.0), (0.2, 0.28), (0.1, 0.05)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cispo_matches_the_published_formula(eps, seed):
    logp, old, adv, mask = _off_policy_batch(seed=seed, spread=1.5)
    obj = resolve_objective("cispo", clip_eps_low=eps[0], clip_eps_high=eps[1])
    _assert_same_loss_and_grad(lambda p: policy_loss(obj, p, old, adv, mask)[0],
                               lambda p: _cispo_reference(p, old, adv, mask, *eps), logp)


def test_cispo_keeps_the_gradient_of_clipped_tokens():
    """Unlike PPO's clip, a CISPO token whose ratio is clipped still has a gradient (the weight is
    clipped, the log pi term is not): d loss / d logp_it = -clip(r_it) A_i / T_step on every token."""
    logp, old, adv, mask = _off_policy_batch(seed=5, spread=2.0)
    obj = resolve_objective("cispo", clip_eps_low=0.2, clip_eps_high=0.2)
    _, grad = _loss_and_grad(lambda p: policy_loss(obj, p, old, adv, mask)[0], logp)
    w = torch.exp(logp.detach() - old).clamp(0.8, 1.2)
    assert ((w == 0.8) | (w == 1.2))[mask > 0].any()
    assert torch.allclose(grad, -w * adv[:, None] * mask / mask.sum(), atol=1e-12)


@pytest.mark.parametrize("estimator", ["k3", "k2", "k3_ratio"])
@pytest.mark.parametrize("seed", [0, 1])
def test_kl_estimators_match_their_formulas(estimator, seed):
    """The KL term alone (A = 0): token-mean of the estimator, loss and gradient."""
    logp, old, _, mask = _off_policy_batch(seed=seed, spread=0.8)
    ref = logp.detach() + torch.randn(logp.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * 0.5
    obj = resolve_objective("dapo", beta=1.0, kl_estimator=estimator)
    zero = torch.zeros(logp.shape[0], dtype=torch.float64)
    ours = _loss_and_grad(lambda p: policy_loss(obj, p, old, zero, mask, ref_logprobs=ref)[0], logp)
    expected = _loss_and_grad(lambda p: _kl_reference(p, ref, old, mask, estimator), logp)
    assert ours[0] == pytest.approx(expected[0], abs=1e-12, rel=1e-12)
    assert torch.allclose(ours[1], expected[1], atol=1e-12, rtol=1e-10)


def test_k3_ratio_equals_k3_on_policy_and_k2_gradient_is_the_log_ratio():
    logp, _, _, mask = _off_policy_batch(seed=3)
    ref = logp.detach() - 0.3
    zero = torch.zeros(logp.shape[0], dtype=torch.float64)
    grads = {}
    for est in ("k3", "k3_ratio", "k2"):
        obj = resolve_objective("dapo", beta=1.0, kl_estimator=est)
        grads[est] = _loss_and_grad(lambda p, obj=obj: policy_loss(obj, p, p.detach(), zero, mask, ref_logprobs=ref)[0],
                                    logp)
    # on-policy r = 1 in value, but its gradient adds k3 itself: d(r k3) = k3 + dk3
    k3 = torch.exp(ref - logp.detach()) - (ref - logp.detach()) - 1
    assert grads["k3_ratio"][0] == pytest.approx(grads["k3"][0], abs=1e-12)
    assert torch.allclose(grads["k3_ratio"][1], grads["k3"][1] + k3 * mask / mask.sum(), atol=1e-12)
    assert torch.allclose(grads["k2"][1], (logp.detach() - ref) * mask / mask.sum(), atol=1e-12)


def test_k1_in_the_reward():
    """k1 in the reward: beta * sum_t (log pi_old - log pi_ref), by hand; no loss term."""
    old = torch.log(torch.tensor([[0.5, 0.25, 1.0], [0.5, 1.0, 1.0]], dtype=torch.float64))
    ref = torch.log(torch.tensor([[0.25, 0.25, 0.5], [1.0, 1.0, 1.0]], dtype=torch.float64))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    pen = kl_reward_penalty(old, ref, mask, beta=0.1)
    assert torch.allclose(pen, torch.tensor([0.1 * math.log(2), 0.1 * math.log(0.5)], dtype=torch.float64))
    obj = resolve_objective("dr_grpo", max_new_tokens=3, beta=0.1, kl_estimator="k1_reward")
    loss, m = policy_loss(obj, old, old, torch.zeros(2, dtype=torch.float64), mask)  # no ref needed, no KL loss
    assert loss.item() == 0.0 and "kl" not in m


def test_informative_groups_and_filtering_counts():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # B=3, G=4
    assert informative_groups(r, 4).tolist() == [False] * 4 + [True] * 4 + [False] * 4


def test_sequence_ratio_with_token_mean_is_refused_and_choices_checked():
    with pytest.raises(ValueError, match="refused"):
        resolve_objective("gspo", aggregation="token_mean")
    with pytest.raises(ValueError, match="refused"):
        resolve_objective("dapo", ratio_level="sequence")
    for knob in ("ratio_level", "surrogate", "kl_estimator"):
        with pytest.raises(ValueError, match=knob):
            resolve_objective("grpo", **{knob: "bogus"})


def test_describe_new_objectives():
    gspo = describe_objective("gspo", resolve_objective("gspo"))
    assert "s_i" in gspo and "0.9997" in gspo and "1.0004" in gspo and "(1/|o_i|)" in gspo
    cispo = describe_objective("cispo", resolve_objective("cispo"))
    assert "sg(clip(r, 0, 5))*A*log pi" in cispo and "(1/sum_i|o_i|)" in cispo
    for est, text in (("k3", "KL_k3"), ("k2", "KL_k2"), ("k3_ratio", "r*KL_k3"), ("k1_reward", "log(pi_old/pi_ref)")):
        assert text in describe_objective("x", resolve_objective("dr_grpo", max_new_tokens=8, beta=0.05, kl_estimator=est))
    assert "count the remaining" in describe_objective("x", resolve_objective("grpo", filter_zero_variance=True))
