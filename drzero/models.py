"""Policies: loading (``toy``, a local folder or a hub name), LoRA adapters, and the
learner's forward pass, response log-probabilities.

Shapes: ``M`` responses in a micro-batch, ``P`` prompt tokens (left-padded), ``T``
response tokens (right-padded), ``V`` vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import torch

from drzero import dist
from drzero.config import BUNDLED_MODELS, TOY_CHECKPOINT, TOY_V2_CHECKPOINT, check_model  # noqa: F401 - re-exported
from drzero.errors import DrZeroError


def resolve_model_path(name: str) -> str:
    """``toy`` / ``toy-v2`` -> the bundled checkpoint; an existing folder -> itself, checked (config,
    tokenizer files, intact weights: ``config.check_model``); else a hub name."""
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


def response_logprobs(model, input_ids, attention_mask, prompt_width: int, temperature: float, with_entropy=False):
    """Log-probs ``[M, T]`` of the response tokens (columns ``prompt_width:``) under the
    sampling temperature, and their entropies ``[M, T]`` when asked. The LM head runs on
    response positions only (``logits_to_keep``), not on the prompt."""
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


def policy_logprobs(model, prompts: list[list[int]], responses: list[list[int]], *, pad_id: int, device,
                    dtype: torch.dtype | None, temperature: float, with_entropy: bool = False):
    """The learner's forward on a micro-batch of (prompt, response) token lists, in ``dtype``
    under autocast: ``(logprobs [M, T], entropy [M, T] or None, response_mask [M, T])``."""
    input_ids, attn, response_mask, P = collate(prompts, responses, pad_id, device)
    with dist.autocast(device, dtype):
        logp, entropy = response_logprobs(model, input_ids, attn, P, temperature, with_entropy=with_entropy)
    return logp, entropy, response_mask
