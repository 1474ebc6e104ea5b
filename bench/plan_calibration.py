"""``drzero plan``'s memory model against a real one-iteration ``drzero train`` on the CPU.

    python bench/plan_calibration.py --shape qwen2.5-0.5b --max-new-tokens 512 --prompts 1 --group-size 4 \
        --micro-batch-size 4
    python bench/plan_calibration.py --shape smollm2-360m --max-new-tokens 1024 --gradient-checkpointing

Builds a random-init model of a real shape (its config.json values, the real vocabulary; no
weights downloaded) with a word-level tokenizer over the whole vocabulary into a folder, runs
``drzero train --model FOLDER --max-steps 1`` on the toy questions in a child process (no
evaluation), and prints the child's peak RSS beside the plan's predicted peak of a first
iteration (``drzero plan --gpu cpu --gpus 1`` with the same flags). A random-init model never
emits its end token on purpose, so every response runs to ``--max-new-tokens`` (the worst case
that the plan counts). The last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# config.json values (architecture only) of public models, with their real vocabularies
SHAPES = {
    "qwen2.5-0.5b": dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "smollm2-135m": dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True),
    "smollm2-360m": dict(model_type="llama", hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                         num_attention_heads=15, num_key_value_heads=5, vocab_size=49152, tie_word_embeddings=True),
    "llama-3.2-1b-8l": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=8,
                            num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
}


def build_model(shape: str, folder: Path) -> None:
    """A random-init model of ``shape`` (bf16 on disk, as released checkpoints) and a byte-level
    tokenizer over its whole vocabulary, saved to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    spec = dict(SHAPES[shape])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec, max_position_embeddings=4096, rope_theta=10000.0,
                                  bos_token_id=len(pre_tokenizers.ByteLevel.alphabet()) + 1,
                                  eos_token_id=len(pre_tokenizers.ByteLevel.alphabet()) + 1,
                                  pad_token_id=len(pre_tokenizers.ByteLevel.alphabet()))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    # byte-level BPE without merges: one token per byte of text (what Qwen2's own tokenizer class
    # makes of a tokenizer.json), the rest of the vocabulary filler words, two special tokens
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab.update({"<|pad|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    vocab.update({f"w{i}": i for i in range(len(vocab), spec["vocab_size"])})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|pad|>", "<|endoftext|>"])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|endoftext|>").save_pretrained(folder)
    config.save_pretrained(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    ap.add_argument("--model-dir", default=None, help="reuse (or build into) this folder")
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--prompts", type=int, default=1)
    ap.add_argument("--group-size", type=int, default=2)
    ap.add_argument("--micro-batch-size", type=int, default=2)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--predict-only", action="store_true", help="print the plan's prediction, do not train")
    args = ap.parse_args()

    folder = Path(args.model_dir or Path(tempfile.gettempdir()) / f"drzero-calib-{args.shape}")
    if not (folder / "config.json").exists():
        t = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        build_model(args.shape, folder)
        print(f"built {args.shape} into {folder} in {time.perf_counter() - t:.0f} s", flush=True)

    flags = ["--model", str(folder), "--dataset", "toy:train", "--template", "r1", "--max-steps", "1",
             "--prompts-per-step", str(args.prompts), "--group-size", str(args.group_size),
             "--max-new-tokens", str(args.max_new_tokens), "--micro-batch-size", str(args.micro_batch_size),
             "--dtype", args.dtype, "--eval-datasets", "", "--grader-workers", "1", "--device", "cpu",
             "--lr", "1e-6"] + (["--gradient-checkpointing"] if args.gradient_checkpointing else [])

    # the plan's prediction, with the prompts' real length (the toy questions through the template)
    from transformers import AutoTokenizer

    from drzero.config import PlanConfig
    from drzero.parsing import parse_config
    from drzero.data import load_questions
    from drzero.plan import assumptions_of, estimate, read_model_shape, resolve_device
    from drzero.templates import get_template
    from drzero.train import step_prompts

    tok = AutoTokenizer.from_pretrained(folder)
    rows = load_questions("toy:train")
    template = get_template("r1")
    picked = [rows[i] for i in step_prompts(len(rows), args.prompts, 0, 0)]
    prompt_tokens = max(len(tok(template.render(r["problem"]), add_special_tokens=False)["input_ids"]) for r in picked)
    with tempfile.TemporaryDirectory() as out:
        plan_cfg = parse_config(PlanConfig, flags + ["--gpu", "cpu", "--gpus", "1", "--prompt-tokens", str(prompt_tokens),
                                                     "--output-dir", f"{out}/run"], prog="plan")
        est = estimate(plan_cfg, read_model_shape(str(folder)), resolve_device("cpu"), 1, assumptions_of(plan_cfg),
                       search=False)
        if args.predict_only:
            print(f"predicted peak of the first iteration: {est.first_peak:.2f} GiB (prompt {prompt_tokens} tokens)")
            return
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "drzero", "train", *flags, "--output-dir", f"{out}/run",
                               "--no-progress"], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        raise SystemExit(f"drzero train failed ({proc.returncode})")
    measured = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30  # KiB on Linux
    row = {"shape": args.shape, "max_new_tokens": args.max_new_tokens, "prompt_tokens": prompt_tokens,
           "responses": args.prompts * args.group_size, "micro_batch_size": args.micro_batch_size,
           "gradient_checkpointing": args.gradient_checkpointing, "dtype": args.dtype,
           "params_b": round(est.shape.params / 1e9, 3),
           "predicted_gib": round(est.first_peak, 2), "measured_gib": round(measured, 2),
           "ratio": round(est.first_peak / measured, 3), "wall_s": round(wall),
           "phases_gib": {k: round(v, 2) for k, v in est.peaks.items()}}
    print("plan parts (GiB): " + ", ".join(f"{p.name} {p.gib:.2f}" for p in est.parts))
    print("RESULT " + json.dumps(row))


if __name__ == "__main__":
    main()
