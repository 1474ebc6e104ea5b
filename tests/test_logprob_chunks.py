"""The LM head scores response tokens a chunk at a time (``models.chunked_logprobs``), so the
float32 logits ``[M, T, V]`` never exist, and backward recomputes each chunk. Log-probs,
entropies and gradients must equal the unchunked computation (a verbatim copy of the old
code below, and ``logprob_chunk_tokens=0``, which runs it) to 1e-6 of the largest value, for
every preset,
with and without the shared-prompt prefill, under gradient checkpointing, with tied and
untied heads, a bias, LoRA and a KL reference. And the point of it: the largest tensor an
update makes is one chunk's ``[C, V]``, not ``[M, T, V]``."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from drzero import dist
from drzero.algo import PRESETS, group_advantages, resolve_objective
from drzero.data import load_toy_split
from drzero.errors import DrZeroError
from drzero.grader import Grade
from drzero.models import (Cache, PromptPrefill, _cache_kept_under_checkpointing, _PrefixLayer, _right_pad,
                           _token_logprobs, chunked_logprobs, collate, load_model_and_tokenizer, policy_logprobs)
from drzero.rollout import Generation, Rollouts
from drzero.templates import TEMPLATES
from drzero.train import accumulate_gradients

G = 4
LENGTHS = [[1, 9, 4, 13], [6, 6, 2, 11], [17, 3, 8, 5]]  # unequal, a 1-token response included
CHUNKS = (1, 7, 512)  # every token alone; chunks that straddle responses; one chunk for everything
REL = 1e-6


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread: with two, a matmul's reduction order follows the shapes the threads
    are given, so the unchunked reference itself moves by a few float32 ulps (4.8e-7 of a
    0.3 gradient, seen at 2 threads) for reasons that are not the chunking's."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _close(a, b, rel=REL) -> bool:
    """Equal to ``rel`` of the largest magnitude (float32 rounding of a matmul cut in rows)."""
    return (a - b).abs().max().item() <= rel * max(b.abs().max().item(), 1e-12)


def _batch(tok, preset: str, vocab: int | None = None) -> Rollouts:
    """3 questions x G responses of the lengths above (random tokens), one masked out."""
    gen = torch.Generator().manual_seed(0)
    rows = load_toy_split("train")[: len(LENGTHS)]
    gens = []
    for q, (row, lengths) in enumerate(zip(rows, LENGTHS)):
        prompt = tok(TEMPLATES["r1"].render(row["problem"]), add_special_tokens=False)["input_ids"]
        for n in lengths:
            gens.append(Generation(q, prompt, torch.randint(1, vocab or len(tok), (n,), generator=gen).tolist(), "",
                                   "stop"))
    n = len(gens)
    rewards = torch.tensor([float(i % 3 == 0) for i in range(n)])
    obj = resolve_objective(preset, max_new_tokens=20)
    return Rollouts([rows[g.prompt_index] for g in gens], gens, [Grade(False, False, None)] * n, rewards, group_size=G,
                    advantages=group_advantages(rewards, G, scale=obj.advantage_scale, baseline=obj.baseline),
                    keep=torch.tensor([i != 5 for i in range(n)]))


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])


def _update(model, batch, preset, *, chunk, share, micro=5, **kw):
    """One optimizer step's gradient through drzero's own update: ``(grad, stats)``."""
    model.zero_grad(set_to_none=True)
    stats = accumulate_gradients(model, batch, kw.pop("objective", None) or resolve_objective(preset, max_new_tokens=20),
                                 micro_batch_size=micro, temperature=0.7, pad_id=0, device="cpu", dtype=torch.float32,
                                 share_prompts=share, logprob_chunk_tokens=chunk, **kw)
    return _grads(model), stats


# ----------------------------------------------------------------------------- the old code, verbatim
def _old_token_logprobs(logits, targets, temperature, with_entropy):
    logits = logits.float()
    if temperature > 0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [M, T]
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # [M, T]
    return logp, entropy


def _old_response_logprobs(model, input_ids, attention_mask, prompt_width, temperature, with_entropy=False):
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    T = input_ids.shape[1] - prompt_width
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=False,
                   logits_to_keep=T + 1).logits  # [M, T+1, V]: position t predicts token t+1
    return _old_token_logprobs(logits[:, :-1], input_ids[:, prompt_width:], temperature, with_entropy)


def _old_prefill_logprobs(self, prompts, responses, *, temperature, with_entropy=False):
    """``PromptPrefill.logprobs`` as it was: the logits of every response token at once."""
    device = self.device
    own = torch.tensor([self.index[tuple(p)] for p in prompts], dtype=torch.long, device=device)  # [M]
    response_ids, response_mask = (t.to(device) for t in _right_pad(responses, self.pad_id))  # [M, T]
    T = response_ids.shape[1]
    *kv, last = [x[own].to(o.dtype) for x, o in zip(self.inputs, self.outputs)]  # [M, ...]: each response's prompt
    with dist.autocast(device, self.dtype):
        logits = last[:, None]  # [M, 1, V]: the prompt's last position predicts response token 0
        if T > 1:  # the last response token is only a target: feed tokens 0..T-2
            cache = Cache(layers=[_PrefixLayer(kv[2 * i], kv[2 * i + 1]) for i in range(len(kv) // 2)])
            attn = torch.cat([self.prompt_attn[own], response_mask[:, :-1].long()], dim=1)  # [M, P+T-1]
            positions = self.prompt_attn.sum(-1)[own][:, None] + torch.arange(T - 1, device=device)  # [M, T-1]
            with _cache_kept_under_checkpointing(self.model):
                rest = self.model(input_ids=response_ids[:, :-1], attention_mask=attn, position_ids=positions,
                                  past_key_values=cache, use_cache=False).logits  # [M, T-1, V]
            logits = torch.cat([logits, rest], dim=1)  # [M, T, V]
        logp, entropy = _old_token_logprobs(logits, response_ids, temperature, with_entropy)
    return logp, entropy, response_mask


@pytest.mark.parametrize("share", [False, True])
def test_chunked_logprobs_equal_the_old_code_values_and_gradients(share):
    """Against the old code itself, kept above: the plain forward and the shared-prompt prefill."""
    model, tok = load_model_and_tokenizer("toy")  # float32, tied embeddings
    gens = _batch(tok, "dr_grpo").generations
    prompts, responses = [g.prompt_token_ids for g in gens], [g.token_ids for g in gens]
    input_ids, attn, mask, P = collate(prompts, responses, 0, "cpu")
    weights = torch.randn(mask.shape, generator=torch.Generator().manual_seed(1)) * mask  # any per-token loss weights
    model.zero_grad(set_to_none=True)
    if share:
        prefill = PromptPrefill(model, prompts, pad_id=0, device="cpu", dtype=None)
        old_logp, old_ent, _ = _old_prefill_logprobs(prefill, prompts, responses, temperature=0.7, with_entropy=True)
    else:
        old_logp, old_ent = _old_response_logprobs(model, input_ids, attn, P, 0.7, with_entropy=True)
    (old_logp * weights).sum().backward()
    old_grad = _grads(model)
    m = mask.bool()
    for chunk in (0,) + CHUNKS:
        model.zero_grad(set_to_none=True)
        logp, ent, new_mask = policy_logprobs(model, prompts, responses, pad_id=0, device="cpu", dtype=None,
                                              temperature=0.7, with_entropy=True, share_prompts=share,
                                              chunk_tokens=chunk)
        (logp * weights).sum().backward()
        assert torch.equal(new_mask, mask)
        assert _close(logp[m], old_logp[m]) and _close(ent[m], old_ent[m]), chunk
        assert not ent.requires_grad  # entropies are a metric, as before
        assert _close(_grads(model), old_grad), (chunk, (_grads(model) - old_grad).abs().max().item())


@pytest.mark.parametrize("preset", [pytest.param(p, marks=() if p in ("grpo", "gspo") else pytest.mark.slow)
                                    for p in PRESETS])
def test_update_gradient_is_unchanged_by_chunking(preset):  # two presets in the fast suite; every preset in CI
    """Every preset, the shared-prompt prefill on and off, micro-batches cutting groups apart."""
    model, tok = load_model_and_tokenizer("toy")
    model.train()
    batch = _batch(tok, preset)
    for share in (False, True):
        reference, ref_stats = _update(model, batch, preset, chunk=0, share=share)  # the old [M, T, V] computation
        assert reference.abs().max() > 0
        for chunk in CHUNKS[1:]:  # chunk 1 is the test above's
            grad, stats = _update(model, batch, preset, chunk=chunk, share=share)
            assert _close(grad, reference), (share, chunk, (grad - reference).abs().max().item())
            for key in ("loss", "entropy", "ratio_mean"):
                assert abs(stats[key] - ref_stats[key]) <= REL * max(abs(ref_stats[key]), 1e-12), (key, share, chunk)


@pytest.mark.slow
@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_gradient(reentrant):
    model, tok = load_model_and_tokenizer("toy")
    model.train()
    batch = _batch(tok, "dr_grpo")
    for share in (False, True):  # re-entrant checkpointing falls back to the unshared forward (can_share_prompts)
        model.gradient_checkpointing_disable()
        reference, _ = _update(model, batch, "dr_grpo", chunk=0, share=share)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        grad, _ = _update(model, batch, "dr_grpo", chunk=7, share=share)
        assert _close(grad, reference), (share, (grad - reference).abs().max().item())


@pytest.mark.slow
def test_kl_to_a_reference_policy_is_unchanged_by_chunking():
    model, tok = load_model_and_tokenizer("toy")
    ref_model, _ = load_model_and_tokenizer("toy")
    with torch.no_grad():
        for p in ref_model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.train()
    batch = _batch(tok, "dr_grpo")
    obj = resolve_objective("dr_grpo", max_new_tokens=20, beta=0.1)
    for share in (False, True):
        reference, ref_stats = _update(model, batch, "dr_grpo", chunk=0, share=share, objective=obj,
                                       ref_model=ref_model)
        assert ref_stats["kl"] > 0
        grad, stats = _update(model, batch, "dr_grpo", chunk=7, share=share, objective=obj, ref_model=ref_model)
        assert _close(grad, reference) and abs(stats["kl"] - ref_stats["kl"]) <= REL * ref_stats["kl"]


def _tiny_qwen2(vocab=600, hidden=32, *, tied: bool, bias: bool, layers=1):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                                         tie_word_embeddings=tied, max_position_embeddings=512))
    if bias:  # no Qwen2 has one; other models' heads do
        model.lm_head = torch.nn.Linear(hidden, vocab, bias=True)
        torch.nn.init.normal_(model.lm_head.bias, std=1.0)
    return model.train()


@pytest.mark.parametrize("tied,bias", [(True, False), (False, False), (False, True)])
def test_untied_and_biased_heads_get_the_same_gradient(tied, bias):
    _, tok = load_model_and_tokenizer("toy")
    model = _tiny_qwen2(tied=tied, bias=bias)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    batch = _batch(tok, "grpo", vocab=600)  # above the toy tokenizer's 517: the prompts fit
    for share in (False, True):
        reference, _ = _update(model, batch, "grpo", chunk=0, share=share)
        grad, _ = _update(model, batch, "grpo", chunk=7, share=share)
        assert _close(grad, reference), (share, (grad - reference).abs().max().item())
    if bias:
        assert model.lm_head.bias.grad.abs().max() > 0


@pytest.mark.parametrize("temperature", [0.6, 1.0])
def test_chunked_logprobs_against_the_plain_formula(temperature):
    """The function alone: values and the gradients of hidden states, weight and bias."""
    gen = torch.Generator().manual_seed(0)
    M, T, H, V = 3, 11, 16, 50
    hidden = torch.randn(M, T, H, generator=gen, requires_grad=True)
    weight = torch.randn(V, H, generator=gen, requires_grad=True)
    bias = torch.randn(V, generator=gen, requires_grad=True)
    targets = torch.randint(0, V, (M, T), generator=gen)
    upstream = torch.randn(M, T, generator=gen)

    def run(fn):
        for t in (hidden, weight, bias):
            t.grad = None
        logp, ent = fn()
        (logp * upstream).sum().backward()
        return logp.detach(), ent, hidden.grad.clone(), weight.grad.clone(), bias.grad.clone()

    ref = run(lambda: _token_logprobs(F.linear(hidden, weight, bias), targets, temperature, True))
    for chunk in (1, 4, 33, 100):
        got = run(lambda c=chunk: chunked_logprobs(hidden, weight, bias, targets, temperature, with_entropy=True,
                                                   chunk_tokens=c))
        assert all(_close(a, b) for a, b in zip(got, ref)), chunk


@pytest.mark.slow
def test_lora_gets_the_same_gradient_and_a_lora_head_takes_the_unchunked_path():
    pytest.importorskip("peft")
    from drzero.models import _chunkable_head, add_lora

    for targets in ("all-linear", "q_proj,v_proj,lm_head"):  # peft's all-linear leaves the head alone
        model, tok = load_model_and_tokenizer("toy")
        model = add_lora(model, rank=4, alpha=8, target_modules=targets)
        for n, p in model.named_parameters():  # LoRA's B starts at zero: move it so A's gradient is not zero
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)
        model.train()
        assert (_chunkable_head(model) is None) == ("lm_head" in targets)
        batch = _batch(tok, "grpo")
        for share in (False, True):
            reference, _ = _update(model, batch, "grpo", chunk=0, share=share)
            grad, _ = _update(model, batch, "grpo", chunk=7, share=share)
            assert _close(grad, reference), (targets, share)


def test_bfloat16_autocast_runs_the_head_in_bfloat16_and_the_softmax_in_float32():
    model, tok = load_model_and_tokenizer("toy")
    gens = _batch(tok, "dr_grpo").generations
    prompts, responses = [g.prompt_token_ids for g in gens], [g.token_ids for g in gens]
    out = {}
    for chunk in (0, 7):
        model.zero_grad(set_to_none=True)
        logp, ent, mask = policy_logprobs(model, prompts, responses, pad_id=0, device="cpu", dtype=torch.bfloat16,
                                          temperature=0.7, with_entropy=True, share_prompts=False, chunk_tokens=chunk)
        (logp * mask).sum().backward()
        out[chunk] = logp.detach(), ent, mask.bool(), _grads(model)
    assert out[7][0].dtype == torch.float32 and out[7][1].dtype == torch.float32
    m = out[0][2]
    assert torch.equal(out[7][0][m], out[0][0][m])  # the same bfloat16 logits, the same float32 softmax
    assert torch.equal(out[7][1][m], out[0][1][m])
    # the gradient differs by bfloat16 rounding only (the weight's gradient is summed in float32 over chunks)
    assert _close(out[7][3], out[0][3], rel=2e-2)


def test_a_model_that_reworks_its_logits_is_refused_or_left_unchunked():
    model, tok = load_model_and_tokenizer("toy")
    gens = _batch(tok, "dr_grpo").generations[:3]
    args = {"pad_id": 0, "device": "cpu", "dtype": None, "temperature": 1.0, "share_prompts": False}
    prompts, responses = [g.prompt_token_ids for g in gens], [g.token_ids for g in gens]
    reference = policy_logprobs(model, prompts, responses, chunk_tokens=0, **args)[0]
    model.config.final_logit_softcapping = 30.0  # a soft-capping model: known from its config, left unchunked
    assert torch.equal(policy_logprobs(model, prompts, responses, chunk_tokens=7, **args)[0], reference)
    del model.config.final_logit_softcapping
    forward = model.forward

    def scaled(*a, **kw):  # a model that scales its head's output, which its config does not say
        out = forward(*a, **kw)
        out.logits = out.logits * 2
        return out

    model.forward = scaled
    with pytest.raises(DrZeroError, match="logprob_chunk_tokens: 0"):
        policy_logprobs(model, prompts, responses, chunk_tokens=7, **args)


class LargestTensor(TorchDispatchMode):
    """The largest tensor any operation makes (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.numel = max(self.numel, t.numel())
        return out


@pytest.mark.parametrize("share", [False, True])
def test_no_tensor_of_all_tokens_by_the_vocabulary_is_made(share):
    """Why the chunking exists: unchunked, the update makes [M, T, V] tensors (five or so of
    them at once, in float32); chunked, nothing larger than a chunk's [C, V] or the head's
    [V, H]. bench/memory.py measures what this does to the peak at the real vocabulary."""
    _, tok = load_model_and_tokenizer("toy")
    V, H, chunk = 32768, 8, 16  # a chunk's logits [16, V] are larger than anything else the tiny model makes
    model = _tiny_qwen2(vocab=V, hidden=H, tied=True, bias=False)
    batch = _batch(tok, "dr_grpo", vocab=V)
    N = len(batch) * max(len(g.token_ids) for g in batch.generations)  # the whole step as one micro-batch
    sizes = {}
    for c in (0, chunk):
        with LargestTensor() as largest:
            _update(model, batch, "dr_grpo", chunk=c, share=share, micro=len(batch))
        sizes[c] = largest.numel
    assert sizes[0] >= (N - len(batch)) * V  # [M, T, V] (less a position per response on the shared prefill)
    assert sizes[chunk] <= chunk * V < sizes[0] / 10, sizes


def test_the_chunk_default_is_the_flags():
    """models' default chunk (what accumulate_gradients uses when not told) is --logprob-chunk-tokens's."""
    from drzero.config import TrainConfig
    from drzero.models import LOGPROB_CHUNK_TOKENS

    assert TrainConfig().logprob_chunk_tokens == LOGPROB_CHUNK_TOKENS


@pytest.mark.slow
def test_bench_memory_measures_the_chunked_update_far_below_the_unchunked_one():
    """bench/memory.py end to end, one small point each way (each its own process): at the
    real vocabulary the unchunked update's peak grows with T x V, the chunked one's with
    the chunk."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench" / "memory.py"
    peaks = {}
    for chunk in (0, 64):
        out = subprocess.run([sys.executable, str(bench), "--point", "--vocab", "151936", "--tokens", "256",
                              "--micro-batch", "2", "--chunk", str(chunk)], capture_output=True, text=True, timeout=600, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        r = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[chunk] = r["peak"] - r["base"]
        assert r["grad_norm"] > 0
    per_tokens_by_vocab = 2 * 256 * 151936 * 4  # bytes of one float32 [M, T, V]
    assert peaks[0] > 2.5 * per_tokens_by_vocab  # the old code holds several at once
    assert peaks[64] < peaks[0] - 1.5 * per_tokens_by_vocab, peaks
