"""The shipped toy checkpoint loads with plain transformers and generates."""

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from drzero.models import TOY_CHECKPOINT, resolve_model_path


def test_shipped_checkpoint_loads_and_generates():
    path = resolve_model_path("toy")
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("What is 3 + 4?\n", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:])
    assert out.shape[1] > ids["input_ids"].shape[1] and text.strip()
    assert model.config.model_type in ("qwen2", "llama")
    assert sum(f.stat().st_size for f in TOY_CHECKPOINT.iterdir()) < 20 * 1024 * 1024
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True).endswith("assistant\n")


def test_model_card_numbers_meet_targets():
    m = json.loads((TOY_CHECKPOINT / "measurements.json").read_text())
    t = m["templates"]
    best = max(v["greedy_accuracy"] for v in t.values())
    assert 0.2 <= best <= 0.6
    assert m["sampled"]["pass@8"] >= 0.7
    rates = [v["answering_rate"] for v in t.values()]
    assert min(rates) < 0.5 and max(rates) > 0.9
    assert 0.02 <= m["sampled"]["reflection_keyword_rate"] <= 0.30
    assert (TOY_CHECKPOINT / "README.md").read_text().count("|") > 10
