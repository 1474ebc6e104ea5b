"""Peak memory of one policy update (forward + backward through the loop's own
``train.accumulate_gradients``) with the LM head's log-probs unchunked (``--chunk 0``, the
old code: float32 logits ``[M, T, V]``, several of them at once) and chunked (the default,
``TrainConfig.logprob_chunk_tokens``), on a randomly initialised Qwen2 built from a
``transformers`` config (nothing is downloaded) with the real vocabulary of 151,936.

    python bench/memory.py                   # the table; every point in a fresh subprocess
    python bench/memory.py --device cuda     # the same on a GPU (torch.cuda.max_memory_allocated)
    python bench/memory.py --point --vocab 151936 --tokens 2048 --micro-batch 4 --chunk 512   # one point: JSON

The body is deliberately small (``--hidden 64``, 2 layers, 4 heads), so that what grows with
the vocabulary is the LM head's share: the comparison of issue 29 (vocabulary 151,936 vs
1,000, T = 2048, micro-batch 4) then measures the log-prob computation, not the body. One
micro-batch of ``--micro-batch`` responses of exactly ``--tokens`` tokens each, answering one
prompt of ``--prompt-tokens`` tokens (a group, so the shared-prompt prefill runs, as in
training), float32 weights, compute in ``--dtype``.

On the CPU the peak is the process's peak resident set (``ru_maxrss``), measured in its own
subprocess, so each number is one point's alone; ``base`` is the resident set after the
model is built, before the update. On a GPU it is ``torch.cuda.max_memory_allocated`` over
the update, and ``base`` the memory allocated before it. ``update s`` is the update's wall
time (on this shared CPU machine, a rough guide only).

The table run also prints the chunk's share of the peak at three chunk sizes (its slope is
the k of ``chunk_tokens x V x 4 x k``) and, on the CPU, the head alone chunked two ways: the
``autograd.Function`` drzero uses, and ``torch.utils.checkpoint`` around each chunk.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

GB = 1e9


def one_point(args) -> dict:
    """Build the model, run one update, return the peaks (bytes)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from drzero.algo import resolve_objective
    from drzero.rollout import Generation, Rollouts
    from drzero.train import accumulate_gradients

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = args.device
    config = Qwen2Config(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.heads // 2,
                         tie_word_embeddings=True, max_position_embeddings=args.prompt_tokens + args.tokens + 1)
    model = Qwen2ForCausalLM(config).to(device).train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    gen = torch.Generator().manual_seed(1)
    M = args.micro_batch
    prompt = torch.randint(1, args.vocab, (args.prompt_tokens,), generator=gen).tolist()
    gens = [Generation(0, prompt, torch.randint(1, args.vocab, (args.tokens,), generator=gen).tolist(), "", "length")
            for _ in range(M)]
    rewards = torch.tensor([float(i % 2) for i in range(M)])
    objective = resolve_objective("dr_grpo", max_new_tokens=args.tokens)
    advantages = torch.tensor([(-1.0) ** i for i in range(M)])  # nonzero even for M = 1
    batch = Rollouts(rows=[{}] * M, generations=gens, grades=[None] * M, rewards=rewards, group_size=M,
                     advantages=advantages, keep=torch.ones(M, dtype=torch.bool))
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_now()
    start = time.perf_counter()
    accumulate_gradients(model, batch, objective, micro_batch_size=M, temperature=1.0, pad_id=0, device=device,
                         dtype=dtype, logprob_chunk_tokens=args.chunk)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    grad_norm = float(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).norm())
    out = {"vocab": args.vocab, "tokens": args.tokens, "micro_batch": M, "chunk": args.chunk, "device": device,
           "dtype": args.dtype, "base": base, "grad_norm": grad_norm, "seconds": seconds,
           "body": f"hidden {args.hidden}, {args.layers} layers, {args.heads} heads, tied head, "
                   f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"}
    if cuda:
        torch.cuda.synchronize()
        out["peak"] = torch.cuda.max_memory_allocated()
    else:
        out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return out


def head_alone(args) -> dict:
    """The LM head's log-probs alone on random hidden states ``[M, T, H]``, forward and
    backward, chunked two ways: ``chunked_logprobs`` (an autograd.Function that keeps only its
    inputs) or ``torch.utils.checkpoint`` around each chunk of the old computation (which keeps
    each chunk's whole autograd graph while it recomputes). Peak RSS above the inputs."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    from drzero.models import _token_logprobs, chunked_logprobs

    torch.manual_seed(0)
    M, T, H, V, C = args.micro_batch, args.tokens, args.hidden, args.vocab, args.chunk
    hidden = torch.randn(M, T, H, requires_grad=True)
    weight = (0.05 * torch.randn(V, H)).requires_grad_()
    targets = torch.randint(0, V, (M, T))
    base = _rss_now()
    if args.head_alone == "function":
        logp, _ = chunked_logprobs(hidden, weight, None, targets, 1.0, with_entropy=True, chunk_tokens=C)
    else:
        flat_hidden, flat_targets = hidden.reshape(M * T, H), targets.reshape(M * T)
        parts = [checkpoint(lambda h, t: _token_logprobs(F.linear(h, weight)[None], t[None], 1.0, True)[0],
                            flat_hidden[s : s + C], flat_targets[s : s + C], use_reentrant=False)
                 for s in range(0, M * T, C)]
        logp = torch.cat(parts, dim=1)
    logp.sum().backward()
    return {"vocab": V, "tokens": T, "micro_batch": M, "chunk": C, "head_alone": args.head_alone, "base": base,
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _rss_now() -> int:
    """The resident set now, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def run_point(args, **overrides) -> dict:
    """``one_point`` in a fresh subprocess, so that its peak is its own."""
    point = vars(args) | overrides
    cmd = [sys.executable, str(Path(__file__).resolve()), "--point"]
    for key in ("vocab", "tokens", "micro_batch", "chunk", "device", "dtype", "hidden", "layers", "heads",
                "prompt_tokens", "threads", "head_alone"):
        if point[key] != "":
            cmd += [f"--{key.replace('_', '-')}", str(point[key])]
    if point["gradient_checkpointing"]:
        cmd.append("--gradient-checkpointing")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {**{k: point[k] for k in ("vocab", "tokens", "micro_batch", "chunk")},
                "error": (done.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from drzero.config import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--point", action="store_true", help="measure one point and print it as JSON (used by the table)")
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--tokens", type=int, default=2048, help="response tokens T of every response")
    ap.add_argument("--micro-batch", type=int, default=4, help="responses M in the micro-batch")
    ap.add_argument("--chunk", type=int, default=TrainConfig.logprob_chunk_tokens,
                    help="logprob_chunk_tokens (0 = unchunked, the old code)")
    ap.add_argument("--sweep-tokens", default="512,1024,2048", help="the table's T values")
    ap.add_argument("--sweep-micro-batch", type=int, default=1,
                    help="the table's micro-batch (1 on the CPU: the unchunked T=2048 point at 4 needs ~20 GB)")
    ap.add_argument("--unchunked-comparison", action="store_true",
                    help="also the unchunked vocabulary-151,936 point of the comparison (~20 GB; always on a GPU)")
    ap.add_argument("--sweep-chunks", default="128,512,1024",
                    help="chunk sizes for the chunk's share of the peak at the comparison's shape ('' = skip)")
    ap.add_argument("--head-alone", default="", choices=["", "function", "checkpoint"],
                    help="with --point: the head's log-probs alone, chunked by the autograd.Function or by "
                         "torch.utils.checkpoint per chunk (the table compares them at the check's shape)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="compute dtype (autocast)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.point:
        print(json.dumps(head_alone(args) if args.head_alone else one_point(args)))
        return

    def show(r: dict) -> str:
        if "error" in r:
            return f"| {r['vocab']:>7,} | {r['tokens']:>5} | {r['micro_batch']:>2} | {r['chunk']:>5} | failed: {r['error']} |"
        return (f"| {r['vocab']:>7,} | {r['tokens']:>5} | {r['micro_batch']:>2} | {r['chunk'] or 'off':>5} "
                f"| {r['base'] / GB:6.2f} | {r['peak'] / GB:6.2f} | {(r['peak'] - r['base']) / GB:6.2f} "
                f"| {r['seconds']:6.1f} |")

    header = ["| vocab | T | M | chunk | base GB | peak GB | peak - base GB | update s |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    chunk = args.chunk or TrainConfig.logprob_chunk_tokens
    results = []
    print(f"one update, {args.device}, compute {args.dtype}; peak = "
          f"{'torch.cuda.max_memory_allocated' if args.device.startswith('cuda') else 'peak RSS (ru_maxrss)'}",
          flush=True)
    print("\n".join(header), flush=True)
    for T in [int(t) for t in args.sweep_tokens.split(",")]:
        for c in (0, chunk):
            results.append(run_point(args, tokens=T, micro_batch=args.sweep_micro_batch, chunk=c))
            print(show(results[-1]), flush=True)
    print("\nissue 29's check: T = 2048, micro-batch 4, vocabulary 151,936 vs 1,000", flush=True)
    print("\n".join(header), flush=True)
    pair = {}
    big_unchunked = args.unchunked_comparison or args.device.startswith("cuda")
    for c in (chunk, 0):
        for V in (151936, 1000) if c or big_unchunked else (1000,):
            pair[(c, V)] = run_point(args, vocab=V, tokens=2048, micro_batch=4, chunk=c)
            print(show(pair[(c, V)]), flush=True)
    for c in (chunk, 0):
        a, b = pair.get((c, 151936), {}), pair.get((c, 1000), {})
        if "peak" in a and "peak" in b:
            print(f"{'chunked' if c else 'unchunked'}: 151,936 - 1,000 = {(a['peak'] - b['peak']) / GB:.2f} GB "
                  f"(issue 29: at most 1 GB)", flush=True)
    if args.sweep_chunks:
        print("\nthe chunk's share: T = 2048, micro-batch 4, vocabulary 151,936, chunk sizes", flush=True)
        print("\n".join(header), flush=True)
        sweep = []
        for c in [int(c) for c in args.sweep_chunks.split(",")]:
            sweep.append(run_point(args, vocab=151936, tokens=2048, micro_batch=4, chunk=c))
            print(show(sweep[-1]), flush=True)
        ok = [r for r in sweep if "peak" in r]
        if len(ok) >= 2:  # peak = a + chunk * V * 4 * k: the slope between the smallest and largest chunk
            lo, hi = ok[0], ok[-1]
            k = (hi["peak"] - lo["peak"]) / ((hi["chunk"] - lo["chunk"]) * 151936 * 4)
            print(f"k = {k:.2f}: peak grows by chunk_tokens x V x 4 x {k:.2f} bytes", flush=True)
        pair.update({("sweep", r["chunk"]): r for r in sweep})
    if not args.device.startswith("cuda"):
        print("\nthe head alone (hidden states in, log-probs and entropies out, backward), T = 2048, micro-batch 4, "
              f"vocabulary 151,936, chunk {chunk}:", flush=True)
        for kind in ("function", "checkpoint"):
            r = run_point(args, vocab=151936, tokens=2048, micro_batch=4, chunk=chunk, head_alone=kind)
            pair[("head", kind)] = r
            print(f"  {kind:<10} peak - base {(r['peak'] - r['base']) / GB:.2f} GB" if "peak" in r
                  else f"  {kind}: failed: {r['error']}", flush=True)
    body = next((r["body"] for r in results + list(pair.values()) if "body" in r), "")
    print(f"\nbody: {body}; prompt {args.prompt_tokens} tokens, one prompt for the micro-batch")
    print("RESULT " + json.dumps(results + list(pair.values())))


if __name__ == "__main__":
    main()
