"""Policies: loading (``toy``, a local folder or a hub name), LoRA adapters, and the
learner's forward pass, response log-probabilities. Everything that scores responses
(the update, pi_old, the reference policy) goes through one entry point: ``plan_forward``
cuts a step's responses into chunks of micro-batches, ``Forward`` scores each chunk
(sharing each prompt's keys/values among its responses where the model allows it).

Shapes: ``M`` responses in a micro-batch, ``P`` prompt tokens (left-padded), ``T``
response tokens (right-padded), ``V`` vocabulary, ``H`` hidden size, ``N = M*T``.

The log-probs are computed from the final hidden states and the LM head's weight a chunk
of tokens at a time (``chunked_logprobs``), so the float32 logits ``[M, T, V]`` never
exist: at V = 151,936 they would be 2.4 GB per 1,000 response tokens, several times over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer

from drzero import dist
from drzero.errors import DrZeroError
from drzero.inputs import BUNDLED_MODELS, TOY_CHECKPOINT, TOY_V2_CHECKPOINT, check_model  # noqa: F401 - re-exported

LOGPROB_CHUNK_TOKENS = 512  # the default of TrainConfig.logprob_chunk_tokens (--logprob-chunk-tokens)


def resolve_model_path(name: str) -> str:
    """``toy`` / ``toy-v2`` -> the bundled checkpoint; an existing folder -> itself, checked (config,
    tokenizer files, intact weights: ``inputs.check_model``); else a hub name."""
    return check_model(name)


def load_model_and_tokenizer(name: str, *, dtype: str = "auto", device: str = "cpu"):
    """``(model, tokenizer)`` for a model name/path (see ``resolve_model_path``). Anything
    that stops the load is one line naming the model, not a traceback."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name)
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        if not tokenizer("1 + 1 = 2", add_special_tokens=False)["input_ids"]:
            raise DrZeroError(f"model {name!r}: its tokenizer encodes nothing (vocabulary of {len(tokenizer)}); "
                              "are the tokenizer files missing or broken?")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except DrZeroError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken or unreachable checkpoint, whatever the library raises
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DrZeroError(f"cannot load model {name!r}: {type(e).__name__}: {first[:300]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer


def load_template(name: str, model: str, system_prompt: str | None = None):
    """``drzero.templates.get_template``, with the model's tokenizer for ``chat``."""
    from drzero.templates import get_template

    if name != "chat":
        return get_template(name)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model))
    except OSError as e:
        raise DrZeroError(f"--template chat: cannot load the tokenizer of {model!r} ({str(e).splitlines()[0][:200]})") from None
    return get_template("chat", tokenizer=tokenizer, system_prompt=system_prompt)


def add_lora(model, *, rank: int, alpha: float, target_modules: str, adapter_dir: Path | None = None):
    """Wrap the policy with LoRA adapters (peft); resume them from ``adapter_dir``."""
    try:
        from peft import LoraConfig, PeftModel, get_peft_model
    except ImportError:
        raise DrZeroError("--lora-rank needs the peft package (pip install peft)") from None
    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    targets = target_modules if target_modules == "all-linear" else target_modules.split(",")
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                                            task_type="CAUSAL_LM"))


def collate(prompts: list[list[int]], responses: list[list[int]], pad_id: int, device):
    """Left-pad prompts and right-pad responses so every response starts at one column.
    Returns ``input_ids [M, P+T]``, ``attention_mask [M, P+T]``, ``response_mask [M, T]``, ``P``."""
    prompt_ids, prompt_attn = _left_pad(prompts, pad_id)  # [M, P]
    response_ids, response_mask = _right_pad(responses, pad_id)  # [M, T]
    input_ids = torch.cat([prompt_ids, response_ids], dim=1)
    attention = torch.cat([prompt_attn, response_mask.long()], dim=1)
    return input_ids.to(device), attention.to(device), response_mask.to(device), prompt_ids.shape[1]


