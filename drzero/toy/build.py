"""Build the toy base model from scratch: corpus -> tokenizer -> Qwen2 model -> pretraining
-> Hugging Face checkpoint with a model card of measured numbers.

    drzero toy build --output DIR [--seed 0] [--steps 600]

Deterministic for a given seed on a given machine (CPU, 2 threads). The shipped
checkpoint (``drzero/toy/checkpoint``) was made with the defaults.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from drzero.toy.task import corpus, make_split

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PLAIN_ADDED = ["<think>", "</think>", "<answer>", "</answer>", "\\boxed"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class BuildConfig:
    output: str
    seed: int = 0
    n_docs: int = 60_000
    vocab_size: int = 512
    hidden_size: int = 192
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 512
    block_size: int = 256
    batch_size: int = 32
    steps: int = 600
    lr: float = 3e-3
    warmup: int = 30
    train_rows: int = 6000
    test_rows: int = 500
    card: bool = True  # measure and write the model card


def build_tokenizer(docs: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=2048
    )
    fast.add_tokens(PLAIN_ADDED)
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _blocks(docs: list[str], tokenizer, block_size: int) -> torch.Tensor:
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(eos)
    n = len(ids) // block_size
    return torch.tensor(ids[: n * block_size]).view(n, block_size)


def build(cfg: BuildConfig, log=print) -> Path:
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    t0 = time.time()
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    docs = corpus(cfg.n_docs, cfg.seed)
    tokenizer = build_tokenizer(docs, cfg.vocab_size)
    data = _blocks(docs, tokenizer, cfg.block_size)
    log(f"corpus: {len(docs)} documents, {data.numel():,} tokens, vocab {len(tokenizer)}")

    model_cfg = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=max(1, cfg.heads // 2),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(model_cfg)
    log(f"model: Qwen2, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, data.shape[0], (cfg.batch_size,), generator=gen)
        batch = data[idx]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == cfg.steps - 1:
            log(f"pretrain step {step:4d}/{cfg.steps}  loss {loss.item():.3f}  lr {lr:.2e}  {time.time() - t0:.0f}s")

    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "build_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log(f"saved checkpoint to {out} ({time.time() - t0:.0f}s)")
    if cfg.card:
        from drzero.toy.card import write_model_card

        write_model_card(out, log=log)
        log(f"model card written ({time.time() - t0:.0f}s)")
    return out


def write_splits(directory: Path, seed: int = 1234, train_rows: int = 6000, test_rows: int = 500) -> None:
    """The fixed train/test question splits shipped with the package (JSONL): unique
    questions, the test split disjoint from the train split."""
    directory.mkdir(parents=True, exist_ok=True)
    test, seen = [], set()
    for r in make_split(test_rows * 4, seed + 1):
        if r["problem"] not in seen and len(test) < test_rows:
            seen.add(r["problem"])
            test.append(r)
    train = []
    for r in make_split(train_rows * 6, seed):
        if r["problem"] not in seen and len(train) < train_rows:
            seen.add(r["problem"])
            train.append(r)
    for name, rows in (("train", train), ("test", test)):
        with open(directory / f"{name}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
