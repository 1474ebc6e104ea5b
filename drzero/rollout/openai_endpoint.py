"""OpenAI-compatible ``/v1/completions`` engine for models served elsewhere (vLLM, SGLang).

Bounded concurrency (a thread pool), retries with exponential backoff on connection
errors, timeouts, 429 and 5xx, and a resumable JSONL cache: every finished request is
appended at once, and a rerun with the same cache skips what is already there.
Token counts come from the server's ``logprobs.tokens`` when present, else from
``usage.completion_tokens`` (exact for n=1).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from drzero.inputs import check_url
from drzero.errors import DrZeroError
from drzero.rollout import Generation, SamplingParams


def api_key_from_env(variable: str | None, flag: str) -> str | None:
    """The API key held in environment ``variable`` (named by ``flag``); never written anywhere."""
    if not variable:
        return None
    key = os.environ.get(variable)
    if key is None:
        raise DrZeroError(f"environment variable {variable} (from {flag}) is not set")
    return key


def post_json(url: str, payload: dict, *, api_key: str | None = None, timeout_s: float = 300.0, retries: int = 5,
              backoff_s: float = 1.0) -> dict:
    """POST JSON with retries and exponential backoff on connection errors, timeouts,
    408/409/429 and 5xx; other HTTP errors and exhausted retries raise DrZeroError."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    check_url(url, "endpoint")
    last = None
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
            if e.code not in (408, 409, 429) and e.code < 500:
                detail = " ".join(e.read()[:200].decode(errors="replace").split())
                raise DrZeroError(f"endpoint {url} refused the request: HTTP {e.code} {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = " ".join(str(getattr(e, "reason", e)).split())
        else:  # the server answered: a body that is not JSON is its fault, not the network's
            try:
                return json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                start = " ".join(raw[:80].decode(errors="replace").split())
                raise DrZeroError(f"endpoint {url} answered with invalid JSON (is it an OpenAI-compatible API? "
                                  f"the body starts {start!r})") from None
        if attempt < retries:
            time.sleep(backoff_s * 2**attempt)
    raise DrZeroError(f"endpoint {url} unreachable after {retries + 1} attempts ({last})")


def check_completion(response, url: str, n: int) -> None:
    """``response`` has ``n`` choices, each with a string ``text``; else a one-line error
    (and the response is not cached)."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list):
        raise DrZeroError(f"endpoint {url} returned no 'choices' (is it an OpenAI-compatible completions API?)")
    if len(choices) < n:
        raise DrZeroError(f"endpoint {url} returned {len(choices)} choices for n={n}")
    for c in choices:
        if not isinstance(c, dict) or not isinstance(c.get("text"), str):
            got = c.get("text") if isinstance(c, dict) else c
            raise DrZeroError(f"endpoint {url} returned a choice whose text is {json.dumps(got)[:60]}, not a string "
                              "(is it a completions API, not chat/completions?)")


class EndpointEngine:
    def __init__(self, url: str, model: str, *, api_key: str | None = None, concurrency: int = 8,
                 timeout_s: float = 300.0, retries: int = 5, backoff_s: float = 1.0, cache_path: str | None = None):
        check_url(url, "--endpoint")
        url = url.rstrip("/")
        self.url = url if url.endswith("/completions") else (url + "/completions" if url.endswith("/v1") else url + "/v1/completions")
        self.model = model
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.cache_path = Path(cache_path) if cache_path else None
        self._cache: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.cache_path and self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    check_completion(entry["response"], self.url, 0)
                    self._cache[entry["key"]] = entry["response"]
                except (json.JSONDecodeError, KeyError, TypeError, DrZeroError):
                    continue  # a line cut by a crash (or an unusable answer): that request is redone

    def _key(self, prompt: str, params: SamplingParams) -> str:
        blob = json.dumps([self.model, prompt, params.n, params.temperature, params.top_p, params.max_new_tokens,
                           list(params.stop), params.seed])
        return hashlib.sha256(blob.encode()).hexdigest()

    def _post(self, payload: dict) -> dict:
        return post_json(self.url, payload, api_key=self.api_key, timeout_s=self.timeout_s, retries=self.retries,
                         backoff_s=self.backoff_s)

    def _complete(self, prompt: str, params: SamplingParams) -> dict:
        key = self._key(prompt, params)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        payload = {"model": self.model, "prompt": prompt, "max_tokens": params.max_new_tokens, "n": params.n,
                   "temperature": params.temperature, "top_p": params.top_p}
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        response = self._post(payload)
        check_completion(response, self.url, params.n)
        with self._lock:
            self._cache[key] = response
            if self.cache_path:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.cache_path, "a") as f:
                    f.write(json.dumps({"key": key, "response": response}) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
        return response

    pad_id = 0  # no token ids come back from a server

    def sync(self, model) -> None:
        raise DrZeroError("an endpoint serves fixed weights; it cannot generate for a policy being trained")

    def sleep(self) -> None:
        """Nothing to free here: the server owns its memory."""

    def wake_up(self) -> None:
        """Nothing to retake."""

    def generate(self, prompts: list[str], params: SamplingParams, on_finished=None) -> list[Generation]:
        """``len(prompts) * params.n`` generations, prompt-major (all at once: ``on_finished`` is not called)."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            responses = list(pool.map(lambda p: self._complete(p, params), prompts))
        out = []
        for i, resp in enumerate(responses):
            choices = sorted(resp["choices"], key=lambda c: c.get("index", 0))
            for c in choices[: params.n]:
                tokens = (c.get("logprobs") or {}).get("tokens")
                n_tokens = len(tokens) if tokens else (resp.get("usage", {}).get("completion_tokens", 0) if params.n == 1 else 0)
                text = c["text"]
                stop = c.get("stop_reason")  # vLLM and SGLang name the stop string that ended it
                if isinstance(stop, str) and stop in params.stop and not text.endswith(stop):
                    text += stop  # kept, as the local engines keep it
                if not n_tokens:
                    n_tokens = len(text.split())
                out.append(Generation(i, [], [0] * n_tokens, text,
                                      "length" if c.get("finish_reason") == "length" else "stop"))
        return out
