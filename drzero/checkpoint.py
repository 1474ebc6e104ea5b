"""Run checkpoints: ``RUN/checkpoints/step-XXXXXX/`` in Hugging Face format plus the
trainer state, and ``RUN/checkpoints/latest`` naming the newest complete one.

A checkpoint is written into a temporary folder, fsynced, renamed into place, and only then
is ``latest`` replaced (write-then-rename), so a kill at any moment leaves the last good
checkpoint intact. ``trainer_state.pt`` holds the optimizer, scheduler and RNG states and
whatever else the trainer passes in ``trainer_state``; ``trainer_state.json`` is its
readable summary.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

LATEST = "latest"
STATE_FILE = "trainer_state.pt"


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(run_dir: Path, step: int, model, tokenizer, *, trainer_state: dict, keep: int,
         model_state: dict | None = None) -> Path:
    """Write ``checkpoints/step-{step:06d}`` atomically, point ``latest`` at it and keep the
    ``keep`` newest. ``model_state``: the whole weights, when the model itself is sharded."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "peft_config"):  # LoRA: the adapter (to resume) and merged weights (HF format, for eval/serving)
        model.save_pretrained(tmp / "adapter")
        copy.deepcopy(model).merge_and_unload().save_pretrained(tmp, safe_serialization=True)
    else:
        if model_state is not None:  # gathered whole weights: leave out tied duplicates (lm_head = embeddings)
            tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - {n for n, _ in model.named_parameters()}
            model_state = {k: v for k, v in model_state.items() if k not in tied}
        model.save_pretrained(tmp, safe_serialization=True, state_dict=model_state)
    tokenizer.save_pretrained(tmp)
    torch.save({"step": step, "rng": rng_state(), **trainer_state}, tmp / STATE_FILE)
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step}, indent=2))
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer_tmp = root / f".{LATEST}.tmp"
    pointer_tmp.write_text(final.name)
    os.replace(pointer_tmp, root / LATEST)
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / STATE_FILE).exists() else None


def load_state(checkpoint: Path) -> dict:
    """The trainer state saved beside the weights."""
    return torch.load(checkpoint / STATE_FILE, weights_only=False)


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop lines logged after the checkpoint a run resumes from (they will be redone)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= max_step]
    path.write_text("".join(line + "\n" for line in keep))
