"""The update runs each prompt once per micro-batch (its keys/values shared by the
responses to it, ``models.PromptPrefill``): the gradient must equal the unshared
computation, for every preset, with unequal response lengths and micro-batches that cut
groups apart, under gradient checkpointing and with LoRA; sliding-window attention falls
back to the unshared forward."""

import pytest
import torch

from drzero.algo import MICROBATCH_AGGREGATIONS, PRESETS, group_advantages, resolve_objective
from drzero.grader import Grade
from drzero.models import load_model_and_tokenizer, policy_logprobs
from drzero.rollout import Generation, Rollouts
from drzero.templates import TEMPLATES
from drzero.data import load_toy_split as load_split
from drzero.train import accumulate_gradients

G = 4
LENGTHS = [[1, 9, 4, 13], [6, 6, 2, 11], [17, 3, 8, 5]]  # unequal, a 1-token response included


def _batch(tok, preset: str) -> Rollouts:
    """3 questions x G responses of the lengths above (random tokens: the gradient does not
    care whether they are good answers)."""
    gen = torch.Generator().manual_seed(0)
    rows = load_split("train")[: len(LENGTHS)]
    gens = []
    for q, (row, lengths) in enumerate(zip(rows, LENGTHS)):
        prompt = tok(TEMPLATES["r1"].render(row["problem"]), add_special_tokens=False)["input_ids"]
        for n in lengths:
            ids = torch.randint(1, len(tok), (n,), generator=gen).tolist()
            gens.append(Generation(q, prompt, ids, "", "stop"))
    n = len(gens)
    rewards = torch.tensor([float(i % 3 == 0) for i in range(n)])
    obj = resolve_objective(preset, max_new_tokens=20)
    return Rollouts([rows[g.prompt_index] for g in gens], gens, [Grade(False, False, None)] * n, rewards, group_size=G,
                    advantages=group_advantages(rewards, G, scale=obj.advantage_scale, baseline=obj.baseline),
                    keep=torch.tensor([i != 5 for i in range(n)]))  # one masked-out response too


class CountPositions:
    """Counts the token positions the model is run on (to see that sharing happened)."""

    def __init__(self, model):
        self.positions, self.model = 0, model
        self.handle = model.get_input_embeddings().register_forward_hook(self.hook)

    def hook(self, module, args, output):
        self.positions += args[0].numel()


def _grad(model, batch, preset, micro, share):
    model.zero_grad(set_to_none=True)
    counter = CountPositions(model)
    accumulate_gradients(model, batch, resolve_objective(preset, max_new_tokens=20), micro_batch_size=micro,
                         temperature=0.7, pad_id=0, device="cpu", dtype=torch.float32, share_prompts=share)
    counter.handle.remove()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]), counter.positions


def _close(a, b):
    return (a - b).abs().max().item() <= 1e-5 * max(a.abs().max().item(), 1e-12)


# the presets whose normaliser is the micro-batch's own change with the cut on purpose (test_train)
@pytest.mark.parametrize("preset", [pytest.param(p, marks=() if p == "dr_grpo" else pytest.mark.slow)
                                    for p in PRESETS if PRESETS[p].aggregation not in MICROBATCH_AGGREGATIONS])
def test_shared_prompt_gradient_equals_unshared(preset):  # dr_grpo in the fast suite; every invariant preset in CI
    model, tok = load_model_and_tokenizer("toy")  # float32
    model.train()
    batch = _batch(tok, preset)
    reference, unshared_positions = _grad(model, batch, preset, micro=12, share=False)
    assert reference.abs().max() > 0
    for micro in (12, 5, 2):  # whole batch; groups cut across micro-batches; pairs
        grad, positions = _grad(model, batch, preset, micro, share=True)
        assert _close(grad, reference), (micro, (grad - reference).abs().max().item())
        assert positions < unshared_positions, (micro, positions, unshared_positions)  # the prompt ran fewer times


