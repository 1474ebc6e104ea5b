"""The prompt length limit (``--max-prompt-tokens``), applied as the questions load.

A question is dropped when its prompt (the question under the template) is longer than
the limit in the model's tokens; how many were dropped, and the longest, is said in one
line. Without it one 80,000-token question makes a generation batch's keys and values
(and the learner's activations) grow past the machine's memory. The reference cuts
prompts at 1,024 tokens, the default here; 0 turns the limit off. Train, eval and probe
apply it (eval and probe: a benchmark evaluated on fewer questions says so).
"""

from __future__ import annotations

from drzero.errors import DrZeroError

# no tokenizer makes a token of more characters than this: a longer text is over the limit
# without being tokenized (a 200 KB question is refused in microseconds)
MAX_CHARS_PER_TOKEN = 64


def load_tokenizer(model: str):
    """The tokenizer of ``model`` alone (no weights), to count prompt tokens."""
    from transformers import AutoTokenizer

    from drzero.models import resolve_model_path

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model))
        tokenizer.model_max_length = 1 << 60  # counting only: no "longer than the maximum" warning per long question
        return tokenizer
    except DrZeroError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the library raises, one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DrZeroError(f"cannot load the tokenizer of {model!r}: {type(e).__name__}: {first[:200]}") from None


def prompt_tokens(tokenizer, templates, question: str, max_prompt_tokens: int) -> int:
    """The longest prompt of ``question`` under ``templates``, in tokens (a lower bound of
    ``max_prompt_tokens * MAX_CHARS_PER_TOKEN`` chars' worth when it is too long to tokenize)."""
    longest = 0
    for template in templates:
        text = template.render(question)
        if len(text) > max_prompt_tokens * MAX_CHARS_PER_TOKEN:
            return max(longest, len(text) // MAX_CHARS_PER_TOKEN)
        longest = max(longest, len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return longest


def drop_long_prompts(rows: list[dict], templates, tokenizer, max_prompt_tokens: int, what: str,
                      log=print) -> list[dict]:
    """``rows`` without the questions whose prompt is over ``max_prompt_tokens`` (0: all
    rows). Says how many were dropped; refuses a set where none is left."""
    if not max_prompt_tokens:
        return rows
    lengths = [prompt_tokens(tokenizer, templates, str(r["problem"]), max_prompt_tokens) for r in rows]
    kept = [r for r, n in zip(rows, lengths) if n <= max_prompt_tokens]
    dropped = len(rows) - len(kept)
    if dropped:
        note = (f"{what}: {dropped} of {len(rows)} questions are longer than --max-prompt-tokens {max_prompt_tokens} "
                f"(the longest: {max(lengths)} tokens)")
        if not kept:
            raise DrZeroError(f"{note}: none is left; raise --max-prompt-tokens")
        log(f"{note}; dropped")
    return kept
