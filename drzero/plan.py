"""``drzero plan``: memory per GPU and time for a training recipe, before launch.

    drzero plan --config qwen2.5-math-1.5b-dr_grpo --gpus 8 --gpu A100-40G
    drzero plan --config qwen2.5-math-7b-dr_grpo --gpus 8 --gpu A100-80G --response-tokens 700
    drzero plan --config my.yaml --gpu H100-80G --micro-batch-size 16    # any train flag overrides the recipe

The model's shape comes from its ``config.json`` (a local folder or the Hugging Face cache;
nothing is downloaded) or, for the models the bundled recipes name, from ``MODEL_SHAPES``.
Memory is counted per rank, part by part, in the order the trainer holds it (``train.py``):
float32 master weights, float32 gradients and AdamW moments (split over the ranks under
``sharding: fsdp``, whole under data parallel), the compute-dtype weight copies autocast
keeps while a forward runs, activations of one micro-batch (with or without gradient
checkpointing), the LM head's chunk of log-probs, and the generation engine (vLLM's share
of the GPU while awake and the KV cache the iteration's tokens need; the Hugging Face
engine's KV cache). Time: decode steps bound by memory bandwidth (weights plus KV-cache
reads per step), prefill and training from FLOPs at a stated MFU. Every assumption is
printed, one per line.

``check_at_start(cfg)`` is the same estimate run by ``drzero train`` at start-up: on GPUs a
config that cannot fit is refused (``DrZeroError``, exit 2) naming the micro-batch that
would fit; on a CPU it prints one line and goes on.

Calibration (one-iteration CPU runs on random-init models of real shapes) and the paper
checks are in docs/scaling.md. Units: GiB = 2**30 bytes; TFLOP/s and TB/s are 10**12.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from drzero.errors import DrZeroError

GiB = 2**30

# config.json values (architecture only) of the models the bundled recipes name, so that the
# plan works offline; a local folder or the hub cache wins when it has the file.
MODEL_SHAPES = {
    "Qwen/Qwen2.5-Math-1.5B": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                   num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                   tie_word_embeddings=True),
    "Qwen/Qwen2.5-Math-7B": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                 num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                                 tie_word_embeddings=False),
}

# name -> (memory GiB, dense bf16 TFLOP/s, memory bandwidth TB/s, collective bandwidth per GPU GB/s):
# vendors' data sheets (SXM parts); the last is what an all-gather reaches over NVLink (PCIe cards: ~20)
GPUS = {
    "A100-40G": (40.0, 312.0, 1.555, 230.0),
    "A100-80G": (80.0, 312.0, 2.039, 230.0),
    "H100-80G": (79.6, 989.0, 3.35, 360.0),
    "H100-PCIe": (79.6, 756.0, 2.0, 20.0),
    "H200": (140.4, 989.0, 4.8, 360.0),
    "B200": (179.0, 2250.0, 8.0, 720.0),
    "L40S": (44.4, 362.0, 0.864, 20.0),
    "L4": (22.0, 121.0, 0.3, 16.0),
    "A10G": (22.0, 70.0, 0.6, 16.0),
}

# Measured on the 2-core CPU machine (docs/scaling.md, "Calibration"): bytes saved for backward per
# token and decoder layer, beyond the MLP's four [tokens, intermediate] tensors, in units of hidden
# size (RMSNorm's float32 inputs, q/k/v, rotary copies, attention output, residuals)
ACT_PER_HIDDEN = {4: 42.4, 2: 35.8}
CPU_RUNTIME_GIB = 0.9  # python + torch + transformers + tokenizer, resident before any model (measured)
GPU_RUNTIME_GIB = 1.5  # CUDA context, NCCL buffers, allocator fragmentation (assumed)
VLLM_WORKSPACE_GIB = 1.5  # vLLM's activation profile and CUDA graphs inside its share (assumed)
VLLM_ASLEEP_GIB = 1.0  # what a sleeping vLLM keeps on the GPU (level 1: weights to CPU, KV dropped; assumed)


# ----------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's sizes (Qwen2/Llama family)."""

    name: str
    hidden: int  # d
    layers: int  # L
    heads: int  # h
    kv_heads: int
    head_dim: int
    intermediate: int  # i (SwiGLU MLP)
    vocab: int  # V
    tied: bool  # LM head shares the embedding matrix
    qkv_bias: bool
    source: str  # where the numbers came from

    @property
    def layer_params(self) -> int:
        d, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attn = d * q + 2 * d * kv + q * d + ((q + 2 * kv) if self.qkv_bias else 0)
        return attn + 3 * d * self.intermediate + 2 * d

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def params(self) -> int:
        """All parameters (a tied LM head counted once)."""
        return self.layers * self.layer_params + self.embed_params * (1 if self.tied else 2) + self.hidden

    @property
    def body_params(self) -> int:
        """Parameters that run on every token, LM head and embeddings aside."""
        return self.layers * self.layer_params

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        return self.layers * 2 * self.kv_heads * self.head_dim * dtype_bytes