def test_shared_logprobs_and_entropy_equal_unshared():
    model, tok = load_model_and_tokenizer("toy")
    gens = _batch(tok, "dr_grpo").generations
    prompts, responses = [g.prompt_token_ids for g in gens], [g.token_ids for g in gens]
    with torch.no_grad():
        a = policy_logprobs(model, prompts, responses, pad_id=0, device="cpu", dtype=None, temperature=1.0,
                            with_entropy=True, share_prompts=False)
        b = policy_logprobs(model, prompts, responses, pad_id=0, device="cpu", dtype=None, temperature=1.0,
                            with_entropy=True, share_prompts=True)
        one = policy_logprobs(model, [prompts[0]] * 2, [[5], [7]], pad_id=0, device="cpu", dtype=None, temperature=1.0,
                              share_prompts=True)  # responses of one token: the prefill alone
        ref_one = policy_logprobs(model, [prompts[0]] * 2, [[5], [7]], pad_id=0, device="cpu", dtype=None,
                                  temperature=1.0, share_prompts=False)
    assert torch.equal(a[2], b[2])
    mask = a[2].bool()
    assert torch.allclose(a[0][mask], b[0][mask], atol=1e-5, rtol=0)
    assert torch.allclose(a[1][mask], b[1][mask], atol=1e-5, rtol=0)
    assert torch.allclose(one[0], ref_one[0], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_gradient_checkpointing_shares_prompts_with_the_same_gradient():
    """transformers drops the cache inside checkpointed layers; the update's cache layers are
    safe to recompute, so sharing stays on, and recomputing changes nothing."""
    model, tok = load_model_and_tokenizer("toy")
    model.train()
    batch = _batch(tok, "dr_grpo")
    reference, unshared_positions = _grad(model, batch, "dr_grpo", micro=5, share=False)
    shared, shared_positions = _grad(model, batch, "dr_grpo", micro=5, share=True)
    model.gradient_checkpointing_enable()
    grad, positions = _grad(model, batch, "dr_grpo", micro=5, share=True)
    assert _close(grad, reference)
    assert torch.allclose(grad, shared, atol=1e-9, rtol=0)  # the recompute is the same computation
    assert positions == shared_positions < unshared_positions


@pytest.mark.slow
@pytest.mark.parametrize("case", ["sliding_window", "reentrant_checkpointing"])
def test_unsupported_cases_fall_back_to_the_unshared_forward(case):
    model, tok = load_model_and_tokenizer("toy")
    model.train()
    batch = _batch(tok, "dr_grpo")
    reference, unshared_positions = _grad(model, batch, "dr_grpo", micro=5, share=False)
    if case == "sliding_window":  # the prompt's keys would need the window's own cache
        model.config.use_sliding_window = True
    else:  # re-entrant checkpointing runs the forward without gradients: the prompt's keys would carry none
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    grad, positions = _grad(model, batch, "dr_grpo", micro=5, share=True)
    assert _close(grad, reference)
    assert positions == unshared_positions


@pytest.mark.slow
def test_kl_to_a_reference_policy_shares_prompts_with_the_same_gradient():
    model, tok = load_model_and_tokenizer("toy")
    ref_model, _ = load_model_and_tokenizer("toy")
    with torch.no_grad():
        for p in ref_model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # a reference that differs from the policy: KL > 0
    model.train()
    batch = _batch(tok, "dr_grpo")
    obj = resolve_objective("dr_grpo", max_new_tokens=20, beta=0.1)
    grads = []
    for share in (False, True):
        model.zero_grad(set_to_none=True)
        stats = accumulate_gradients(model, batch, obj, ref_model=ref_model, micro_batch_size=5, temperature=1.0,
                                     pad_id=0, device="cpu", share_prompts=share)
        assert stats["kl"] > 0
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]))
    assert _close(grads[1], grads[0])


@pytest.mark.slow
def test_lora_shares_prompts_with_the_same_gradient():
    pytest.importorskip("peft")
    from drzero.models import add_lora

    model, tok = load_model_and_tokenizer("toy")
    model = add_lora(model, rank=4, alpha=8, target_modules="q_proj,v_proj")
    for n, p in model.named_parameters():  # LoRA's B starts at zero: move it so A's gradient is not zero
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    model.train()
    batch = _batch(tok, "grpo")
    reference, unshared_positions = _grad(model, batch, "grpo", micro=5, share=False)
    grad, positions = _grad(model, batch, "grpo", micro=5, share=True)
    assert _close(grad, reference)
    assert positions < unshared_positions


# ----------------------------------------------------------------------------- generation
@pytest.mark.slow
def test_fast_decode_equals_the_plain_decode_loop(monkeypatch):
    """The engine's decode (each prompt's keys/values once, samples' own keys/values in a
    growing buffer, finished rows swapped out) samples the same tokens with the same
    log-probs as transformers' DynamicCache repeated per sample: prompts of different
    lengths, rows stopping at different steps, more tokens than the buffer's first size.
    With one sample per prompt the state is ``RowKV`` (prompt and own keys in one buffer)."""
    import drzero.rollout.hf as hf
    from drzero.rollout import SamplingParams

    model, tok = load_model_and_tokenizer("toy")
    engine = hf.HFEngine(model, tok)
    tpl = TEMPLATES["qwen_math"]
    prompts = [tpl.render(r["problem"]) for r in load_split("test")[:5]]
    assert len({len(tok(p)["input_ids"]) for p in prompts}) > 1  # left padding is exercised
    calls, longest = [], 0
    for cls in (hf.SharedPrefixKV, hf.RowKV):
        monkeypatch.setattr(cls, "attend", lambda self, *a, _f=cls.attend: calls.append(type(self)) or _f(self, *a))
    for params in (SamplingParams(n=3, temperature=1.0, max_new_tokens=100, seed=4),
                   SamplingParams(n=2, temperature=0.8, top_p=0.9, max_new_tokens=70, seed=5, stop=("=",)),
                   SamplingParams(n=1, temperature=0.0, max_new_tokens=90),
                   SamplingParams(n=1, temperature=1.0, max_new_tokens=150, seed=6)):
        monkeypatch.setattr(hf, "FAST_DECODE", ())
        plain = engine.generate(prompts, params)
        monkeypatch.setattr(hf, "FAST_DECODE", ("qwen2",))
        calls.clear()
        fast = engine.generate(prompts, params)
        assert set(calls) == {hf.RowKV if params.n == 1 else hf.SharedPrefixKV}  # the fast path ran
        lengths = [len(g.token_ids) for g in plain]
        assert len(set(lengths)) > 1  # rows stop apart
        longest = max(longest, *lengths)
        assert [g.token_ids for g in fast] == [g.token_ids for g in plain]
        assert [g.text for g in fast] == [g.text for g in plain]
        assert [g.finish_reason for g in fast] == [g.finish_reason for g in plain]
        gap = max(abs(a - b) for f, p in zip(fast, plain) for a, b in zip(f.logprobs, p.logprobs))
        assert gap < 1e-4, gap
    assert longest > 64  # the own-keys buffer (64 first) doubled
    assert model.config._attn_implementation == "sdpa"  # switched back after decoding


