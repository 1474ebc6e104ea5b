"""The distributed layer, kept thin (nanochat's style): a single process needs no launcher.

Under ``torchrun`` (or ``accelerate launch``) the usual environment variables start a
process group (NCCL on GPU, gloo on CPU). Each rank generates and trains on its share of
the iteration's prompts, and the loss normalisers are global totals (``all_sum``), so the
update equals the single-process one on the same global batch. Two ways to hold the model:
- data parallel (``sharding=none``): every rank has the whole model; gradients are summed
  across ranks before the optimizer step (``sum_gradients``);
- FSDP2 (``sharding=fsdp``, ``shard``): each decoder layer and the rest of the model are
  sharded over ranks (parameters, gradients, optimizer state); backward reduce-scatters
  the *sum* of the gradients (the default would average, which breaks the global
  normaliser). ``iter_full_weights`` gathers whole weights one tensor at a time for the
  generation engine; ``full_state_dict`` gathers the Hugging Face export to rank 0.

The trainer state (float32 master weights of the trained parameters and the optimizer
state) is saved and loaded with ``torch.distributed.checkpoint`` (``save_trainer_state``,
``load_trainer_state``): each rank writes and reads its own shard, nothing is gathered.
"""

from __future__ import annotations

import os
import warnings

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


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; under a launcher with
    several ranks, ``auto``/``cuda`` -> this rank's own GPU (``cuda:LOCAL_RANK``)."""
    if name in ("auto", "cuda") and torch.cuda.is_available():
        if world_size() > 1:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return f"cuda:{local}"
        return "cuda"
    return "cpu" if name == "auto" else name


def autocast(device, dtype: torch.dtype | None):
    """Mixed precision for half dtypes (weights stay float32); a no-op context otherwise."""
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype,
                          enabled=dtype in (torch.bfloat16, torch.float16))


def _comm_device() -> torch.device:
    """NCCL only moves GPU tensors; gloo moves CPU ones."""
    if td.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(value: float) -> float:
    if not _on():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    td.all_reduce(t)
    return t.item()


def all_mean(value: float) -> float:
    return all_sum(value) / world_size()


def sum_gradients(model) -> None:
    """Sum gradients over ranks (one flat buffer, one collective). Nothing to do for an
    FSDP-sharded model: its backward already reduce-scattered the sum."""
    if not _on() or is_sharded(model):
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


# ----------------------------------------------------------------------------- FSDP2
def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def shard(model, *, reshard_after_forward: bool = True):
    """Shard ``model`` in place with FSDP2: one unit per decoder layer (the classes named
    in the model's ``_no_split_modules``), then the root (embeddings, final norm, LM head;
    tied weights stay in one unit). Gradients are reduce-scattered as sums."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    layer_classes = set(getattr(model, "_no_split_modules", None) or [])
    for module in model.modules():
        if type(module).__name__ in layer_classes:
            fully_shard(module, reshard_after_forward=reshard_after_forward)
    fully_shard(model, reshard_after_forward=reshard_after_forward)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # the loss already carries the global normaliser
            module.set_force_sum_reduction_for_comms(True)
    return model


def full_state_dict(model, *, rank0_cpu: bool = False) -> dict[str, torch.Tensor]:
    """The whole weights (a collective when sharded: call it on all ranks). ``rank0_cpu``:
    gathered to rank 0's CPU memory only (for checkpoints; other ranks get an empty dict)."""
    if not is_sharded(model):
        return {k: v.detach() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=rank0_cpu))


def iter_full_weights(model, dtype: torch.dtype | None = None):
    """Yield ``(name, whole tensor)`` one parameter at a time, so syncing a sharded learner
    into the generation engine never holds more than one gathered tensor (a collective per
    tensor when sharded: every rank must consume the whole iterator)."""
    for name, value in model.state_dict().items():
        if hasattr(value, "full_tensor"):
            value = value.full_tensor()
        value = value.detach()
        yield name, value.to(dtype) if dtype is not None else value


def _trainer_state(model, optimizer) -> dict:
    """``{"model": trained parameters, "optimizer": its state}``, keyed by parameter name;
    under FSDP every tensor is this rank's shard (a DTensor), otherwise the whole tensor."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer, options=StateDictOptions(ignore_frozen_params=True))
    return {"model": model_state, "optimizer": optim_state}


def save_trainer_state(model, optimizer, path) -> None:
    """Write the trained parameters (float32 masters) and the optimizer state to the folder
    ``path`` with torch.distributed.checkpoint, on every rank (a collective): one file per
    rank holding its shard (replicated tensors of a data-parallel run are split between the
    ranks' files) plus ``.metadata``. Nothing is gathered to rank 0."""
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():  # "assuming the intent is to save in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(_trainer_state(model, optimizer), checkpoint_id=str(path), no_dist=not _on())


def load_trainer_state(model, optimizer, path) -> None:
    """Inverse of ``save_trainer_state`` (a collective): each rank reads only what its shard
    needs, into the model's parameters and the optimizer. The number of ranks may differ
    from the saving run's (the checkpoint is resharded on load)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    state = _trainer_state(model, optimizer)  # the structure to fill, on this rank's devices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.load(state, checkpoint_id=str(path), no_dist=not _on())
    # not strict: frozen parameters (LoRA's base) are not in the state; dcp.load has already
    # refused a checkpoint that lacks any of the trained ones
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=StateDictOptions(ignore_frozen_params=True, strict=False))


def all_gather_object(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (picklable objects; ``[obj]`` in one process)."""
    if not _on():
        return [obj]
    out = [None] * world_size()
    td.all_gather_object(out, obj)
    return out


def grad_norm(model, max_norm: float) -> float:
    """Global gradient norm, clipping to ``max_norm`` when > 0 (works on sharded grads)."""
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)
