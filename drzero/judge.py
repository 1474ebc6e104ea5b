"""An LLM judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

Two questions from the paper (Sec. 2), asked with the categories of the reference's
analysis scripts (sail-sg/understand-r1-zero analysis/answering_ability.py and
analysis/sr_detection.py, gpt-4o-mini at temperature 0 there):
- answering: does the response try to answer the question (1), or is it unrelated text,
  hallucination or a continuation such as more questions (0)? This judged share is the
  paper's "answering rate";
- self-reflection: 0 off-topic, nonsensical, incoherent or overly repetitive; 1 answers
  without self-reflection; 2 shows self-reflection (explicit keywords or implicit
  re-checking, whatever its correctness); 3 only Python code, without self-reflection.
The API key is read from the environment variable you name and is never written.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from drzero.inputs import check_url
from drzero.errors import DrZeroError
from drzero.rollout.openai_endpoint import api_key_from_env, post_json

ANSWERING_PROMPT = (
    "You will see a math question and the output a language model produced for it. Decide whether the output "
    "attempts to answer the question. Outputs that do not: unrelated or random text, hallucinated content, or text "
    "that merely continues the prompt (for example by writing more questions). An output that works on the question "
    "counts as an attempt however incomplete or wrong its answer is.\n\n"
    "Start your reply with a single integer (0 or 1), then a short reason:\n"
    "0 = the output does not attempt to answer the question\n"
    "1 = the output attempts to answer the question\n\n"
    "Question:\n{question}\n\nResponse:\n{response}"
)
REFLECTION_PROMPT = (
    "You will see a math question and a model's response. Classify the response into one category:\n"
    "0 = off-topic, nonsensical, incoherent, overly repetitive (the same text over and over), or without logical "
    "reasoning; this includes hallucinated content and responses that do not relate to the question\n"
    "1 = attempts to answer the question without self-reflection: it solves directly, never revisits a step, "
    "verifies its answer or tries another approach\n"
    "2 = shows self-reflection of any kind, whether or not the answer is right: explicit words such as recheck, "
    "rethink, reassess, reevaluate, re-examine, reconsider, reanalyze, double-check, check again, think again, "
    "verify again, go over the steps; or implicit behaviour such as revisiting the solution, questioning an "
    "assumption or trying an alternative approach\n"
    "3 = only Python code for the calculation, without self-reflection\n\n"
    "Give a very brief explanation first, then end your reply with the category number (0, 1, 2 or 3).\n\n"
    "Question:\n{question}\n\nResponse:\n{response}"
)
ANSWERING_MAX_TOKENS, REFLECTION_MAX_TOKENS = 100, 300  # as the reference scripts


def parse_answering(reply: str) -> bool:
    """True when the judge's reply starts with 1 (or yes): the response attempts an answer."""
    return bool(re.match(r"\W*(1|yes)\b", reply, re.IGNORECASE))


def parse_reflection(reply: str) -> int:
    """The category the judge ends its reply with (0-3), -1 if there is none."""
    found = re.findall(r"(?<![\d.])([0-3])(?![\d])", reply)
    return int(found[-1]) if found else -1


class Judge:
    def __init__(self, url: str, model: str, *, api_key_env: str | None = None, concurrency: int = 8,
                 timeout_s: float = 120.0, retries: int = 3, answering_prompt: str = ANSWERING_PROMPT,
                 reflection_prompt: str = REFLECTION_PROMPT):
        check_url(url, "--judge-endpoint")
        url = url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else (url + "/chat/completions" if url.endswith("/v1") else url + "/v1/chat/completions")
        self.model = model
        self.api_key = api_key_from_env(api_key_env, "--judge-api-key-env")
        for name, prompt in (("answering", answering_prompt), ("reflection", reflection_prompt)):
            if "{question}" not in prompt or "{response}" not in prompt:
                raise DrZeroError(f"the judge's {name} prompt must contain {{question}} and {{response}}")
        self.concurrency, self.timeout_s, self.retries = concurrency, timeout_s, retries
        self.answering_prompt, self.reflection_prompt = answering_prompt, reflection_prompt

    def _ask(self, prompt: str, max_tokens: int) -> str:
        payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0,
                   "max_tokens": max_tokens}
        resp = post_json(self.url, payload, api_key=self.api_key, timeout_s=self.timeout_s, retries=self.retries)
        try:
            content = resp["choices"][0]["message"]["content"]
            if content is not None and not isinstance(content, str):
                raise TypeError
            return content or ""
        except (KeyError, IndexError, TypeError):
            raise DrZeroError(f"judge endpoint {self.url} returned an unexpected body (no choices[0].message.content)") from None

    def _map(self, template: str, pairs: list[tuple[str, str]], max_tokens: int) -> list[str]:
        prompts = [template.replace("{question}", q).replace("{response}", r) for q, r in pairs]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda p: self._ask(p, max_tokens), prompts))

    def answering(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """True where the judge says the response attempts to answer."""
        return [parse_answering(a) for a in self._map(self.answering_prompt, pairs, ANSWERING_MAX_TOKENS)]

    def reflection(self, pairs: list[tuple[str, str]]) -> list[int]:
        """Category 0-3 per response (-1 if the judge's reply ends with no category)."""
        return [parse_reflection(a) for a in self._map(self.reflection_prompt, pairs, REFLECTION_MAX_TOKENS)]
