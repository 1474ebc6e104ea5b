"""How strongly models prefer the right result over a slip, at the slips of one model's held-out answers.

    python scripts/toy_slip_margins.py SLIPPED_EVAL BASE_EVAL --models toy-v2 RUN/checkpoints/step-000300 ...

For every question that ``SLIPPED_EVAL`` (a ``drzero eval --output`` folder) got wrong
and ``BASE_EVAL`` got right, it takes the first arithmetic sub-step that slipped in the
wrong answer (``47 - 10 = 27.``), feeds each model the prompt and that answer's text up
to the result, and prints the margin log P(right result) - log P(slipped result), in nats,
summarised over those slips for each model. The models that wrote ``SLIPPED_EVAL`` have
negative margins there by construction (greedy chose the slip); the others say whether
the slip was a near tie already (base model) or something only that training taught.
docs/probe-and-report.md ("Why GRPO ends less accurate") reads the toy-v2 runs with it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from drzero.toy.task import sub_steps


def first_slips(slipped: list[dict], base: list[dict]) -> list[tuple[str, str, int, int]]:
    """(question, response text up to the slipped result, right value, slipped value) for
    each question ``slipped`` got wrong and ``base`` got right (matched by ``index``)."""
    right = {r["index"] for r in base if r["correct"]}
    out = []
    for r in slipped:
        if r["correct"] or r["index"] not in right:
            continue
        for m, true in sub_steps(r["response"]):
            if true != int(m.group(4)):
                out.append((r["question"], r["response"][: m.start(4)], true, int(m.group(4))))
                break
    return out


def margins(model, tokenizer, template, slips) -> list[float]:
    """log P(right result + ".") - log P(slipped result + ".") after each slip's prefix."""
    import torch

    def logprob(prefix: str, cont: str) -> float:
        ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        more = tokenizer(cont, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model(torch.tensor([ids + more])).logits.log_softmax(-1)[0]
        return sum(out[len(ids) - 1 + i, t].item() for i, t in enumerate(more))

    prefixes = [template.render(q) + p for q, p, _, _ in slips]
    return [logprob(pre, f"{t}.") - logprob(pre, f"{s}.") for pre, (_, _, t, s) in zip(prefixes, slips)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("slipped", help="drzero eval --output folder whose wrong answers' slips are read")
    ap.add_argument("base", help="drzero eval --output folder on the same questions (its right answers pick the questions)")
    ap.add_argument("--models", nargs="+", required=True, help="models to score the slips with (names, folders, checkpoints)")
    ap.add_argument("--template", default="qwen_math", help="the prompt template the evals used (a name, not chat)")
    args = ap.parse_args(argv)
    from drzero.data import read_jsonl
    from drzero.errors import DrZeroError
    from drzero.models import load_model_and_tokenizer
    from drzero.templates import get_template

    try:
        rows = []
        for folder in (args.slipped, args.base):
            path = Path(folder) / "samples.jsonl"
            if not path.is_file():
                raise DrZeroError(f"{path} not found (drzero eval --output writes it)")
            rows.append(read_jsonl(path))
        slips = first_slips(*rows)
        try:
            template = get_template(args.template)
        except (ValueError, KeyError) as e:
            raise DrZeroError(f"--template {args.template}: {e}") from None
        print(f"{len(slips)} first slips in {args.slipped}'s wrong answers to questions {args.base} got right")
        if not slips:
            return 0
        for name in args.models:
            model, tokenizer = load_model_and_tokenizer(name)
            m = margins(model.eval(), tokenizer, template, slips)
            print(f"{name}: margin median {statistics.median(m):.2f} nats; prefers the slip in {sum(x < 0 for x in m) / len(m):.0%}; "
                  f"near tie (|margin| < 1) in {sum(abs(x) < 1 for x in m) / len(m):.0%}")
    except DrZeroError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError) as e:
        print(f"error: a sample without {e} (not drzero eval samples)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