def test_sampler_draws_from_the_tempered_nucleus():
    from drzero.rollout import SamplingParams
    from drzero.rollout.hf import HFEngine

    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]).repeat(40_000, 1)
    gen = torch.Generator().manual_seed(0)
    for temperature, top_p in ((1.0, 1.0), (0.7, 1.0), (1.0, 0.8)):
        probs = torch.softmax(logits[0] / temperature, -1)
        if top_p < 1:
            keep = (probs.cumsum(-1) - probs) <= top_p  # the nucleus: tokens 0, 1, 2 here
            probs = torch.where(keep, probs, 0.0) / probs[keep].sum()
        token, logp = HFEngine._sample(logits, SamplingParams(temperature=temperature, top_p=top_p), gen)
        freq = torch.bincount(token, minlength=5).float() / len(token)
        assert (freq - probs).abs().max() < 0.01, (temperature, top_p, freq, probs)
        assert torch.allclose(logp, probs[token].log(), atol=1e-5)
        assert freq[probs == 0].sum() == 0


def test_generation_runs_on_one_cpu_thread_on_a_machine_with_few_cores(monkeypatch):
    """On a CPU with few cores generation uses one thread (OpenMP teams stall on shared
    cores), elsewhere torch's setting; ``decode_threads`` overrides; torch's setting is back
    afterwards."""
    import drzero.rollout.hf as hf
    from drzero.rollout import SamplingParams

    model, tok = load_model_and_tokenizer("toy")
    seen = []
    step = hf.SharedPrefixKV.step
    monkeypatch.setattr(hf.SharedPrefixKV, "step", lambda self, *a: seen.append(torch.get_num_threads()) or step(self, *a))
    prompts = [TEMPLATES["qwen_math"].render(r["problem"]) for r in load_split("test")[:2]]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=10, seed=1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for cores, decode_threads, expected in ((2, None, 1), (32, None, 2), (32, 1, 1), (2, 3, 3)):
            monkeypatch.setattr(hf.os, "cpu_count", lambda: cores)
            seen.clear()
            hf.HFEngine(model, tok, decode_threads=decode_threads).generate(prompts, params)
            assert seen and set(seen) == {expected}, (cores, decode_threads, seen)
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_lean_decode_step_is_bit_identical_to_the_models_forward(monkeypatch):
    """``lean_step`` runs a Qwen2/Llama decode step through the same modules as the model's
    ``forward`` minus per-step overhead: the same tokens and exactly the same log-probs, for
    the shared-prompt state (G samples) and the one-sample state; a wrapped model (hooks)
    is left to its own ``forward``."""
    import drzero.rollout.hf as hf
    from drzero.rollout import SamplingParams

    model, tok = load_model_and_tokenizer("toy")
    engine = hf.HFEngine(model, tok)
    prompts = [TEMPLATES["qwen_math"].render(r["problem"]) for r in load_split("test")[:4]]
    assert hf.lean_decode(model)
    used = []
    lean_step = hf.lean_step
    monkeypatch.setattr(hf, "lean_step", lambda *a: used.append(1) or lean_step(*a))
    for params in (SamplingParams(n=3, temperature=1.0, max_new_tokens=80, seed=2),
                   SamplingParams(n=1, temperature=0.0, max_new_tokens=80)):
        used.clear()
        lean = engine.generate(prompts, params)
        assert used
        with monkeypatch.context() as m:
            m.setattr(hf, "lean_decode", lambda model: False)
            used.clear()
            full = engine.generate(prompts, params)
            assert not used
        assert [g.token_ids for g in lean] == [g.token_ids for g in full]
        assert [g.logprobs for g in lean] == [g.logprobs for g in full]  # bit-identical
    handle = model.register_forward_hook(lambda *a: None)
    try:
        assert not hf.lean_decode(model)
    finally:
        handle.remove()