def shape_from_config(config: dict, name: str, source: str) -> ModelShape:
    try:
        d, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        return ModelShape(
            name=name, hidden=d, layers=int(config["num_hidden_layers"]), heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or d // heads), intermediate=int(config["intermediate_size"]),
            vocab=int(config["vocab_size"]), tied=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=config.get("model_type") == "qwen2" or bool(config.get("attention_bias", False)),
            source=source)
    except (KeyError, TypeError, ValueError) as e:
        raise DrZeroError(f"model {name!r}: its config ({source}) is not a decoder shape drzero plan can read "
                          f"({type(e).__name__}: {e})") from None


def read_model_shape(name: str) -> ModelShape:
    """The shape of ``name`` without downloading anything: ``config.json`` of a bundled or
    local folder, else of the hub cache, else ``MODEL_SHAPES``; otherwise a one-line error."""
    from drzero.inputs import BUNDLED_MODELS

    path = BUNDLED_MODELS.get(name, Path(name).expanduser())
    file = None
    if path.is_dir():
        file = path / "config.json"
        if not file.is_file():
            raise DrZeroError(f"model {name!r}: no config.json in {path}; drzero plan needs the model's shape")
    elif name.startswith((".", "/", "~")) or path.exists():
        raise DrZeroError(f"model {name!r}: not a model folder; drzero plan needs its config.json")
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
        except Exception:  # noqa: BLE001 - a malformed repo id: fall through to the table
            cached = None
        if isinstance(cached, str):
            file = Path(cached)
    if file is not None:
        try:
            config = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DrZeroError(f"model {name!r}: cannot read {file} ({type(e).__name__})") from None
        if not isinstance(config, dict):
            raise DrZeroError(f"model {name!r}: {file} is not a JSON object")
        return shape_from_config(config.get("text_config", config), name, str(file))
    if name in MODEL_SHAPES:
        return shape_from_config(MODEL_SHAPES[name], name, "drzero's built-in table (config.json values)")
    raise DrZeroError(f"model {name!r}: no config.json in a local folder or the Hugging Face cache, and not in "
                      f"drzero's table ({', '.join(MODEL_SHAPES)}); download its config.json or give a local folder")


# ----------------------------------------------------------------------------- hardware
@dataclass(frozen=True)
class Device:
    name: str
    memory_gib: float
    tflops: float  # dense peak in the compute dtype
    bandwidth_tbs: float  # memory bandwidth
    link_gbs: float  # collective bandwidth per GPU
    is_cpu: bool = False


def host_memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 / GiB
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / GiB


def resolve_device(gpu: str, memory: float | None = None, tflops: float | None = None,
                   bandwidth: float | None = None) -> Device:
    """A row of ``GPUS`` (case-insensitive; ``cpu`` = this machine's memory), with overrides."""
    if gpu.lower() == "cpu":  # rough CPU speeds; only the memory is calibrated (docs/scaling.md)
        base = Device("cpu", host_memory_gib(), 0.1, 0.01, 1.0, is_cpu=True)
    else:
        key = next((k for k in GPUS if k.lower() == gpu.lower()), None)
        if key is not None:
            base = Device(key, *GPUS[key])
        elif memory and tflops and bandwidth:
            base = Device(gpu, memory, tflops, bandwidth, 20.0)
        else:
            raise DrZeroError(f"--gpu {gpu!r}: unknown GPU; known: {', '.join(GPUS)}, cpu (or describe it with "
                              "--gpu-memory, --gpu-tflops and --gpu-bandwidth)")
    return dataclasses.replace(base, memory_gib=memory or base.memory_gib, tflops=tflops or base.tflops,
                               bandwidth_tbs=bandwidth or base.bandwidth_tbs)


def device_from_cuda(index: int = 0) -> Device:
    """The visible GPU: its real memory, and the table's speeds for its name (A100's otherwise)."""
    import torch

    props = torch.cuda.get_device_properties(index)
    name = props.name.upper()
    speeds = GPUS["A100-80G"]
    for key in ("H200", "H100", "B200", "A100", "L40S", "L4", "A10G"):
        if key in name:
            speeds = next(v for k, v in GPUS.items() if k.startswith(key))
            break
    return Device(props.name, props.total_memory / GiB, *speeds[1:])


# ----------------------------------------------------------------------------- the estimate
@dataclass(frozen=True)
class Assumptions:
    mfu: float = 0.4  # of the dense peak, for prefill and training FLOPs
    bandwidth_efficiency: float = 0.7  # of the peak memory bandwidth, for decode steps
    prompt_tokens: int = 256  # per prompt (memory: every prompt this long)
    response_tokens: int | None = None  # mean response length for time (default: the budget)
    questions: int | None = None  # training questions, for max_epochs


@dataclass
class Part:
    name: str
    gib: float
    note: str
    phases: tuple[str, ...]  # "gen" (engine awake), "update" (forward/backward), "step" (optimizer step)
    steady: bool = False  # exists only from the first optimizer step on (AdamW moments)


@dataclass
class Estimate:
    shape: ModelShape
    device: Device
    ranks: int
    micro_per_rank: int
    parts: list[Part]
    peaks: dict[str, float]  # phase -> GiB (steady state)
    first_peak: float  # the first iteration's peak (no AdamW moments before its optimizer step)
    fits: bool
    why: str  # what does not fit, when it does not
    best_micro: int | None  # largest micro-batch per rank that fits (None: not even 1)
    times: dict[str, float]  # seconds per iteration (and eval per evaluation)
    iterations: int | None
    evals: int
    total_s: float | None
    notes: list[str]

    @property
    def peak(self) -> float:
        return max(self.peaks.values())


def _bytes(dtype: str) -> int:
    return 2 if dtype in ("bfloat16", "float16") else 4


def lora_params(shape: ModelShape, rank: int) -> int:
    """LoRA on every linear of the decoder layers (``all-linear``): r * (in + out) each."""
    d, q, kv, i = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate
    return shape.layers * rank * ((d + q) * 2 + 2 * (d + kv) + 3 * (d + i))


def activation_bytes(shape: ModelShape, tokens: int, response_tokens: int, b: int, checkpointing: bool,
                     chunk: int) -> tuple[float, float]:
    """(decoder-layer activations, LM-head) bytes held at the peak of one micro-batch's
    backward. ``tokens`` run through the layers, ``response_tokens`` through the LM head."""
    d, i, L = shape.hidden, shape.intermediate, shape.layers
    per_layer_token = 4 * i * b + ACT_PER_HIDDEN[b] * d  # saved for backward, one layer, one token
    if checkpointing:  # each layer's float32 input, plus one layer recomputed and its gradients
        layers = L * tokens * 4 * d + 2 * tokens * per_layer_token
    else:  # every layer's saved tensors, plus one layer's gradients in flight
        layers = (L + 1) * tokens * per_layer_token
    layers += 2 * tokens * d * 4  # embeddings' output and the gradient flowing back (float32 residual stream)
    # LM head (models.chunked_logprobs): the final hidden states it saves [M*T, d] and their gradient;
    # two float32 [chunk, V] tensors at a time (k = 2, measured by bench/memory.py; unchunked, with
    # logprob_chunk_tokens 0, about four [M*T, V]); the head weight's float32 gradient [V, d] (and its
    # compute-dtype copies when half)
    rows, copies = (min(chunk, response_tokens), 2) if chunk > 0 else (response_tokens, 4)
    head = (response_tokens * d * (4 + 4 + b) + rows * shape.vocab * copies * 4
            + shape.vocab * d * (4 + (4 if b == 2 else 0)))
    return layers, head


def estimate(cfg, shape: ModelShape, device: Device, ranks: int, a: Assumptions = Assumptions(),
             micro_per_rank: int | None = None, search: bool = True) -> Estimate:
    """Memory per rank and time per iteration of ``cfg`` (a TrainConfig) on ``ranks`` x ``device``;
    ``search``: also the largest micro-batch that fits, and the time (else memory only)."""
    from drzero.config import resolved_micro_batch_size

    b = _bytes(cfg.dtype)
    sharded = cfg.sharding == "fsdp" and ranks > 1
    P_all = shape.params
    N = cfg.prompts_per_step * cfg.group_size
    n_rank, u_rank = N // ranks, max(1, cfg.prompts_per_step // ranks)
    train_batch = cfg.train_batch_size or N
    updates = (N // train_batch) * cfg.ppo_epochs
    M = micro_per_rank or max(1, resolved_micro_batch_size(cfg) // ranks)
    P, T = a.prompt_tokens, cfg.max_new_tokens
    chunk = cfg.logprob_chunk_tokens or 0
    vllm = cfg.engine == "vllm" and not device.is_cpu
    notes: list[str] = []

    parts, trained, kv_tok, kv_avail = _memory_parts(cfg, shape, device, ranks, b=b, sharded=sharded, M=M, P=P, T=T,
                                                     chunk=chunk, vllm=vllm, n_rank=n_rank, u_rank=u_rank)

    def phase_peak(phase: str, steady: bool = True) -> float:
        return sum(p.gib for p in parts if phase in p.phases and (steady or not p.steady))

    peaks = {ph: phase_peak(ph) for ph in ("gen", "update", "step")}
    first = max(phase_peak("gen", False), phase_peak("update", False), phase_peak("step"))
    fits, why = True, ""
    worst = max(peaks, key=peaks.get)
    if peaks[worst] > device.memory_gib:
        fits = False
        why = {"gen": "while the engine generates", "update": "during forward/backward",
               "step": "at the optimizer step"}[worst] + f": {peaks[worst]:.1f} GiB > {device.memory_gib:.1f} GiB"
    if vllm and kv_avail is not None and kv_avail <= 0:
        fits, why = False, (f"vllm_memory {cfg.vllm_memory} leaves no KV cache after vLLM's weights "
                            f"({2 * P_all / GiB:.1f} GiB) and workspace")

    best = None
    if search:
        per_step = train_batch // ranks
        for m in sorted({m for m in range(1, per_step + 1) if per_step % m == 0}):
            if estimate(cfg, shape, device, ranks, a, micro_per_rank=m, search=False).fits:
                best = m

    if not search:  # a candidate micro-batch of the search: memory only
        return Estimate(shape, device, ranks, M, parts, peaks, first, fits, why, None, {}, None, 0, None, notes)

    times, iterations, evals, total = _iteration_time(cfg, shape, device, ranks, a, b=b, sharded=sharded, M=M, P=P,
                                                      T=T, vllm=vllm, n_rank=n_rank, u_rank=u_rank, updates=updates,
                                                      trained=trained, kv_tok=kv_tok, kv_avail=kv_avail, notes=notes)
    return Estimate(shape, device, ranks, M, parts, peaks, first, fits, why, best, times, iterations, evals, total,
                    notes)


def _memory_parts(cfg, shape: ModelShape, device: Device, ranks: int, *, b: int, sharded: bool, M: int, P: int,
                  T: int, chunk: int, vllm: bool, n_rank: int, u_rank: int):
    """``estimate``'s memory, part by part: (parts, trained parameters, KV bytes per token,
    vLLM's KV cache in GiB or None)."""
    shard = ranks if sharded else 1
    P_all, V = shape.params, shape.vocab
    parts: list[Part] = []
    if cfg.lora_rank:
        trained = lora_params(shape, cfg.lora_rank)
        parts.append(Part("base weights (frozen)", b * P_all / GiB, f"{P_all / 1e9:.2f}B x {b} B, whole on every rank",
                          ("gen", "update", "step")))
        parts.append(Part("LoRA adapters (float32)", 4 * trained / GiB, f"{trained / 1e6:.1f}M x 4 B",
                          ("gen", "update", "step")))
    else:
        trained = P_all
        parts.append(Part("weights (float32 masters)", 4 * P_all / shard / GiB,
                          f"{P_all / 1e9:.2f}B x 4 B" + (f" / {shard} ranks (FSDP)" if sharded else ", whole (data parallel)"),
                          ("gen", "update", "step")))
    parts.append(Part("gradients (float32)", 4 * trained / shard / GiB,
                      "during the update; freed after each optimizer step" + (f"; / {shard}" if sharded else ""),
                      ("update", "step")))
    parts.append(Part("AdamW moments m, v (float32)", 8 * trained / shard / GiB,
                      "from the first optimizer step on" + (f"; / {shard}" if sharded else ""),
                      ("gen", "update", "step"), steady=True))
    if device.is_cpu:  # single-tensor AdamW: denom = (v.sqrt() / c).add_(eps), two temporaries of one tensor's size
        biggest = shape.embed_params if not cfg.lora_rank else 0
        parts.append(Part("AdamW step scratch", 2 * 4 * biggest / GiB, "two copies of the largest tensor (CPU AdamW "
                          "runs tensor by tensor)", ("step",)))
    else:  # foreach AdamW: sqrt(v) for every tensor at once
        parts.append(Part("AdamW step scratch", 4 * trained / shard / GiB, "sqrt(v) of every tensor (foreach AdamW)",
                          ("step",)))
    if b == 2:  # autocast keeps a compute-dtype copy of every weight it cast until the forward ends
        parts.append(Part("weight copies in the compute dtype", 2 * P_all / GiB,
                          "autocast's cast cache, whole model" + (" (gathered units too)" if sharded else ""),
                          ("update",)))
    if sharded:
        root = shape.embed_params * (1 if shape.tied else 2)
        gathered = 4 * (root + 2 * shape.layer_params)
        parts.append(Part("FSDP gathered units (float32)", gathered / GiB,
                          "root (embeddings, LM head) + two decoder layers (current, prefetched)", ("update",)))
    # a prompt shared by its responses runs once per chunk of micro-batches (models.plan_forward: up to M
    # distinct prompts, models.PromptPrefill), and its activations stay until the chunk's last backward
    prompts_held = min(M, u_rank) if cfg.group_size > 1 else M
    layers_b, head_b = activation_bytes(shape, prompts_held * P + M * T, M * T, b, cfg.gradient_checkpointing, chunk)
    parts.append(Part("activations", layers_b / GiB,
                      f"{prompts_held} x {P} prompt + {M} x {T} response tokens, " + ("gradient checkpointing" if cfg.gradient_checkpointing
                                                               else "no checkpointing"), ("update",)))
    parts.append(Part("LM head chunk", head_b / GiB, (f"{min(chunk, M * T)} tokens" if chunk else f"all {M * T} tokens (unchunked)") + f" x {V:,} vocabulary, float32; head weight gradient",
                      ("update",)))
    if cfg.beta > 0:
        parts.append(Part("reference policy", b * P_all / shard / GiB, "beta > 0", ("gen", "update", "step")))
    if sharded and cfg.engine == "hf":
        parts.append(Part("HF generation replica", b * P_all / GiB, "whole model in the compute dtype (FSDP + hf engine)",
                          ("gen", "update", "step")))
    kv_tok = shape.kv_bytes_per_token(2 if vllm else b)
    kv_need = n_rank * (P + T) * kv_tok
    kv_avail = None
    if vllm:
        share = cfg.vllm_memory * device.memory_gib
        kv_avail = share - 2 * P_all / GiB - VLLM_WORKSPACE_GIB
        parts.append(Part("vLLM (awake)", share, f"vllm_memory {cfg.vllm_memory} x {device.memory_gib:.0f} GiB: "
                          f"weights {2 * P_all / GiB:.1f}, KV cache {max(kv_avail, 0):.1f} (needs {kv_need / GiB:.1f} "
                          f"for {n_rank} x {P + T} tokens)", ("gen",)))
        parts.append(Part("vLLM (asleep)", VLLM_ASLEEP_GIB, "level 1: weights to CPU, KV cache dropped",
                          ("update", "step")))
    else:
        per_chunk = max(1, cfg.generation_batch_size // cfg.group_size) * cfg.group_size
        seqs = min(n_rank, per_chunk)
        hf_kv = seqs * (P + T) * kv_tok + seqs * V * 4 * 4  # its keys/values and a few [N, V] float32 logits
        parts.append(Part("HF engine KV cache", hf_kv / GiB, f"{seqs} sequences x {P}+{T} tokens, "
                          f"{kv_tok // 1024} KiB a token", ("gen",)))
    overhead = CPU_RUNTIME_GIB if device.is_cpu else GPU_RUNTIME_GIB
    parts.append(Part("runtime", overhead, "python, torch, tokenizer" if device.is_cpu else
                      "CUDA context, NCCL, allocator fragmentation", ("gen", "update", "step")))
    return parts, trained, kv_tok, kv_avail


def _iteration_time(cfg, shape: ModelShape, device: Device, ranks: int, a: Assumptions, *, b: int, sharded: bool,
                    M: int, P: int, T: int, vllm: bool, n_rank: int, u_rank: int, updates: int, trained: int,
                    kv_tok: int, kv_avail: float | None, notes: list[str]):
    """``estimate``'s time per rank (the ranks run in parallel): (seconds per phase, iterations,
    evaluations, total seconds or None); adds its notes to ``notes``."""
    shard = ranks if sharded else 1
    P_all, V, d = shape.params, shape.vocab, shape.hidden
    ell = min(a.response_tokens or T, T)
    peak_flops = device.tflops * 1e12 * a.mfu
    bw = device.bandwidth_tbs * 1e12 * a.bandwidth_efficiency
    w_read = 2 * P_all if vllm else (6 * P_all if b == 2 else 4 * P_all)  # per decode step
    waves = max(1, math.ceil(n_rank * (P + ell) * kv_tok / (kv_avail * GiB))) if vllm and kv_avail and kv_avail > 0 else 1
    attn = 4 * shape.layers * shape.heads * shape.head_dim  # FLOPs per attended (query, key) pair, forward

    def decode_s(seqs: int, prompts: int, steps: int, mean_len: int, waves: int) -> float:
        kv_reads = seqs * (P * mean_len + mean_len**2 / 2) * kv_tok
        mem = (steps * waves * w_read + kv_reads) / bw
        flops = (2 * (shape.body_params + V * d) * seqs * mean_len + attn * seqs * (P * mean_len + mean_len**2 / 2)
                 + 2 * P_all * prompts * P)
        return max(mem, flops / peak_flops)

    times = {"generate": decode_s(n_rank, u_rank, T, ell, waves)}
    forward = (2 * shape.body_params * (n_rank * ell + u_rank * P) + 2 * V * d * n_rank * ell
               + attn * (u_rank * P * P / 2 + n_rank * (P * ell + ell**2 / 2)))
    passes = (3 + (1 if cfg.gradient_checkpointing else 0)) * cfg.ppo_epochs + (1 if updates > 1 else 0) + (
        1 if cfg.beta > 0 else 0)
    compute = passes * forward / peak_flops
    comm = 0.0
    if sharded:  # per micro-batch: all-gather in forward and backward, reduce-scatter of the gradients (float32)
        micro_batches = math.ceil(n_rank / M) * cfg.ppo_epochs
        comm = micro_batches * 3 * 4 * P_all * (ranks - 1) / ranks / (device.link_gbs * 1e9)
    optimizer_s = updates * 3 * 16 * trained / shard / (device.bandwidth_tbs * 1e12)
    times["train"] = max(compute, comm) + optimizer_s
    times["sync"] = (2 * P_all / (device.link_gbs * 1e9) if sharded else 0.0) + 2 * P_all / bw if vllm or sharded else 0.0
    eval_q = _eval_questions(cfg)
    if eval_q:
        eval_T = cfg.eval_max_new_tokens or T
        eval_len = min(ell, eval_T)
        eval_waves = (max(1, math.ceil(eval_q * (P + eval_len) * kv_tok / (kv_avail * GiB)))
                      if vllm and kv_avail and kv_avail > 0 else 1)
        times["eval"] = decode_s(eval_q, eval_q, eval_T, eval_len, eval_waves)
    iterations = _iterations(cfg, a, notes)
    evals = 0
    if iterations and eval_q:
        evals = 1 + (iterations // cfg.eval_every if cfg.eval_every else 0) + (
            0 if cfg.eval_every and iterations % cfg.eval_every == 0 else 1)
    per_iter = times["generate"] + times["train"] + times["sync"]
    total = iterations * per_iter + evals * times.get("eval", 0.0) if iterations else None
    if vllm and waves > 1:
        notes.append(f"vLLM's KV cache holds {kv_avail / (n_rank * (P + ell) * kv_tok / GiB):.0%} of the iteration's "
                     f"tokens: it generates in about {waves} waves (a larger vllm_memory would be faster)")
    if sharded and comm > compute:
        notes.append(f"FSDP traffic ({comm:.0f} s) exceeds the update's compute ({compute:.0f} s): larger "
                     "micro-batches gather the weights fewer times")
    return times, iterations, evals, total


def _eval_questions(cfg) -> int:
    """Questions per evaluation: bundled and local sets are counted; others are skipped."""
    from drzero.data import BUNDLED, load_questions

    total = 0
    for name in (s.strip() for s in cfg.eval_datasets.split(",")):
        if not name:
            continue
        if name.lower() in BUNDLED or name in BUNDLED or Path(name).expanduser().exists():
            try:
                total += len(load_questions(name, limit=cfg.eval_limit, question_column=cfg.eval_question_column,
                                            answer_column=cfg.eval_answer_column))
            except DrZeroError:
                pass
    return total


# training questions of hub sets the bundled recipes name, so that max_epochs has a count offline
HUB_QUESTION_COUNTS = {
    ("DigitalLearningGmbH/MATH-lighteval", None): 7500,
    # levels 3-5 of its train split: the recipe's own estimate; pass --questions for the exact count
    ("DigitalLearningGmbH/MATH-lighteval", "level in ['Level 3', 'Level 4', 'Level 5']"): 5600,
}


def _iterations(cfg, a: Assumptions, notes: list[str]) -> int | None:
    if cfg.max_epochs is None:
        return cfg.max_steps
    from drzero.train import steps_for_epochs

    n = a.questions
    if n is None:
        key = (cfg.dataset, cfg.dataset_filter)
        if key in HUB_QUESTION_COUNTS:
            n = HUB_QUESTION_COUNTS[key]
            notes.append(f"{cfg.dataset}: {n:,} training questions assumed (not downloaded; --questions to change)")
        else:
            from drzero.data import BUNDLED, load_questions

            if cfg.dataset in BUNDLED or Path(cfg.dataset).expanduser().exists():
                n = len(load_questions(cfg.dataset, split=cfg.dataset_split, question_column=cfg.question_column,
                                       answer_column=cfg.answer_column, dataset_filter=cfg.dataset_filter))
    if n is None:
        notes.append(f"{cfg.dataset}: question count unknown offline; give --questions N for a total time")
        return None
    return steps_for_epochs(cfg.max_epochs, n, cfg.prompts_per_step)


# ----------------------------------------------------------------------------- printing
def assumptions_text(cfg, est: Estimate, a: Assumptions) -> list[str]:
    s, dev = est.shape, est.device
    b = _bytes(cfg.dtype)
    chunk = cfg.logprob_chunk_tokens or 0
    lines = [
        *(["CPU speeds are rough placeholders (0.1 TFLOP/s, 10 GB/s): only the memory is calibrated (docs/scaling.md)"]
          if dev.is_cpu else []),
        (f"model shape from {s.source}: d={s.hidden}, layers={s.layers}, heads={s.heads}/{s.kv_heads} kv, "
         f"head_dim={s.head_dim}, intermediate={s.intermediate}, vocab={s.vocab:,}, "
         f"{'tied' if s.tied else 'untied'} LM head: {s.params / 1e9:.3f}B parameters"),
        f"{dev.name}: {dev.memory_gib:.1f} GiB, {dev.tflops:g} TFLOP/s dense, {dev.bandwidth_tbs:g} TB/s"
        + ("" if dev.is_cpu else f", collectives {dev.link_gbs:g} GB/s per GPU"),
        f"every prompt is {a.prompt_tokens} tokens; memory counts every response at the budget, {cfg.max_new_tokens} tokens",
        (f"time counts responses of {min(a.response_tokens or cfg.max_new_tokens, cfg.max_new_tokens)} tokens on "
         "average (--response-tokens), and every iteration decodes for the whole budget (the longest response decides)"),
        f"weights train in float32 with AdamW (m, v in float32); compute in {cfg.dtype} under autocast",
        (f"activations per token and decoder layer: 4 x intermediate x {b} B + {ACT_PER_HIDDEN[b]} x hidden B "
         "(measured: saved-tensor bytes of a Qwen2 layer)"),
        "gradient checkpointing keeps each layer's float32 input and recomputes one layer at a time"
        if cfg.gradient_checkpointing else "no gradient checkpointing: every layer's activations stay until backward",
        (f"log-probs are computed {chunk} tokens at a time (logprob_chunk_tokens): two float32 [chunk, V] "
         "tensors at once (bench/memory.py), plus the head weight's float32 gradient" if chunk else
         "logprob_chunk_tokens 0: the unchunked log-probs hold about four float32 [M*T, V] tensors"),
        f"prefill and training run at {a.mfu:.0%} MFU; training is {3 + (1 if cfg.gradient_checkpointing else 0)} "
        "forward passes' FLOPs (forward, backward x2" + (", recompute)" if cfg.gradient_checkpointing else ")"),
        (f"decode steps read the weights and the live KV cache at {a.bandwidth_efficiency:.0%} of the bandwidth "
         "(or FLOPs at the MFU, whichever is slower)"),
        f"runtime overhead {CPU_RUNTIME_GIB if dev.is_cpu else GPU_RUNTIME_GIB} GiB per "
        + ("process (measured)" if dev.is_cpu else "GPU (CUDA context, NCCL, fragmentation; assumed)"),
    ]
    if cfg.engine == "vllm" and not dev.is_cpu:
        lines.append(f"vLLM: colocated, its share holds bf16 weights, {VLLM_WORKSPACE_GIB} GiB workspace and the KV "
                     f"cache; asleep during the update it keeps {VLLM_ASLEEP_GIB} GiB")
    if cfg.sharding == "fsdp" and est.ranks > 1:
        lines.append("FSDP2: per micro-batch the float32 weights are all-gathered in forward and backward and the "
                     "gradients reduce-scattered; traffic overlaps compute")
    lines.append("evaluation runs on rank 0 only (the other ranks wait), greedy, at the eval budget")
    return lines


def print_estimate(cfg, est: Estimate, a: Assumptions, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 150)  # a log file gets whole lines
    where = f"{est.ranks} x {est.device.name}" if not est.device.is_cpu else "CPU (this machine)"
    table = Table(title=f"drzero plan: {cfg.model} on {where}, memory per {'GPU' if not est.device.is_cpu else 'process'}")
    for col in ("part", "GiB", "when", "what"):
        table.add_column(col, justify="right" if col == "GiB" else "left")
    when = {("gen", "update", "step"): "always", ("update", "step"): "update", ("update",): "forward/backward",
            ("step",): "optimizer step", ("gen",): "generation"}
    for p in est.parts:
        table.add_row(p.name, f"{p.gib:.2f}", when.get(p.phases, ",".join(p.phases)), p.note)
    labels = {"gen": "peak while generating", "update": "peak in forward/backward", "step": "peak at the optimizer step"}
    for ph, v in est.peaks.items():
        table.add_row(labels[ph], f"{v:.2f}", "", "", style="bold")
    table.add_row("peak of the first iteration", f"{est.first_peak:.2f}", "", "no AdamW moments before its optimizer step")
    console.print(table)
    micro_cfg = est.micro_per_rank * est.ranks
    verdict = (f"fits: peak {est.peak:.1f} of {est.device.memory_gib:.1f} GiB" if est.fits
               else f"does NOT fit: {est.why}")
    console.print(f"{verdict}; micro_batch_size {micro_cfg} ({est.micro_per_rank} per rank)")
    if est.best_micro is None:
        console.print("largest micro-batch that fits: none (not even 1 response per rank)")
    else:
        console.print(f"largest micro-batch that fits: micro_batch_size {est.best_micro * est.ranks} "
                      f"({est.best_micro} per rank)")
    t = est.times
    per_iter = t["generate"] + t["train"] + t["sync"]
    console.print(f"time per policy iteration: {_dur(per_iter)} (generate {_dur(t['generate'])}, train "
                  f"{_dur(t['train'])}, sync {_dur(t['sync'])})" + (f"; each evaluation {_dur(t['eval'])}" if "eval" in t else ""))
    if est.total_s is not None:
        console.print(f"total: {_dur(est.total_s)} for {est.iterations} iterations and {est.evals} evaluations")
    for note in est.notes:
        console.print(f"note: {note}")
    console.print("assumptions:")
    for line in assumptions_text(cfg, est, a):
        console.print(f"  - {line}", highlight=False)


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 2 * 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


# ----------------------------------------------------------------------------- commands
def assumptions_of(cfg) -> Assumptions:
    return Assumptions(mfu=cfg.mfu, bandwidth_efficiency=cfg.bandwidth_efficiency, prompt_tokens=cfg.prompt_tokens,
                       response_tokens=cfg.response_tokens, questions=cfg.questions)


def run_plan(cfg) -> Estimate:
    """``drzero plan``: print the estimate of ``cfg`` (a PlanConfig: a TrainConfig plus the hardware)."""
    if cfg.gpus < 1:
        raise DrZeroError(f"--gpus {cfg.gpus}: a plan needs at least 1 GPU (or --gpu cpu --gpus 1)")
    device = resolve_device(cfg.gpu, cfg.gpu_memory, cfg.gpu_tflops, cfg.gpu_bandwidth)
    shape = read_model_shape(cfg.model)
    a = assumptions_of(cfg)
    est = estimate(cfg, shape, device, cfg.gpus, a)
    print_estimate(cfg, est, a)
    return est


def check_at_start(cfg, device: str, ranks: int) -> None:
    """``drzero train``'s start-up check. On GPUs: refuse a config that cannot fit (one line,
    naming the micro-batch that would). On a CPU: one line with the predicted peak, then go on.
    A model whose shape cannot be read offline is left to the loader."""
    from drzero import dist

    try:
        shape = read_model_shape(cfg.model)
    except DrZeroError:
        return
    if device.startswith("cuda"):
        dev = device_from_cuda(int(device.split(":")[1]) if ":" in device else 0)
    else:
        dev = resolve_device("cpu")
    est = estimate(cfg, shape, dev, ranks, search=not dev.is_cpu)
    if dev.is_cpu:
        dist.print0(f"plan: peak about {est.first_peak:.1f} GiB in the first iteration, {est.peak:.1f} GiB after "
                    f"(host memory {dev.memory_gib:.1f} GiB; details: drzero plan --gpu cpu --gpus 1 ...)")
        return
    if not est.fits:
        fix = (f"micro_batch_size {est.best_micro * ranks} would fit" if est.best_micro
               else "no micro-batch fits: shard (sharding: fsdp), lower vllm_memory, or use more GPUs")
        raise DrZeroError(f"this config does not fit {ranks} x {dev.name} ({dev.memory_gib:.0f} GiB): {est.why}; "
                          f"{fix} (see drzero plan --config ... --gpus {ranks})")
    dist.print0(f"plan: peak {est.peak:.1f} of {dev.memory_gib:.1f} GiB per GPU; about "
                f"{_dur(est.times['generate'] + est.times['train'] + est.times['sync'])} per iteration")
