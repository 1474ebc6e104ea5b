"""The toy world: a synthetic arithmetic task and a tiny base model pretrained on it.

``load_split("train" | "test")`` returns the shipped question splits; ``--model toy``
resolves to the shipped checkpoint (``drzero/toy/checkpoint``, built by
``drzero toy build``; see its model card for measured behaviour).
"""

from __future__ import annotations

import json
from pathlib import Path

from drzero.errors import DrZeroError

DATA_DIR = Path(__file__).parent / "data"


def load_split(split: str) -> list[dict]:
    path = DATA_DIR / f"{split}.jsonl"
    if not path.exists():
        raise DrZeroError(f"unknown toy split {split!r}; choose train or test")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
