"""drzero.algo: hand-computed values, autograd weights, split invariance, presets."""

import math

import pytest
import torch

from drzero.algo import (
    PRESETS,
    Objective,
    bias_weights,
    describe_objective,
    group_advantages,
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


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("preset", list(PRESETS))
def test_split_invariance(preset):
    logp, old, adv, mask = _batch(N=8, seed=3)
    ref_loss, ref_grad = _grad(preset, logp, old, adv, mask, 1)
    for splits in (2, 4, 8):
        loss, grad = _grad(preset, logp, old, adv, mask, splits)
        assert loss == pytest.approx(ref_loss, abs=1e-12)
        assert torch.allclose(grad, ref_grad, atol=1e-12)


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
