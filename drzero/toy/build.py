"""Build a toy base model: question splits -> corpus -> tokenizer (from scratch) or the
--init checkpoint's -> Qwen2 model -> pretraining -> Hugging Face checkpoint with a model
card of measured numbers.

    drzero toy build --output DIR        # the shipped toy-v2 model (drzero/toy/checkpoint-v2)
    drzero toy build --output DIR --init ""   # from scratch (see below)

writes the checkpoint to DIR and the question splits to DIR/splits/{train,test}.jsonl
(the card is measured on that test split). Deterministic for a given seed on a given
machine and thread count. This code builds toy world v2 (``task.py``); the defaults
(``drzero.config.ToyBuildConfig``) are the shipped ``toy-v2`` build, a warm start from the
default toy model: 400 steps of packed 32 x 256-token blocks at lr 1e-3 on one thread
(12.6 minutes on one busy core). From scratch, 800 steps on the v2 corpus did not teach the
1.7M model to read the question's numbers (greedy accuracy ~5%). The default ``toy``
checkpoint (``drzero/toy/checkpoint``, ``drzero/data/toy``) was built by the v1 task code,
in git history before toy world v2.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch

from drzero.config import ToyBuildConfig
from drzero.toy.task import SolutionStyle, corpus, make_splits

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PLAIN_ADDED = ["<think>", "</think>", "<answer>", "</answer>", "\\boxed"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(docs: list[str], vocab_size: int):
    """Byte-level BPE with digits split individually. Keep them split: ``AutoTokenizer``
    loads a Qwen2 checkpoint's tokenizer as ``Qwen2Tokenizer``, whose own pre-tokenizer
    splits digits, so a vocabulary with whole-number tokens trains on ids that inference
    never produces (a build that tried it read no question correctly)."""
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
    """The documents, each ending in EOS, concatenated and cut into rows of ``block_size``."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for enc in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(eos)
    n = len(ids) // block_size
    return torch.tensor(ids[: n * block_size]).view(n, block_size)


def _doc_batches(docs: list[str], tokenizer, max_len: int, batch_size: int, seed: int):
    """Token rows (one document each, ending in EOS, cut at ``max_len``) and batches of
    row indices with similar lengths. Each document starts at position 0 on its own row,
    as a prompt does at inference: packed blocks let the model copy numbers from earlier
    documents in the block, and it then misread its own question."""
    eos = tokenizer.eos_token_id
    rows = [ids[: max_len - 1] + [eos] for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]]
    rng = random.Random(seed)
    order = list(range(len(rows)))
    rng.shuffle(order)
    batches = []
    chunk = 50 * batch_size  # sort within chunks: little padding, still mixed document kinds
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(rows[i]))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return rows, batches


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask, ids.masked_fill(mask == 0, -100)


def build(cfg: ToyBuildConfig, log=print) -> Path:
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    t0 = time.time()
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    _, test_rows = write_splits(out / "splits", cfg.splits_seed, cfg.train_rows, cfg.test_rows)
    style = SolutionStyle()
    docs = corpus(cfg.n_docs, cfg.seed, style=style)
    if cfg.init:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from drzero.models import resolve_model_path

        init = resolve_model_path(cfg.init)
        # the tokenizer class inference will load (AutoTokenizer), so training sees the same ids
        tokenizer = AutoTokenizer.from_pretrained(init)
    else:
        tokenizer = build_tokenizer(docs, cfg.vocab_size)
    if cfg.packed:
        data = _blocks(docs, tokenizer, cfg.block_size)
        gen = torch.Generator().manual_seed(cfg.seed)
        log(f"corpus: {len(docs)} documents, {data.numel():,} tokens in blocks of {cfg.block_size}, vocab {len(tokenizer)}")
    else:
        rows, batches = _doc_batches(docs, tokenizer, cfg.block_size, cfg.batch_size, cfg.seed)
        log(f"corpus: {len(docs)} documents, {sum(map(len, rows)):,} tokens, vocab {len(tokenizer)}")

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
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32) if cfg.init else Qwen2ForCausalLM(model_cfg)
    log(f"model: Qwen2, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        if cfg.packed:
            batch = data[torch.randint(0, data.shape[0], (cfg.batch_size,), generator=gen)]
            loss = model(input_ids=batch, labels=batch).loss
        else:
            ids, mask, labels = _pad([rows[i] for i in batches[step % len(batches)]], tokenizer.pad_token_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
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
    (out / "build_config.json").write_text(json.dumps({**asdict(cfg), "style": asdict(style)}, indent=2))
    log(f"saved checkpoint to {out} ({time.time() - t0:.0f}s)")
    if cfg.card:
        from drzero.toy.card import write_model_card

        write_model_card(out, test_rows, log=log)
        log(f"model card written ({time.time() - t0:.0f}s)")
    return out


def write_splits(directory: Path, seed: int = 1234, train_rows: int = 6000, test_rows: int = 500):
    """Write the fixed train/test question splits (``task.make_splits``) as JSONL into
    ``directory``; returns them. The shipped ``drzero/data/toy`` files are this output."""
    directory.mkdir(parents=True, exist_ok=True)
    train, test = make_splits(seed, train_rows, test_rows)
    for name, rows in (("train", train), ("test", test)):
        with open(directory / f"{name}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return train, test
