"""The GPU check: one command, at most 8 minutes on a lent H100/H200, that measures drzero's
own iteration at Qwen2.5-Math-1.5B's shape, randomly initialised (no download, no network).

    python bench/gpu_check.py --out gpu_check.json        # on the GPU (docs/performance.md has the device command)
    python bench/gpu_check.py --tiny --out /tmp/g.json    # on the CPU in seconds (tests/test_bench.py runs it)

What it runs, in this order, writing the JSON after each part (a run cut short keeps what
it measured):

1. **One iteration of the recipe, scaled down** (qwen2.5-math-1.5b-dr_grpo.yaml: Dr. GRPO,
   bf16 compute over float32 weights, gradient checkpointing, micro-batch 8, AdamW with
   beta2 0.95, one optimizer step of all responses): ``--prompts`` x ``--group`` responses
   of ``--max-new-tokens`` (default 16 x 8 x 1,024; the recipe's is 128 x 8 x 3,000, eight
   optimizer steps of 128), through drzero's own path: ``rollout.generate_and_grade`` with
   the HF engine (grading as responses finish), ``algo.group_advantages``,
   ``train.accumulate_gradients``, clipping and the AdamW step. A random-init model never
   ends a response, and the engine is given no stop token: every response runs to the
   budget, the worst case. The first iteration also warms up; ``--repeats`` more are timed
   while the time budget allows. Printed and written: generation tokens/s, training tokens/s
   (prompt + response tokens of all responses per second of update), MFU (as
   bench/step_timing.py: distinct work, each prompt once, the data-sheet bf16 peak), peak GPU
   memory, and the time split generate / grade / train.
2. **drzero plan's prediction** of the peak memory for the same shape, beside the measured
   one, when ``drzero.plan`` exists in this checkout (else the JSON says it does not).
3. **Log-probabilities at T = 2,048**: one update of ``--long-prompts`` x ``--group`` responses
   of 2,048 tokens in micro-batches of 4 (random token ids: the update's cost does not depend
   on them), unchunked,
   and chunked when ``accumulate_gradients`` takes ``logprob_chunk_tokens`` (else the JSON
   says so). Time and peak memory of each; an out-of-memory is recorded, not raised.
4. **drzero's HF-engine decode vs transformers' ``generate``** on the same prompts, the same
   number of samples and the same budget (sampling at temperature 1, both run to the budget:
   ``min_new_tokens``), the same weights under the same autocast: tokens/s of each and the ratio.

The last line is ``RESULT {json}``, the same object as the file.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("step_timing", ROOT / "bench" / "step_timing.py")
step_timing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_timing)

from drzero import dist  # noqa: E402
from drzero.algo import group_advantages, resolve_objective  # noqa: E402
from drzero.grader import Grader  # noqa: E402
from drzero.rollout import Generation, Rollouts, SamplingParams, generate_and_grade  # noqa: E402
from drzero.rollout.hf import HFEngine  # noqa: E402
from drzero.templates import TEMPLATES, Template  # noqa: E402
from drzero.train import accumulate_gradients  # noqa: E402

SHAPE = "qwen2.5-math-1.5b"


def word_tokenizer(vocab_size: int):
    """One word per id (``t0`` .. ``t{V-1}``), split on spaces: prompts are written as words,
    and whatever the random model samples decodes."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={f"t{i}": i for i in range(vocab_size)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t0", eos_token="t1")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def plan_gpu_name() -> str:
    """This machine's accelerator as ``drzero plan --gpu`` names it (its table), or cpu."""
    if not torch.cuda.is_available():
        return "cpu"
    name = torch.cuda.get_device_name().upper()
    if "H200" in name:
        return "H200"
    if "H100" in name:
        return "H100-PCIe" if "PCIE" in name else "H100-80G"
    if "A100" in name:
        return "A100-80G" if torch.cuda.get_device_properties(0).total_memory > 50 * 2**30 else "A100-40G"
    return "cpu"