def _left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids [M, P]`` (left-padded) and ``attention [M, P]`` (long)."""
    P = max(len(r) for r in rows)
    ids = torch.full((len(rows), P), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), P), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, P - len(r) :] = torch.tensor(r, dtype=torch.long)
        attention[i, P - len(r) :] = 1
    return ids, attention


def _right_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids [M, T]`` (right-padded, T >= 1) and ``mask [M, T]`` (float)."""
    T = max(max(len(r) for r in rows), 1)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.float32)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1.0
    return ids, mask


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool):
    """``logits [M, T, V]`` (position t scores token t) -> log-probs ``[M, T]`` of ``targets``
    under the sampling temperature, and entropies ``[M, T]`` when asked. The unchunked
    computation: it holds several float32 ``[M, T, V]`` tensors (``logprob_chunk_tokens=0``,
    and heads that ``chunked_logprobs`` cannot take)."""
    logits = logits.float()
    if temperature > 0 and temperature != 1.0:  # x / 1.0 == x: skip a pass over [M, T, V]
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [M, T]
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # [M, T]
    return logp, entropy


def chunked_logprobs(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                     temperature: float, *, with_entropy: bool = False,
                     chunk_tokens: int = LOGPROB_CHUNK_TOKENS):
    """``_token_logprobs(F.linear(hidden, weight, bias), ...)`` without the ``[M, T, V]`` logits:
    ``hidden [M, T, H]`` (the final hidden states; position t scores token t), the LM head's
    ``weight [V, H]`` and ``bias [V]`` (or None), ``targets [M, T]`` -> log-probs ``[M, T]``
    (differentiable in ``hidden``, ``weight`` and ``bias``) and entropies ``[M, T]`` (no
    gradient, as before) or None.

    The ``N = M*T`` tokens go through the head ``chunk_tokens`` at a time; backward
    recomputes each chunk's logits instead of keeping them (as Liger's fused linear
    cross-entropy does). Under autocast the head runs in the autocast dtype, as the model's
    own head would, and the chunk's softmax is in float32.

    Peak memory, beyond what the model holds anyway, is about ``chunk_tokens * V * 4 * k``
    bytes with k = 2: two float32 ``[C, V]`` at a time (the logits and their log-softmax;
    the log-softmax and ``p log p`` for the entropy; in backward the recomputed logits and
    their softmax, made the gradient in place; a half-dtype head adds a half-size copy
    next to one of them). Independent of the chunk size: the weight's gradient ``[V, H]``
    (float32, when the head is trained) and, under autocast, the weight in the compute
    dtype. bench/memory.py measures k (docs/performance.md). The unchunked computation
    holds about four float32 ``[N, V]`` at its peak (measured), growing with ``N``.

    Cost: the head's matmul runs once more per token (the recompute in backward): 4 instead
    of 3, about 5% more FLOPs for an update at the 1.5B shape. Values and gradients equal the
    unchunked ones to float32 rounding (the matmuls are cut in rows, the weight's gradient
    summed over chunks)."""
    logp, entropy = _ChunkedLogprobs.apply(hidden, weight, bias, targets, float(temperature), bool(with_entropy),
                                           max(1, int(chunk_tokens)))
    return logp, (entropy if with_entropy else None)


def _chunk_log_softmax(hidden, weight, bias, temperature: float) -> torch.Tensor:
    """One chunk: ``hidden [C, H]`` -> float32 log-softmax ``[C, V]`` of the tempered logits
    (``weight``/``bias`` already in the compute dtype, ``hidden`` cast to it)."""
    logits = F.linear(hidden.to(weight.dtype), weight, bias).float()  # [C, V]: a fresh tensor, divided in place
    if temperature > 0 and temperature != 1.0:  # x / 1.0 == x: skip a pass over the chunk
        logits.div_(temperature)
    return torch.log_softmax(logits, dim=-1)


