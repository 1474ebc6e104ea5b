"""The prompt templates, defined once (paper Sec. 2.1) and shared by train, eval and probe.

Each template says how the prompt is built, where the answer is read from and where
generation stops. Every template also stops at the model's own EOS tokens; ``stop`` adds
strings (a special token such as ``<|im_end|>`` given there becomes a token id, see
``drzero.rollout.stop_rule``). The stops are the reference code's (sail-sg/understand-r1-zero,
train_zero_math.py ``ZeroMathActor.__init__`` and evaluate_model.py): ``r1`` stops at
``</answer>``; every other template unsets all external stops, so the model ends itself (EOS).
- ``r1``: the DeepSeek-R1-Zero template; answer in ``<answer>...</answer>``; stop at
  ``</answer>``.
- ``qwen_math``: the Qwen2.5-Math chat template; answer in the last ``\\boxed{}``; EOS only.
- ``none``: the bare question; answer in the last ``\\boxed{}``; EOS only.
- ``prime_zero``, ``open_reasoner_zero``: the templates the reference's evaluate_model.py
  uses for the PRIME-Zero and Open-Reasoner-Zero baselines of the paper's Table 4 (answer
  in ``\\boxed{}``, resp. in ``<answer>`` with a ``\\boxed{}`` inside read first); EOS only.
- ``chat``: the model's own chat template (its tokenizer's), a system prompt (by default the
  Qwen-Math instruction to reason step by step and box the answer) and the question as the
  user's turn; answer in the last ``\\boxed{}`` (``auto`` with another system prompt); EOS only.
  It is built from the tokenizer once (``get_template("chat", tokenizer=...)``) into an
  ordinary ``{question}`` template.
A custom template is any string containing ``{question}`` (answer format ``auto``).

``paper_template(model)`` is the template ``drzero eval --paper`` uses for a model: the
reference's rule (evaluate_model.py: a model name containing "prime" gets prime_zero, one
containing "open-reasoner-zero" gets open_reasoner_zero, else qwen_math; README: Llama
Oat-Zero models are evaluated with r1).
"""

from __future__ import annotations

from dataclasses import dataclass

from drzero.errors import DrZeroError

R1_PROMPT = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process in the mind and then provides the User with the answer. "
    "The reasoning process is enclosed within <think> </think> and answer is enclosed within <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.\n"
    "User: {question}\nAssistant: <think>"
)
QWEN_MATH_PROMPT = (
    "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{{}}.<|im_end|>\n"
    "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
)
# The two baselines' own templates, as the reference's evaluate_model.py renders them for
# PRIME-RL/Eurus-2-7B-PRIME-Zero (its model card's prompt, with the boxed-answer request
# appended to the question) and Open-Reasoner-Zero/Open-Reasoner-Zero-7B (its
# zero_setting_base.py jinja prompt with an empty bos_token; jinja drops the instruction's
# trailing newline).
PRIME_ZERO_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, respectively, "
    "i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {question}\n\nPresent the answer in LaTex format: \\boxed{{Your answer}}. Assistant:"
)
OPEN_REASONER_ZERO_PROMPT = (
    "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process in the mind and then provides the User with the answer. "
    "The reasoning process is enclosed within <think> </think> and answer is enclosed within <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: You must put your answer inside <answer> </answer> tags, i.e., <answer> answer here </answer>. "
    "And your final answer will be extracted automatically by the \\boxed{{}} tag.\n"
    "This is the problem:\n{question}\nAssistant: <think>"
)


@dataclass(frozen=True)
class Template:
    name: str
    prompt: str  # a format string with one field, {question}
    answer_format: str  # drzero.grader answer format
    stop: tuple[str, ...] = ()  # stop strings or special tokens (besides the model's EOS)

    def render(self, question: str) -> str:
        return self.prompt.format(question=question)


TEMPLATES: dict[str, Template] = {
    "r1": Template("r1", R1_PROMPT, "answer_tag", ("</answer>",)),
    "qwen_math": Template("qwen_math", QWEN_MATH_PROMPT, "boxed"),
    "none": Template("none", "{question}", "boxed"),
    "prime_zero": Template("prime_zero", PRIME_ZERO_PROMPT, "boxed"),
    "open_reasoner_zero": Template("open_reasoner_zero", OPEN_REASONER_ZERO_PROMPT, "answer_tag"),
}

# drzero eval --paper: (substring of the lower-cased model name, template), first match wins;
# evaluate_model.py's two overrides, then README's `--template r1` for sail/Llama-3.2-3B-Oat-Zero.
PAPER_TEMPLATE_RULES: tuple[tuple[str, str], ...] = (
    ("prime", "prime_zero"),
    ("open-reasoner-zero", "open_reasoner_zero"),
    ("llama", "r1"),
)
PAPER_DEFAULT_TEMPLATE = "qwen_math"  # evaluate_model.py's default --template


def paper_template(model: str) -> str:
    """The template the paper's evaluation uses for ``model`` (a hub name, a path or a served name)."""
    name = model.lower()
    return next((tpl for pattern, tpl in PAPER_TEMPLATE_RULES if pattern in name), PAPER_DEFAULT_TEMPLATE)


CHAT_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
_QUESTION_MARK = "\x00drzero-question\x00"


def chat_template(tokenizer, system_prompt: str | None = None) -> Template:
    """The ``chat`` template: the tokenizer's chat template applied to a system turn
    (``system_prompt``, default ``CHAT_SYSTEM_PROMPT``; "" for none) and the question as the
    user turn, ending where the assistant's answer starts."""
    if not getattr(tokenizer, "chat_template", None):
        raise DrZeroError("--template chat: the model's tokenizer has no chat template; use r1, qwen_math or none")
    system = CHAT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": _QUESTION_MARK}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as e:  # noqa: BLE001 - a chat template may refuse a system turn
        raise DrZeroError(f"--template chat: the tokenizer's chat template failed ({str(e).splitlines()[0][:200]}); "
                          "try --system-prompt ''") from None
    if text.count(_QUESTION_MARK) != 1:
        raise DrZeroError("--template chat: the tokenizer's chat template does not place the question once")
    prompt = text.replace("{", "{{").replace("}", "}}").replace(_QUESTION_MARK, "{question}")
    return Template("chat", prompt, "boxed" if "\\boxed" in system else "auto")


def get_template(name_or_string: str, *, tokenizer=None, system_prompt: str | None = None) -> Template:
    """A template by name, ``chat`` (needs the model's ``tokenizer``; ``system_prompt``), or a
    custom template string containing ``{question}``."""
    if name_or_string == "chat":
        if tokenizer is None:
            raise ValueError("the chat template is built from the model's tokenizer: pass tokenizer=")
        return chat_template(tokenizer, system_prompt)
    if name_or_string in TEMPLATES:
        return TEMPLATES[name_or_string]
    if "{question}" in name_or_string:
        escaped = name_or_string.replace("{", "{{").replace("}", "}}").replace("{{question}}", "{question}")
        return Template("custom", escaped, "auto")
    raise DrZeroError(
        f"unknown template {name_or_string!r}; choose from {', '.join(TEMPLATES)}, chat or pass a string containing {{question}}"
    )
