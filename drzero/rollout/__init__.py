"""Generation engines behind one small interface.

    engine.generate(prompts: list[str], params: SamplingParams) -> list[Generation]

returns ``len(prompts) * params.n`` generations, prompt-major (all samples of prompt 0,
then prompt 1, ...). Engines: ``HFEngine`` (transformers, CPU or GPU, batched with a KV
cache; ``drzero.rollout.hf``) and ``VLLMEngine`` (``drzero.rollout.vllm_engine``, needs
the ``vllm`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # samples per prompt
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()  # stop strings; the string is cut from text, kept in token_ids
    seed: int | None = None


@dataclass
class Generation:
    """One sampled response."""

    prompt_index: int  # index into the prompts list
    prompt_token_ids: list[int]
    token_ids: list[int]  # response tokens (EOS / stop tokens included)
    text: str  # decoded response, stop string and EOS removed
    finish_reason: str  # "stop" (EOS or stop string) or "length" (hit max_new_tokens)
    logprobs: list[float] = field(default_factory=list)  # sampled-token log-probs at the sampling temperature

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"
