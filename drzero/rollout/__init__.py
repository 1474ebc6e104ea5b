"""Generation engines behind one small interface, and the one generate-and-grade path.

An engine (``Engine``) has ``pad_id`` and four methods:

    generate(prompts: list[str], params: SamplingParams) -> list[Generation]
        ``len(prompts) * params.n`` generations, prompt-major (all samples of prompt 0,
        then prompt 1, ...); an engine may also take ``on_finished``, a callable it hands
        responses to as soon as they stop (``HFEngine`` does; ``generate_and_grade`` grades
        them while the rest decode);
    sync(model)      make the learner's current weights the ones that generate next;
    sleep(), wake_up()   free and retake accelerator memory around the learner's update
                         (no-ops where that means nothing).

Engines: ``HFEngine`` (transformers, CPU or GPU; ``drzero.rollout.hf``), ``VLLMEngine``
(``drzero.rollout.vllm_engine``, the ``vllm`` extra), ``EndpointEngine`` (an
OpenAI-compatible server; ``drzero.rollout.openai_endpoint``; fixed weights).

``generate_and_grade`` is what training, evaluation and probing all call: prompts from
question rows through a template, responses from an engine, verdicts from the grader,
returned as one typed batch, ``Rollouts``.
"""

from __future__ import annotations

import inspect
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

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

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]: ...

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

    With an engine that reports responses as they stop (``on_finished``), they are graded
    on a background thread while the engine decodes the rest; ``time/grade`` is then only
    the grading left after generation ends, and ``time/grade_busy`` all of it."""
    prompts = [template.render(r["problem"]) for r in rows]
    grading = GradeAsTheyFinish(grader, rows, template.answer_format)
    t = time.perf_counter()
    try:
        if "on_finished" in inspect.signature(engine.generate).parameters:
            gens = engine.generate(prompts, params, on_finished=grading.submit)
        else:
            gens = engine.generate(prompts, params)
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
