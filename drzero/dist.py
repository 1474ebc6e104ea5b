"""The distributed layer, kept thin (nanochat's style): a single process needs no launcher.

Under ``torchrun`` (or ``accelerate launch``) the usual environment variables start a
process group (NCCL on GPU, gloo on CPU). Data parallelism is done by hand: each rank
generates and trains on its share of the iteration's prompts, the loss normalisers are
global totals (``all_sum``), and gradients are summed across ranks before the optimizer
step, so the update equals the single-process one on the same global batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as td


def init() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not td.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        td.init_process_group(backend=backend)


def _on() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if _on() else 0


def world_size() -> int:
    return td.get_world_size() if _on() else 1


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    if is_main():
        print(*args, **kwargs, flush=True)


def device_for_rank(name: str) -> str:
    if name in ("auto", "cuda") and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu" if name == "auto" else name


def all_sum(value: float) -> float:
    if not _on():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    td.all_reduce(t)
    return t.item()


def all_mean(value: float) -> float:
    return all_sum(value) / world_size()


def sum_gradients(model) -> None:
    """Sum gradients over ranks (one flat buffer, one collective)."""
    if not _on():
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    td.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier() -> None:
    if _on():
        td.barrier()
