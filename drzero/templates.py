"""The prompt templates, defined once (paper Sec. 2.1) and shared by train, eval and probe.

Each template says how the prompt is built, where the answer is read from and where
generation stops:
- ``r1``: the DeepSeek-R1-Zero template; answer in ``<answer>...</answer>``; stop at
  ``</answer>``.
- ``qwen_math``: the Qwen2.5-Math chat template; answer in the last ``\\boxed{}``; the
  model stops itself (EOS / ``<|im_end|>``).
- ``none``: the bare question; answer in the last ``\\boxed{}``.
A custom template is any string containing ``{question}`` (answer format ``auto``).
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


@dataclass(frozen=True)
class Template:
    name: str
    prompt: str  # a format string with one field, {question}
    answer_format: str  # drzero.grader answer format
    stop: tuple[str, ...] = ()  # stop strings (besides the tokenizer's EOS)

    def render(self, question: str) -> str:
        return self.prompt.format(question=question)


TEMPLATES: dict[str, Template] = {
    "r1": Template("r1", R1_PROMPT, "answer_tag", ("</answer>",)),
    "qwen_math": Template("qwen_math", QWEN_MATH_PROMPT, "boxed", ("<|im_end|>",)),
    "none": Template("none", "{question}", "boxed"),
}


def get_template(name_or_string: str) -> Template:
    """A template by name, or a custom template string containing ``{question}``."""
    if name_or_string in TEMPLATES:
        return TEMPLATES[name_or_string]
    if "{question}" in name_or_string:
        escaped = name_or_string.replace("{", "{{").replace("}", "}}").replace("{{question}}", "{question}")
        return Template("custom", escaped, "auto")
    raise DrZeroError(
        f"unknown template {name_or_string!r}; choose from {', '.join(TEMPLATES)} or pass a string containing {{question}}"
    )