class _ChunkedLogprobs(torch.autograd.Function):
    """``chunked_logprobs``: ``hidden [M, T, H]``, ``targets [M, T]`` -> ``logp [M, T]``,
    ``entropy [M, T]`` (empty unless asked), cut into chunks of the ``N = M*T`` tokens in a
    row. Saves only its inputs; backward recomputes each chunk's log-softmax and applies
    d logp / d logits = (onehot(target) - softmax) / temperature in place (the same
    operations, in the same order, as autograd's log_softmax backward)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, with_entropy, chunk_tokens):
        ctx.save_for_backward(hidden, weight, bias, targets)
        M, T, H = hidden.shape
        hidden, targets = hidden.reshape(M * T, H), targets.reshape(M * T)  # [N, H], [N]
        device_type = hidden.device.type
        # the compute dtype: autocast's (as the model's own head would run) or the hidden states'
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
        ctx.temperature, ctx.chunk_tokens, ctx.dtype = temperature, chunk_tokens, dtype
        w, b = weight.to(dtype), (bias.to(dtype) if bias is not None else None)
        N = M * T
        # the outputs are made here in their final shape: a view would be an odd output for the model to return
        logp = torch.empty(M, T, dtype=torch.float32, device=hidden.device)
        entropy = torch.empty((M, T) if with_entropy else (0,), dtype=torch.float32, device=hidden.device)
        with torch.autocast(device_type, enabled=False):
            for s in range(0, N, chunk_tokens):
                e = min(N, s + chunk_tokens)
                logp_all = _chunk_log_softmax(hidden[s:e], w, b, temperature)  # [C, V]
                logp.view(N)[s:e] = logp_all.gather(-1, targets[s:e, None]).squeeze(-1)
                if with_entropy:
                    p_logp = logp_all.exp().mul_(logp_all)  # p * log p, [C, V]
                    entropy.view(N)[s:e] = -p_logp.sum(-1)
                    del p_logp
                del logp_all
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        hidden, weight, bias, targets = ctx.saved_tensors
        shape = hidden.shape
        hidden, targets, grad_logp = hidden.reshape(-1, shape[-1]), targets.reshape(-1), grad_logp.reshape(-1)
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        dtype, temperature = ctx.dtype, ctx.temperature
        w, b = weight.to(dtype), (bias.to(dtype) if bias is not None else None)
        N = hidden.shape[0]
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        total = torch.promote_types(dtype, torch.float32)  # the chunks' sum: in float32 at least
        grad_weight = torch.zeros(weight.shape, dtype=total, device=weight.device) if need_weight else None
        grad_bias = torch.zeros(bias.shape, dtype=total, device=bias.device) if need_bias else None
        grad_logp = grad_logp.float()
        with torch.autocast(hidden.device.type, enabled=False):
            for s in range(0, N, ctx.chunk_tokens):
                e = min(N, s + ctx.chunk_tokens)
                g = grad_logp[s:e, None]  # [C, 1]
                grad = _chunk_log_softmax(hidden[s:e], w, b, temperature).exp_()  # softmax [C, V]
                grad.mul_(-g).scatter_add_(1, targets[s:e, None], g)  # onehot*g - p*g (log_softmax's backward)
                if temperature > 0 and temperature != 1.0:
                    grad.div_(temperature)
                grad = grad.to(dtype)  # d loss / d (the head's output), as .float()'s backward casts it
                if need_hidden:
                    grad_hidden[s:e] = grad @ w
                if need_weight:
                    h = hidden[s:e].to(dtype)
                    if dtype == total:
                        grad_weight.addmm_(grad.t(), h)
                    else:
                        grad_weight += grad.t() @ h
                if need_bias:
                    grad_bias += grad.sum(0)
                del grad
        return (grad_hidden.view(shape) if need_hidden else None, grad_weight.to(weight.dtype) if need_weight else None,
                grad_bias.to(bias.dtype) if need_bias else None, None, None, None, None)


_LOGIT_CHANGES = ("final_logit_softcapping", "logit_scale", "logits_scaling")  # config keys of models that rework logits


def _chunkable_head(model):
    """The model's LM head when ``chunked_logprobs`` computes exactly what it does: a plain
    ``nn.Linear`` (tied to the input embeddings or not, with or without a bias) whose
    output the model returns as its logits. None otherwise (a LoRA-wrapped head, a model
    that soft-caps or scales its logits): such models take the unchunked path."""
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear) or type(head).forward is not torch.nn.Linear.forward:
        return None
    config = getattr(model, "config", None)
    if any(getattr(config, key, None) not in (None, 1, 1.0) for key in _LOGIT_CHANGES):
        return None
    return head


def _scored_logprobs(model, targets: torch.Tensor, *, temperature: float, with_entropy: bool, chunk_tokens: int,
                     **inputs):
    """``model(**inputs)``, its first ``T`` output positions scoring ``targets [M, T]``:
    ``(logprobs [M, T], entropy [M, T] or None)``. With ``chunk_tokens`` > 0 and a head that
    ``_chunkable_head`` accepts, the head is asked, for this one call, for the chunked
    log-probs of its hidden states instead of logits: it runs inside the model's forward
    as before (FSDP has its weight gathered; its returned tensor is the model's output, so
    the model's backward hooks see it), and no ``[M, T, V]`` tensor is made. (So the
    module must not run another forward, e.g. generation, in another thread meanwhile.)"""
    T = targets.shape[1]
    head = _chunkable_head(model) if chunk_tokens > 0 else None
    if head is None:
        return _token_logprobs(model(**inputs).logits[:, :T], targets, temperature, with_entropy)
    scored: dict[str, torch.Tensor | None] = {}

    def head_forward(hidden):  # [M, L, H], L >= T, in place of the logits [M, L, V]
        scored["logp"], scored["entropy"] = chunked_logprobs(hidden[:, :T], head.weight, head.bias, targets,
                                                             temperature, with_entropy=with_entropy,
                                                             chunk_tokens=chunk_tokens)
        return scored["logp"]  # [M, T]

    head.forward = head_forward
    try:
        out = model(**inputs).logits
    finally:
        del head.forward  # back to nn.Linear.forward
    if out is not scored.get("logp"):
        raise DrZeroError(f"{type(model).__name__} changes its LM head's output before returning it, so the chunked "
                          "log-probs cannot be used; set logprob_chunk_tokens: 0")
    return out, scored["entropy"]


def response_logprobs(model, input_ids, attention_mask, prompt_width: int, temperature: float, with_entropy=False,
                      chunk_tokens: int = LOGPROB_CHUNK_TOKENS):
    """Log-probs ``[M, T]`` of the response tokens (columns ``prompt_width:``) under the
    sampling temperature, and their entropies ``[M, T]`` when asked. The LM head runs on
    response positions only (``logits_to_keep``), not on the prompt, ``chunk_tokens`` of
    them at a time (``chunked_logprobs``; 0 = all at once, ``[M, T, V]`` float32)."""
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    T = input_ids.shape[1] - prompt_width
    # the last T+1 positions: position t predicts token t+1, the last one predicts nothing we score
    return _scored_logprobs(model, input_ids[:, prompt_width:], temperature=temperature, with_entropy=with_entropy,
                            chunk_tokens=chunk_tokens, input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=positions, use_cache=False, logits_to_keep=T + 1)


class PromptPrefill:
    """Distinct prompts run once, their keys/values shared by every response to them.

    ``PromptPrefill(model, prompts)`` runs the U distinct prompts of ``prompts`` (with
    gradients when enabled) and keeps, per layer, their keys/values ``[U, H_kv, P, D]`` and
    the last position's logits ``[U, V]``. ``logprobs(prompts, responses)`` then runs
    responses to any of them on those keys/values: each response's row indexes its
    prompt's (the index's backward sums the responses' gradients into the prompt), so the
    sums are those of the unshared forward, on U*P + M*(T-1) positions instead of M*(P+T).

    ``separate_backward=True`` lets several micro-batches use one prefill, each with its own
    ``loss.backward()``: the responses see detached copies (leaves) that collect gradients,
    and ``backward()`` pushes the collected gradients through the prefill once at the end.
    Otherwise the gradient flows through the prefill in each ``loss.backward()``."""

    def __init__(self, model, prompts: list[list[int]], *, pad_id: int, device, dtype: torch.dtype | None,
                 separate_backward: bool = False):
        self.model, self.pad_id, self.device, self.dtype = model, pad_id, device, dtype
        self.index: dict[tuple[int, ...], int] = {}
        for p in prompts:
            self.index.setdefault(tuple(p), len(self.index))
        ids, attn = (t.to(device) for t in _left_pad([list(p) for p in self.index], pad_id))  # [U, P]
        self.prompt_attn = attn
        cache = Cache(layer_class_to_replicate=_PromptLayer)
        with dist.autocast(device, dtype), _cache_kept_under_checkpointing(model):
            out = model(input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp(min=0),
                        past_key_values=cache, use_cache=False, logits_to_keep=1)
        self.outputs = [t for layer in cache.layers for t in (layer.keys, layer.values)] + [out.logits[:, -1]]
        self.separate = separate_backward and torch.is_grad_enabled()
        # leaves in float32: the micro-batches' gradients add up there, not in a half dtype
        self.inputs = ([t.detach().float().requires_grad_(t.requires_grad) for t in self.outputs] if self.separate
                       else self.outputs)

    def logprobs(self, prompts: list[list[int]], responses: list[list[int]], *, temperature: float,
                 with_entropy: bool = False, chunk_tokens: int = LOGPROB_CHUNK_TOKENS):
        """``(logprobs [M, T], entropy [M, T] or None, response_mask [M, T])`` of ``responses``,
        response i answering ``prompts[i]`` (one of this prefill's); response tokens 1.. are
        scored ``chunk_tokens`` at a time (``chunked_logprobs``)."""
        device = self.device
        own = torch.tensor([self.index[tuple(p)] for p in prompts], dtype=torch.long, device=device)  # [M]
        response_ids, response_mask = (t.to(device) for t in _right_pad(responses, self.pad_id))  # [M, T]
        T = response_ids.shape[1]
        *kv, last = [x[own].to(o.dtype) for x, o in zip(self.inputs, self.outputs)]  # [M, ...]: each response's prompt
        with dist.autocast(device, self.dtype):
            # the prompt's last position predicts response token 0: its logits [M, 1, V] came with the prefill
            logp, entropy = _token_logprobs(last[:, None], response_ids[:, :1], temperature, with_entropy)  # [M, 1]
            if T > 1:  # the last response token is only a target: feed tokens 0..T-2
                cache = Cache(layers=[_PrefixLayer(kv[2 * i], kv[2 * i + 1]) for i in range(len(kv) // 2)])
                attn = torch.cat([self.prompt_attn[own], response_mask[:, :-1].long()], dim=1)  # [M, P+T-1]
                positions = self.prompt_attn.sum(-1)[own][:, None] + torch.arange(T - 1, device=device)  # [M, T-1]
                with _cache_kept_under_checkpointing(self.model):
                    rest, rest_entropy = _scored_logprobs(
                        self.model, response_ids[:, 1:], temperature=temperature, with_entropy=with_entropy,
                        chunk_tokens=chunk_tokens, input_ids=response_ids[:, :-1], attention_mask=attn,
                        position_ids=positions, past_key_values=cache, use_cache=False)  # [M, T-1]
                logp = torch.cat([logp, rest], dim=1)  # [M, T]
                if with_entropy:
                    entropy = torch.cat([entropy, rest_entropy], dim=1)
        return logp, entropy, response_mask

    def backward(self) -> None:
        """With ``separate_backward``: the prompts' share of the gradient, once, after every
        micro-batch's own backward."""
        if not self.separate:
            return
        pairs = [(o, i.grad.to(o.dtype)) for o, i in zip(self.outputs, self.inputs)
                 if o.requires_grad and i.grad is not None]
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        self.outputs = self.inputs = []


class _PromptLayer(DynamicLayer):
    """Holds the keys/values it was last given (a replacement, not an append, so the
    recompute of gradient checkpointing stores the same tensors again)."""

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.values = key_states, value_states
        return key_states, value_states


class _PrefixLayer(DynamicLayer):
    """Fixed keys/values (the prompts', one row per response) put in front of each call's
    own; stores nothing, so a recompute sees the same."""

    def __init__(self, keys, values):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values

    def update(self, key_states, value_states, *args, **kwargs):
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


class _cache_kept_under_checkpointing:
    """transformers drops the cache inside a checkpointed decoder layer, because a layer that
    appends to it would append twice when recomputed. ``_PromptLayer`` and ``_PrefixLayer``
    give the same result on a recompute, so the layers may keep them for this forward."""

    def __init__(self, model):
        self.layers = [m for m in model.modules() if _is_checkpoint_layer(m) and m.gradient_checkpointing]

    def __enter__(self):
        for layer in self.layers:
            layer._can_checkpoint_with_cache = True

    def __exit__(self, *exc):
        for layer in self.layers:
            del layer._can_checkpoint_with_cache  # back to the class's False


def _is_checkpoint_layer(module) -> bool:
    return isinstance(module, GradientCheckpointingLayer)


def can_share_prompts(model) -> bool:
    """Whether the update may run each prompt once for its responses: every layer is full
    (causal) attention, and under gradient checkpointing the decoder layers are
    transformers' ``GradientCheckpointingLayer`` (which can be told to keep the cache),
    checkpointed without re-entrance (re-entrant checkpointing runs the forward without
    gradients, so the prompt keys/values would carry none)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "use_sliding_window", False):
        return False
    if set(getattr(config, "layer_types", None) or ["full_attention"]) != {"full_attention"}:
        return False
    if getattr(model, "is_gradient_checkpointing", False):
        layers = [m for m in model.modules() if _is_checkpoint_layer(m) and m.gradient_checkpointing]
        return bool(layers) and all(
            getattr(getattr(m, "_gradient_checkpointing_func", None), "keywords", {}).get("use_reentrant") is False
            for m in layers)
    return True


@dataclass
class ForwardPlan:
    """How one optimizer step's responses go through the learner (``plan_forward``)."""

    shared: bool  # each prompt runs once per chunk, its keys/values shared by its responses (``PromptPrefill``)
    chunks: list[list[list[int]]]  # chunks of micro-batches of response indices


def plan_forward(model, prompts: list[list[int]], lengths: list[int], micro_batch_size: int, *,
                 share_prompts: bool = True) -> ForwardPlan:
    """Cut responses (``prompts[i]`` answered by a response of ``lengths[i]`` tokens) into
    chunks of micro-batches of ``micro_batch_size``.

    Sharing prompts (asked for, and the model ``can_share_prompts``): a chunk is up to
    ``micro_batch_size`` distinct prompts with all their responses (prompts with long
    responses together); its prompts are prefilled once, and its responses, sorted by
    length (least padding), are cut into micro-batches. A chunk's prefill holds no more
    activations than a micro-batch's prompts did before sharing. Otherwise: one
    micro-batch per chunk, all sorted by length."""
    shared = share_prompts and can_share_prompts(model)
    length = lengths.__getitem__
    if not shared:
        order = sorted(range(len(lengths)), key=length)
        return ForwardPlan(False, [[order[m : m + micro_batch_size]] for m in range(0, len(order), micro_batch_size)])
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prompts):
        by_prompt.setdefault(tuple(p), []).append(i)
    groups = sorted(by_prompt.values(), key=lambda idx: max(map(length, idx)))
    chunks = []
    for c in range(0, len(groups), micro_batch_size):
        order = sorted((i for idx in groups[c : c + micro_batch_size] for i in idx), key=length)
        chunks.append([order[m : m + micro_batch_size] for m in range(0, len(order), micro_batch_size)])
    return ForwardPlan(True, chunks)


