"""What a command reads and writes, checked on disk before anything is loaded or written:
model folders (config.json, tokenizer files, intact safetensors), output folders and
server URLs. No network, no config objects: ``models``, ``rollout`` and ``judge`` use these
checks without importing ``drzero.config`` (``drzero.parsing.check_inputs`` applies them
to each command's settings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from drzero.data import hub_offline
from drzero.errors import DrZeroError
from drzero.paths import check_path_fits


def check_output_path(path: str, flag: str = "--output") -> None:
    """Refuse an output folder that cannot be made or written to, before anything is loaded
    or written: ``path`` is a file, lies under a file, or its nearest existing folder is not
    writable. Creates nothing. Every command that writes calls it on its output folder."""
    check_path_fits(Path(path).expanduser(), flag)  # names and length the file system can hold (drzero.paths)
    p = Path(path).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise DrZeroError(f"{flag} {path}: is a file, not a folder")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DrZeroError(f"{flag} {path}: {existing} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DrZeroError(f"{flag} {path}: {existing} is not writable")


TOY_CHECKPOINT = Path(__file__).parent / "toy" / "checkpoint"
TOY_V2_CHECKPOINT = Path(__file__).parent / "toy" / "checkpoint-v2"
# bundled model names -> their checkpoint folders: ``toy`` is the default; ``toy-v2`` is toy
# world v2 (re-check loops after a visible slip; docs/toy.md), trained on ``toy-v2:train``
BUNDLED_MODELS = {"toy": TOY_CHECKPOINT, "toy-v2": TOY_V2_CHECKPOINT}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model", "qwen.tiktoken", "tiktoken.model")


def check_model(name: str, flag: str = "--model") -> str:
    """The folder (or hub name) ``name`` stands for, checked without loading it: a local
    folder needs config.json, tokenizer files and intact weights (a safetensors file cut
    short is caught from its header); a hub name in offline mode must be in the cache."""
    if name in BUNDLED_MODELS:
        path = BUNDLED_MODELS[name]
        if not (path / "config.json").exists():
            raise DrZeroError(f"the {name} checkpoint is missing at {path}; rebuild it with `drzero toy build`")
    else:
        path = Path(name).expanduser()
        if not path.exists():
            if name.startswith((".", "/", "~")) or name.count("/") > 1 or not name.strip():
                raise DrZeroError(f"model path {name!r} does not exist")
            if hub_offline():
                from huggingface_hub import try_to_load_from_cache

                if not isinstance(try_to_load_from_cache(name, "config.json"), str):
                    raise DrZeroError(f"{flag} {name}: offline mode (HF_HUB_OFFLINE=1) and the model is not in the "
                                      "local Hugging Face cache; download it first or give a local folder")
            return name
    if not path.is_dir():
        raise DrZeroError(f"model path {name!r} is a file; give the checkpoint folder")
    if not (path / "config.json").exists():
        raise DrZeroError(f"model path {name!r} has no config.json (not a Hugging Face checkpoint folder)")
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        raise DrZeroError(f"model {name!r} has no tokenizer files (none of {', '.join(TOKENIZER_FILES[:4])}, ...); "
                          "copy the tokenizer into the checkpoint folder")
    _check_weights(path, name)
    return str(path)


def _check_weights(path: Path, name: str) -> None:
    index = path / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError, UnicodeDecodeError):
            raise DrZeroError(f"model {name!r}: {index.name} is not a valid weight index") from None
        for shard in shards:
            if not (path / shard).exists():
                raise DrZeroError(f"model {name!r}: weight shard {shard} (listed in {index.name}) is missing")
            _check_safetensors(path / shard, name)
    elif (path / "model.safetensors").exists():
        _check_safetensors(path / "model.safetensors", name)
    elif not any((path / f).exists() for f in ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        raise DrZeroError(f"model {name!r} has no weights (model.safetensors or pytorch_model.bin)")


def _check_safetensors(file: Path, name: str) -> None:
    """The file is as long as its header says (a copy or download cut short is not)."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if size < 8 or header_len > size - 8:
                raise ValueError
            header = json.loads(f.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
        raise DrZeroError(f"model {name!r}: {file.name} is damaged (unreadable safetensors header; "
                          "a copy or download cut short?)") from None
    if size < 8 + header_len + end:
        raise DrZeroError(f"model {name!r}: {file.name} is truncated ({size} bytes, its header needs "
                          f"{8 + header_len + end}); copy or download it again")


def check_url(url: str, flag: str) -> None:
    """An http(s) URL with a host, e.g. http://localhost:8000/v1."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DrZeroError(f"{flag} {url!r} is not an http(s) URL; write it in full, e.g. http://localhost:8000/v1")