def plan_prediction(args, shape: dict) -> dict:
    """``drzero plan``'s memory estimate for this shape, when the command exists here. Its
    interface was not settled when this was written, so it is called as a command with the
    training config's own flags (the project's rule: every command takes its dataclass's
    flags and ``--config``), on a model folder holding only config.json and the tokenizer;
    whatever it prints is kept."""
    if importlib.util.find_spec("drzero.plan") is None:
        return {"available": False, "note": "drzero.plan is not in this checkout (issue 'Scale, part 1')"}
    from transformers import Qwen2Config

    with tempfile.TemporaryDirectory() as tmp:
        Qwen2Config(**shape).save_pretrained(tmp)
        word_tokenizer(shape["vocab_size"]).save_pretrained(tmp)
        cmd = [sys.executable, "-m", "drzero", "plan", "--model", tmp, "--prompts-per-step", str(args.prompts),
               "--group-size", str(args.group), "--max-new-tokens", str(args.max_new_tokens), "--micro-batch-size",
               str(args.micro_batch_size), "--dtype", "bfloat16", "--gradient-checkpointing", "--gpus", "1",
               "--gpu", plan_gpu_name(), "--prompt-tokens", str(args.prompt_tokens)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT,
                                  env={**os.environ, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"})
        except subprocess.TimeoutExpired:
            return {"available": True, "command": " ".join(cmd), "error": "timed out after 60 s"}
    return {"available": True, "command": " ".join(cmd), "returncode": done.returncode,
            "output": (done.stdout + done.stderr)[-2000:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="the toy shape on the CPU, a few tokens: seconds (the test)")
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_check.json"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--prompts", type=int, default=16, help="prompts per iteration (B)")
    ap.add_argument("--group", type=int, default=8, help="samples per prompt (G)")
    ap.add_argument("--prompt-tokens", type=int, default=200, help="prompt length (P; the r1 template + a MATH question)")
    ap.add_argument("--max-new-tokens", type=int, default=1024, help="response length (T; every response runs to it)")
    ap.add_argument("--micro-batch-size", type=int, default=8, help="the recipe's")
    ap.add_argument("--long-tokens", type=int, default=2048, help="response length of the log-prob comparison")
    ap.add_argument("--long-prompts", type=int, default=2, help="prompts in the log-prob comparison (x G responses)")
    ap.add_argument("--long-micro-batch-size", type=int, default=4,
                    help="micro-batch of the log-prob comparison (4 x 2,048 tokens: the iteration's 8 x 1,024)")
    ap.add_argument("--chunk-tokens", type=int, default=512, help="logprob_chunk_tokens for the chunked update")
    ap.add_argument("--repeats", type=int, default=1, help="timed iterations after the first (warm-up) one")
    ap.add_argument("--budget-s", type=float, default=420.0, help="optional parts are skipped past this many seconds")
    ap.add_argument("--peak-tflops", type=float, default=None)
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.tiny:
        args.prompts, args.group, args.prompt_tokens, args.max_new_tokens = 2, 2, 6, 8
        args.micro_batch_size, args.long_tokens, args.long_prompts, args.chunk_tokens = 2, 16, 1, 4
        args.long_micro_batch_size = 1
        args.repeats, args.budget_s = min(args.repeats, 1), max(args.budget_s, 120.0)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if device == "cpu":
        torch.set_num_threads(1)  # a shared CPU: one thread never falls off the OpenMP cliff (docs/performance.md)
    shape_name = "toy" if args.tiny else SHAPE
    shape = step_timing.SHAPES[shape_name]
    B, G, P, T = args.prompts, args.group, args.prompt_tokens, args.max_new_tokens
    result: dict = {"shape": shape_name, "device": device, "dtype": str(dtype).removeprefix("torch."),
                    "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
                    "torch": torch.__version__, "prompts": B, "group": G, "prompt_tokens": P, "max_new_tokens": T,
                    "micro_batch_size": args.micro_batch_size, "every_response_to_budget": True}
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save(note: str | None = None) -> None:
        result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        out_path.write_text(json.dumps(result, indent=1))
        if note:
            print(note, flush=True)

    def time_left() -> float:
        return args.budget_s - (time.perf_counter() - t_start)

    # ---- the model: the shape's config, random weights built on the device; float32 masters, as the loop keeps them
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(**shape, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6)
    t = time.perf_counter()
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = None
    n_params = sum(p.numel() for p in model.parameters())
    n_body = n_params - model.get_input_embeddings().weight.numel() - (
        0 if shape["tie_word_embeddings"] else model.get_output_embeddings().weight.numel())
    peak, peak_source = step_timing.peak_tflops(device, dtype, args.peak_tflops)
    result.update(params=n_params, params_body=n_body, build_s=round(time.perf_counter() - t, 1),
                  peak_tflops=float(f"{peak:.4g}"), peak_source=peak_source)
    save(f"{shape_name}: {n_params / 1e6:.1f}M parameters on {result['device_name']}, compute {result['dtype']}; "
         f"peak {peak:.3g} TFLOP/s ({peak_source})")
    model.gradient_checkpointing_enable()  # the recipe's
    model.config.use_cache = False
    tok = word_tokenizer(shape["vocab_size"])
    engine = HFEngine(model, tok, batch_size=B * G, dtype=dtype)
    engine.stop_token_ids = []  # no stop token: every response runs to the budget
    template = Template(name="words", prompt="{question}", answer_format=TEMPLATES["r1"].answer_format)
    grader = Grader(workers=2)
    objective = resolve_objective("dr_grpo", max_new_tokens=T)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.95), weight_decay=0.0)
    gen_flops, train_flops = step_timing.step_flops(shape, n_body, B, G, P, T)
    rng = torch.Generator().manual_seed(0)

    def prompts_rows(n: int) -> list[dict]:
        return [{"problem": " ".join(f"t{i}" for i in torch.randint(2, shape["vocab_size"], (P,), generator=rng).tolist()),
                 "answer": "0"} for _ in range(n)]

    def update(batch: Rollouts, micro_batch_size: int, **chunk) -> float:
        """advantages, accumulate_gradients, clip, AdamW: seconds."""
        rewards = (torch.arange(len(batch)) % 3 == 0).float()  # a fixed pattern: the cost does not depend on it
        batch.rewards = rewards
        batch.advantages = group_advantages(rewards, G, scale="none")
        batch.keep = torch.ones(len(batch), dtype=torch.bool)
        model.train()
        sync(device)
        t = time.perf_counter()
        accumulate_gradients(model, batch, objective, micro_batch_size=micro_batch_size, temperature=1.0,
                             pad_id=engine.pad_id, device=device, dtype=dtype, **chunk)
        dist.grad_norm(model, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        return time.perf_counter() - t

    # ---- 1. the iteration: generate and grade, then the update
    iterations = []
    for rep in range(1 + args.repeats):
        if rep and time_left() < 1.5 * sum(iterations[-1][k] for k in ("generate_s", "grade_s", "train_s")):
            result["note_repeats"] = f"{rep - 1} timed iteration(s): the time budget allowed no more"
            break
        rows = prompts_rows(B)
        params = SamplingParams(n=G, temperature=1.0, max_new_tokens=T, seed=rep)
        reset_peak(device)
        sync(device)
        batch = generate_and_grade(engine, rows, template, params, grader)
        sync(device)
        t_gen, t_grade = batch.timing["time/generate"], batch.timing["time/grade"]
        gen_peak = peak_gib(device)
        t_train = update(batch, args.micro_batch_size)
        tokens = sum(len(g.token_ids) for g in batch.generations)
        assert tokens == B * G * T, f"{tokens} tokens generated, expected {B * G * T}: a response stopped early"
        step = t_gen + t_grade + t_train
        row = {"iteration": rep, "warm_up": rep == 0, "generate_s": round(t_gen, 3), "grade_s": round(t_grade, 3),
               "train_s": round(t_train, 3), "generated_tokens": tokens,
               "generation_tokens_per_s": round(tokens / t_gen, 1),
               "training_tokens_per_s": round(B * G * (P + T) / t_train, 1),
               "split": {"generate": round(t_gen / step, 3), "grade": round(t_grade / step, 3),
                         "train": round(t_train / step, 3)},
               "mfu": float(f"{(gen_flops + train_flops) / (step * peak * 1e12):.4g}"),
               "mfu_generate": float(f"{gen_flops / (t_gen * peak * 1e12):.4g}"),
               "mfu_train": float(f"{train_flops / (t_train * peak * 1e12):.4g}"),
               "peak_gpu_gib": peak_gib(device), "peak_gpu_gib_generate": gen_peak}
        iterations.append(row)
        result["iterations"] = iterations
        save(json.dumps(row))
    last = iterations[-1]
    result["iteration"] = last
    save(f"iteration ({B} x {G} x {T}, {'warm' if not last['warm_up'] else 'first, cold'}): generate "
         f"{last['generate_s']:.2f} s ({last['generation_tokens_per_s']:.0f} tokens/s), grade {last['grade_s']:.2f} s, "
         f"train {last['train_s']:.2f} s ({last['training_tokens_per_s']:.0f} tokens/s); MFU {last['mfu']:.2%} "
         f"(generate {last['mfu_generate']:.2%}, train {last['mfu_train']:.2%}); peak GPU memory "
         f"{last['peak_gpu_gib']} GiB")

    # ---- 2. drzero plan's prediction, beside the measured peak
    result["plan"] = plan_prediction(args, shape)
    save(f"drzero plan: {result['plan'].get('note') or result['plan'].get('output', '')[-300:]}")

    # ---- 3. one update at T = long_tokens, unchunked and (when the setting exists) chunked
    chunk_supported = "logprob_chunk_tokens" in inspect.signature(accumulate_gradients).parameters
    long = {"tokens": args.long_tokens, "responses": args.long_prompts * G, "micro_batch_size": args.long_micro_batch_size,
            "chunk_supported": chunk_supported}
    result["logprob_long"] = long
    variants = [("unchunked", {})]
    if chunk_supported:
        variants = [("unchunked", {"logprob_chunk_tokens": 0}),
                    ("chunked", {"logprob_chunk_tokens": args.chunk_tokens})]
    else:
        long["note"] = "accumulate_gradients has no logprob_chunk_tokens in this checkout: unchunked only"
    gen_long = torch.Generator().manual_seed(1)
    long_prompts = [torch.randint(2, shape["vocab_size"], (P,), generator=gen_long).tolist() for _ in range(args.long_prompts)]
    gens = [Generation(prompt_index=i // G, prompt_token_ids=long_prompts[i // G],
                       token_ids=torch.randint(2, shape["vocab_size"], (args.long_tokens,), generator=gen_long).tolist(),
                       text="", finish_reason="length") for i in range(args.long_prompts * G)]
    for name, chunk in variants:
        if time_left() < 60 and not args.tiny:
            long[name] = {"skipped": "time budget"}
            continue
        batch = Rollouts(rows=[{}] * len(gens), generations=gens, grades=[None] * len(gens),
                         rewards=torch.zeros(len(gens)), group_size=G)
        reset_peak(device)
        try:
            long[name] = {"train_s": round(update(batch, args.long_micro_batch_size, **chunk), 3),
                          "peak_gpu_gib": peak_gib(device)}
        except RuntimeError as e:
            if not is_oom(e):
                raise
            optimizer.zero_grad(set_to_none=True)
            long[name] = {"error": "out of memory", "peak_gpu_gib": peak_gib(device)}
        save(f"log-probs at T={args.long_tokens} ({len(gens)} responses), {name}: {long[name]}")

    # ---- 4. drzero's HF-engine decode vs transformers' generate, same prompts, samples and budget
    compare: dict = {}
    result["decode_vs_generate"] = compare
    need = 3 * last["generate_s"]
    if time_left() < need and not args.tiny:
        compare["skipped"] = f"time budget ({time_left():.0f} s left, about {need:.0f} s needed)"
        save(f"decode vs generate: {compare['skipped']}")
    else:
        model.eval()
        rows = prompts_rows(B)
        ids = tok([r["problem"] for r in rows], add_special_tokens=False)["input_ids"]
        params = SamplingParams(n=G, temperature=1.0, max_new_tokens=T, seed=7)
        with torch.no_grad():
            sync(device)
            t = time.perf_counter()
            with dist.autocast(device, dtype):
                gens = engine._generate_chunk(ids, 0, params, torch.Generator().manual_seed(7))
            sync(device)
            t_drzero = time.perf_counter() - t
            input_ids = torch.tensor([p for p in ids for _ in range(G)], device=device)  # [B*G, P], same length: no pad
            reset_peak(device)
            sync(device)
            t = time.perf_counter()
            with dist.autocast(device, dtype):
                out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=True,
                                     temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=T, min_new_tokens=T,
                                     use_cache=True, pad_token_id=0)
            sync(device)
            t_hf = time.perf_counter() - t
        n_drzero, n_hf = sum(len(g.token_ids) for g in gens), out[:, input_ids.shape[1]:].numel()
        compare.update(drzero_s=round(t_drzero, 3), drzero_tokens=n_drzero,
                       drzero_tokens_per_s=round(n_drzero / t_drzero, 1), transformers_generate_s=round(t_hf, 3),
                       transformers_tokens=n_hf, transformers_tokens_per_s=round(n_hf / t_hf, 1),
                       tokens_per_s_ratio=round((n_drzero / t_drzero) / (n_hf / t_hf), 3))
        save(f"decode vs generate ({B * G} rows x {T} tokens): drzero {compare['drzero_tokens_per_s']:.0f} tokens/s, "
             f"transformers generate {compare['transformers_tokens_per_s']:.0f} tokens/s, ratio "
             f"{compare['tokens_per_s_ratio']:.2f}")
    save()
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
