"""An eval's ``--output`` folder, resumable: ``EvalOutput``.

``samples.jsonl`` grows (appended, fsynced) after every chunk of ``--batch-size`` questions
and ``results.json`` is replaced atomically after every benchmark, so nothing finished is
lost when an eval is interrupted; the same command with the same ``--output`` carries on
from there (``drzero.evaluate.run_eval``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

from drzero.analysis import mean_or_nan
from drzero.config import EvalConfig
from drzero.errors import DrZeroError

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

    def mark_interrupted(self) -> None:
        """results.json says the eval was stopped (by a signal), not that it is still running."""
        self.results["status"] = "interrupted"
        _write_atomic(self.results_path, json.dumps(self.results, indent=2))

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


def previous_batch_size(folder: str) -> int | None:
    """The ``--batch-size`` of an earlier eval in ``folder`` (a resumed eval keeps its own:
    its finished chunks stay valid), else None."""
    try:
        previous = json.loads((Path(folder) / "results.json").read_text())["config"]["batch_size"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no earlier eval there (a foreign results.json is refused later, by EvalOutput)
    return previous if isinstance(previous, int) and not isinstance(previous, bool) and previous >= 1 else None
