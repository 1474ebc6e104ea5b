"""Loading policies: ``toy`` (the bundled checkpoint), a local folder, or a hub name."""

from __future__ import annotations

from pathlib import Path

from drzero.errors import DrZeroError

TOY_CHECKPOINT = Path(__file__).parent / "toy" / "checkpoint"


def resolve_model_path(name: str) -> str:
    """``toy`` -> the bundled checkpoint; an existing path -> itself; else a hub name."""
    if name == "toy":
        if not (TOY_CHECKPOINT / "config.json").exists():
            raise DrZeroError(f"the toy checkpoint is missing at {TOY_CHECKPOINT}; rebuild it with `drzero toy build`")
        return str(TOY_CHECKPOINT)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise DrZeroError(f"model path {name!r} has no config.json (not a Hugging Face checkpoint folder)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise DrZeroError(f"model path {name!r} does not exist")
    return name


def load_model_and_tokenizer(name: str, *, dtype: str = "auto", device: str = "cpu"):
    """``(model, tokenizer)`` for a model name/path (see ``resolve_model_path``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name)
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DrZeroError(f"cannot load model {name!r}: {first[:300]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer
