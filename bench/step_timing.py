"""Per-phase seconds, MFU and the generation share of one training step at a real model's
shape, randomly initialised.

    python bench/step_timing.py --shape qwen2.5-math-1.5b --device cuda          # the GPU number
    python bench/step_timing.py --shape toy                                       # anywhere, seconds

The 1.5B shape needs about 24 GB for float32 weights, gradients and AdamW states (plus
activations), so it does not fit a 24 GiB CPU machine; it is meant for a GPU.

No weights are downloaded: the model is built from the shape's config with random
weights, and prompts are random token ids, so nothing here needs the hub. Every response
runs to ``--max-new-tokens`` (no stop token), the worst case of a step. Phases:
generate (the Hugging Face engine: one prefill per prompt, its keys/values shared by the
G samples, decode), train (forward + backward over micro-batches with the loop's own
``accumulate_gradients``, each prompt run once per chunk, then clipping and the AdamW
step), in the loop's precision (float32 weights, ``--dtype`` compute). Grading is left
out: it does not depend on the model (see bench/grader_bench.py).

MFU counts the FLOPs of the distinct work, each prompt once (B*P prompt tokens, not
B*G*P): generation 2*N per token (prompts and sampled tokens), training 6*N per token,
N the non-embedding parameters, plus the LM head where logits are taken and causal
attention (4 * layers * heads * head_dim per attended pair, x3 for training). The peak is
the device's dense bf16 peak for known GPUs (``--peak-tflops`` overrides it); on other
devices it is measured with a large matmul in the compute dtype and printed as such.

The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from drzero import dist
from drzero.algo import group_advantages, resolve_objective
from drzero.rollout import Rollouts, SamplingParams
from drzero.rollout.hf import HFEngine
from drzero.train import accumulate_gradients

# Public config.json values of the Qwen2.5-Math models (architecture only).
SHAPES = {
    "qwen2.5-math-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                              num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-math-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                            num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    "toy": dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True),
}
# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets.
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A real tokenizer over the model's whole vocabulary (one word per id), so the engine can
    decode whatever the random model samples."""
    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t0", eos_token="t1")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_tflops(device: str, dtype: torch.dtype, override: float | None) -> tuple[float, str]:
    """(peak TFLOP/s, where it comes from)."""
    if override:
        return override, "--peak-tflops"
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(device)
        for key, value in GPU_PEAK_TFLOPS.items():
            if key in name:
                return (value if dtype != torch.float32 else value / 2), f"data sheet ({name})"
    n = 2048 if device.startswith("cuda") else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    reps, t = 0, time.perf_counter()
    while time.perf_counter() - t < 0.5 or reps < 3:
        a @ b
        reps += 1
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12, f"measured {n}x{n} matmul"


