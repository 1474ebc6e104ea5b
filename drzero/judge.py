"""An LLM judge behind an OpenAI-compatible ``/v1/chat/completions`` endpoint.

Two questions from the paper (Sec. 2): does a response *answer* the question (rather
than continue the text), and which self-reflection category it falls in (0 off-topic or
incoherent, 1 answers without self-reflection, 2 shows self-reflection, 3 only code).
The API key is read from the environment variable you name and is never written.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from drzero.config import check_url
from drzero.errors import DrZeroError
from drzero.rollout.openai_endpoint import api_key_from_env, post_json

ANSWERING_PROMPT = (
    "Below is a math question and a model's response. Does the response attempt to answer the question "
    "(work on it and give an answer), rather than ignore it or continue the text with unrelated content "
    "such as more questions? Reply with exactly one word: YES or NO.\n\nQuestion:\n{question}\n\nResponse:\n{response}"
)
REFLECTION_PROMPT = (
    "Below is a math question and a model's response. Classify the response:\n"
    "0 = off-topic or incoherent\n1 = answers the question without self-reflection\n"
    "2 = answers the question and shows self-reflection (checks, doubts or revises its own reasoning)\n"
    "3 = only code\nReply with the single digit.\n\nQuestion:\n{question}\n\nResponse:\n{response}"
)


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

    def _ask(self, prompt: str) -> str:
        payload = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0, "max_tokens": 8}
        resp = post_json(self.url, payload, api_key=self.api_key, timeout_s=self.timeout_s, retries=self.retries)
        try:
            content = resp["choices"][0]["message"]["content"]
            if content is not None and not isinstance(content, str):
                raise TypeError
            return content or ""
        except (KeyError, IndexError, TypeError):
            raise DrZeroError(f"judge endpoint {self.url} returned an unexpected body (no choices[0].message.content)") from None

    def _map(self, template: str, pairs: list[tuple[str, str]]) -> list[str]:
        prompts = [template.replace("{question}", q).replace("{response}", r) for q, r in pairs]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._ask, prompts))

    def answering(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """True where the judge says the response attempts to answer."""
        return [bool(re.match(r"\s*yes", a, re.IGNORECASE)) for a in self._map(self.answering_prompt, pairs)]

    def reflection(self, pairs: list[tuple[str, str]]) -> list[int]:
        """Category 0-3 per response (-1 if the judge's reply has no digit 0-3)."""
        out = []
        for a in self._map(self.reflection_prompt, pairs):
            m = re.search(r"[0-3]", a)
            out.append(int(m.group(0)) if m else -1)
        return out