class Forward:
    """The one way the learner (or the reference policy) scores responses: log-probs under
    the sampling temperature, entropies, the response mask, for the micro-batches of one
    chunk of a ``ForwardPlan``.

    ``Forward(model, chunk_prompts, shared=...)``: with ``shared`` the chunk's distinct
    prompts run once, now (``PromptPrefill``; ``separate_backward`` lets each micro-batch
    call its own ``loss.backward()``, and ``backward()`` then pushes the prompts' share
    once); else each ``logprobs`` call runs its prompts and responses together. Build it
    under ``torch.no_grad()`` for a frozen model."""

    def __init__(self, model, chunk_prompts: list[list[int]], *, shared: bool, pad_id: int, device,
                 dtype: torch.dtype | None, separate_backward: bool = False, chunk_tokens: int = LOGPROB_CHUNK_TOKENS):
        self.model, self.pad_id, self.device, self.dtype = model, pad_id, device, dtype
        self.chunk_tokens = chunk_tokens  # response tokens the LM head scores at a time (``chunked_logprobs``)
        self.prefill = PromptPrefill(model, chunk_prompts, pad_id=pad_id, device=device, dtype=dtype,
                                     separate_backward=separate_backward) if shared else None

    def logprobs(self, prompts: list[list[int]], responses: list[list[int]], *, temperature: float,
                 with_entropy: bool = False):
        """``(logprobs [M, T], entropy [M, T] or None, response_mask [M, T])``, response i
        answering ``prompts[i]``."""
        if self.prefill is not None:
            return self.prefill.logprobs(prompts, responses, temperature=temperature, with_entropy=with_entropy,
                                         chunk_tokens=self.chunk_tokens)
        input_ids, attn, response_mask, P = collate(prompts, responses, self.pad_id, self.device)
        with dist.autocast(self.device, self.dtype):
            logp, entropy = response_logprobs(self.model, input_ids, attn, P, temperature, with_entropy=with_entropy,
                                              chunk_tokens=self.chunk_tokens)
        return logp, entropy, response_mask

    def backward(self) -> None:
        """After the chunk's last micro-batch: the prompts' share of the gradient (shared, with
        ``separate_backward``); nothing otherwise."""
        if self.prefill is not None:
            self.prefill.backward()


def policy_logprobs(model, prompts: list[list[int]], responses: list[list[int]], *, pad_id: int, device,
                    dtype: torch.dtype | None, temperature: float, with_entropy: bool = False,
                    share_prompts: bool = True, chunk_tokens: int = LOGPROB_CHUNK_TOKENS):
    """One micro-batch through ``Forward``: ``(logprobs [M, T], entropy [M, T] or None,
    response_mask [M, T])``, a prompt shared by several of its responses running once where
    the model ``can_share_prompts``; the LM head scores ``chunk_tokens`` response tokens at
    a time (``chunked_logprobs``; 0 = all at once)."""
    shared = share_prompts and len({tuple(p) for p in prompts}) < len(prompts) and can_share_prompts(model)
    forward = Forward(model, prompts, shared=shared, pad_id=pad_id, device=device, dtype=dtype,
                      chunk_tokens=chunk_tokens)
    return forward.logprobs(prompts, responses, temperature=temperature, with_entropy=with_entropy)