def step_flops(shape: dict, n_body: int, B: int, G: int, P: int, T: int) -> tuple[float, float]:
    """(generation FLOPs, training FLOPs) of one step's distinct work (see the docstring)."""
    d, L, V = shape["hidden_size"], shape["num_hidden_layers"], shape["vocab_size"]
    attn = 4 * L * d  # per attended (query, key) pair, forward
    prompt_tokens, response_tokens = B * P, B * G * T
    pairs = B * P * (P + 1) / 2 + B * G * (P * T + T * (T + 1) / 2)  # causal: each token attends to all before it
    forward = 2 * n_body * (prompt_tokens + response_tokens) + attn * pairs
    head = 2 * V * d * (B + response_tokens)  # logits at each prompt's last position and every response position
    return forward + head, 3 * (forward + head)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-math-1.5b")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default=None, help="compute dtype (default: bf16 on GPU)")
    ap.add_argument("--prompts", type=int, default=16, help="prompts per step (B)")
    ap.add_argument("--group-size", type=int, default=8, help="samples per prompt (G)")
    ap.add_argument("--prompt-tokens", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--micro-batch-size", type=int, default=8)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--repeats", type=int, default=2, help="steps to time (the first also warms up)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU (default: see above)")
    args = ap.parse_args()

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    torch.manual_seed(0)
    shape = SHAPES[args.shape]
    config = Qwen2Config(**shape, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6)
    t = time.perf_counter()
    model = Qwen2ForCausalLM(config).to(device)  # float32 weights, as the training loop keeps them
    n_params = sum(p.numel() for p in model.parameters())
    n_body = n_params - model.get_input_embeddings().weight.numel() - (
        0 if shape["tie_word_embeddings"] else model.get_output_embeddings().weight.numel())
    peak, peak_source = peak_tflops(device, dtype, args.peak_tflops)
    print(f"{args.shape}: {n_params / 1e6:.1f}M parameters ({n_body / 1e6:.1f}M non-embedding), built in "
          f"{time.perf_counter() - t:.1f}s on {device}, compute {str(dtype).removeprefix('torch.')}; "
          f"peak {peak:.3g} TFLOP/s ({peak_source})")
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    tok = word_tokenizer(shape["vocab_size"])
    engine = HFEngine(model, tok, batch_size=args.prompts * args.group_size, dtype=dtype)
    engine.stop_token_ids = []  # no stop token: every response runs to the budget
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    objective = resolve_objective("dr_grpo", max_new_tokens=args.max_new_tokens)
    gen_params = SamplingParams(n=args.group_size, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    gen_flops, train_flops = step_flops(shape, n_body, args.prompts, args.group_size, args.prompt_tokens,
                                        args.max_new_tokens)

    rows = []
    for rep in range(args.repeats):
        prompts = [torch.randint(2, shape["vocab_size"], (args.prompt_tokens,)).tolist() for _ in range(args.prompts)]
        sync(device)
        t = time.perf_counter()
        with torch.no_grad(), dist.autocast(device, dtype):
            model.eval()
            gens = engine._generate_chunk(prompts, 0, gen_params, torch.Generator().manual_seed(rep))
        sync(device)
        t_gen = time.perf_counter() - t
        n = len(gens)
        rewards = (torch.arange(n) % 3 == 0).float()  # a fixed pattern: the update's cost does not depend on it
        adv = group_advantages(rewards, args.group_size, scale="none")
        keep = torch.ones(n, dtype=torch.bool)
        model.train()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        batch = Rollouts(rows=[{}] * n, generations=gens, grades=[None] * n, rewards=rewards, group_size=args.group_size,
                         advantages=adv, keep=keep)
        accumulate_gradients(model, batch, objective, micro_batch_size=args.micro_batch_size, temperature=1.0, pad_id=0,
                             device=device, dtype=dtype)
        dist.grad_norm(model, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        t_train = time.perf_counter() - t
        tokens = sum(len(g.token_ids) for g in gens)
        row = {"step": rep, "responses": n, "generated_tokens": tokens, "generate_s": round(t_gen, 6),
               "train_s": round(t_train, 6), "gen_tokens_per_s": round(tokens / t_gen, 1),
               "train_tokens_per_s": round(n * (args.prompt_tokens + args.max_new_tokens) / t_train, 1),
               "generation_share": round(t_gen / (t_gen + t_train), 3),
               "mfu": (gen_flops + train_flops) / ((t_gen + t_train) * peak * 1e12),
               "mfu_generate": gen_flops / (t_gen * peak * 1e12), "mfu_train": train_flops / (t_train * peak * 1e12)}
        for k in ("mfu", "mfu_generate", "mfu_train"):
            row[k] = float(f"{row[k]:.4g}")
        if device.startswith("cuda"):
            row["train_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    last = rows[-1]
    assert all(math.isfinite(last[k]) for k in ("mfu", "generation_share"))
    print(f"{args.shape} B={args.prompts} G={args.group_size} prompt={args.prompt_tokens} new={args.max_new_tokens} on "
          f"{device}: generate {last['generate_s']:.2f}s, train {last['train_s']:.2f}s per step; generation share "
          f"{last['generation_share']:.1%}; MFU {last['mfu']:.2%} (generate {last['mfu_generate']:.2%}, train "
          f"{last['mfu_train']:.2%}; peak {peak:.3g} TFLOP/s, {peak_source})")
    print("RESULT " + json.dumps({"shape": args.shape, "device": device, "dtype": str(dtype).removeprefix("torch."),
                                  "peak_tflops": float(f"{peak:.4g}"), "peak_source": peak_source, **last}))


if __name__ == "__main__":
    main()
