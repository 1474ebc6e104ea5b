"""What a training run writes while it runs: ``metrics.jsonl``, ``samples.jsonl`` and
``weights.jsonl`` in the run directory, a progress bar in a terminal (one plain line per
step otherwise: batch jobs log to files), and the optional external trackers (Weights &
Biases, trackio, TensorBoard). Only rank 0 writes.

JSON is strict: NaN and infinities are written as ``null`` (``json_safe``, ``dumps``,
``write_json``), so any JSON parser reads the files.

The trackers are checked (importable) before the model loads (``check_trackers``). A wandb
run is named after the run directory and its id is stored in ``RUN/trackers.json``, so
``--resume`` continues the same wandb run; trackio resumes by the run's name.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import secrets
import sys
import time
from dataclasses import asdict
from pathlib import Path

from drzero import dist
from drzero.errors import DrZeroError

TRACKERS_FILE = "trackers.json"


# ----------------------------------------------------------------------------- strict JSON
def json_safe(obj):
    """``obj`` with every NaN / +-inf float (also inside dicts, lists, tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj, **kwargs) -> str:
    """``json.dumps`` writing null for NaN/inf (never the bare ``NaN`` strict parsers reject)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """Write ``obj`` as strict JSON (null for NaN/inf) atomically: a temp file, fsynced,
    renamed over ``path`` (for results.json and the like: a kill never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(dumps(obj, indent=indent) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- the run's log
class RunLog:
    """The run's JSONL files, trackers and progress display, opened for appending."""

    FILES = ("metrics", "samples", "weights")

    def __init__(self, run_dir: Path, cfg, *, total_steps: int, start_step: int, progress: bool):
        self.main = dist.is_main()
        self.files = {name: open(run_dir / f"{name}.jsonl", "a") for name in self.FILES} if self.main else {}
        self.trackers = external_trackers(cfg, run_dir, resume=bool(cfg.resume)) if self.main else []
        self.progress = Progress(total_steps, start_step, enabled=progress and self.main and sys.stdout.isatty())

    def write(self, name: str, records: list[dict]) -> None:
        """Append ``records`` to ``{name}.jsonl`` (rank 0 only), flushed to the disk."""
        if not self.main:
            return
        f = self.files[name]
        f.write("".join(dumps(r) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())

    def step(self, step: int, metrics: dict) -> None:
        """One iteration's metrics: to metrics.jsonl, the trackers and the progress display."""
        if not self.main:
            return
        self.write("metrics", [metrics])
        for tracker in self.trackers:
            tracker.log(metrics, step)
        self.progress.update(step, metrics)

    def note(self, text: str, label: str) -> None:
        if self.main:
            self.progress.print(f"{label}: {text}")

    def warn(self, text: str) -> None:
        if self.main:
            self.progress.print(f"[yellow]WARNING[/yellow] {text}" if self.progress.bar else f"WARNING {text}")

    def close(self, ok: bool = True) -> None:
        """Stop the display, close the files and finish the trackers (``ok``: the run ended
        without an error)."""
        self.progress.close()
        for f in self.files.values():
            f.close()
        for tracker in self.trackers:
            tracker.finish(ok)


# ----------------------------------------------------------------------------- external trackers
TRACKER_PACKAGES = {"wandb_project": ("wandb", "--wandb-project needs the wandb package (pip install wandb)"),
                    "trackio": ("trackio", "--trackio needs the trackio package (pip install trackio)"),
                    "tensorboard": ("tensorboard", "--tensorboard needs the tensorboard package (pip install tensorboard)")}


def check_trackers(cfg) -> None:
    """Refuse, in one line, a tracker whose package is not installed (before the model loads)."""
    for field, (package, message) in TRACKER_PACKAGES.items():
        if getattr(cfg, field) and importlib.util.find_spec(package) is None:
            raise DrZeroError(message)


class Tracker:
    """An external tracker: ``log(metrics, step)`` and ``finish(ok)``."""

    def __init__(self, log, finish=lambda ok: None):
        self.log, self.finish = log, finish


def external_trackers(cfg, run_dir: Path, *, resume: bool) -> list[Tracker]:
    """The trackers the config asks for, named after the run directory; on ``resume`` the
    same wandb run (its id is kept in trackers.json) and the same trackio run (by name)."""
    trackers = []
    name = run_dir.resolve().name
    if cfg.wandb_project:
        import wandb

        ids_path = run_dir / TRACKERS_FILE
        ids = json.loads(ids_path.read_text()) if ids_path.exists() else {}
        if "wandb_id" not in ids:  # stored before init, so a crash during init still resumes the same run
            ids["wandb_id"] = secrets.token_hex(6)
            write_json(ids_path, ids)
        try:
            run = wandb.init(project=cfg.wandb_project, name=name, id=ids["wandb_id"], resume="allow",
                             config=asdict(cfg), dir=str(run_dir))
        except Exception as e:  # not logged in, unreachable, ...: wandb's own words, on one line
            raise DrZeroError(f"wandb: {(str(e).strip().splitlines() or [type(e).__name__])[0][:300]} "
                              f"(WANDB_MODE=offline logs without an account)") from None
        trackers.append(Tracker(lambda m, s: run.log(m, step=s), lambda ok: run.finish(exit_code=0 if ok else 1)))
    if cfg.trackio:
        import trackio

        trackio.init(project=cfg.trackio, name=name, config=asdict(cfg), resume="allow" if resume else "never")
        trackers.append(Tracker(lambda m, s: trackio.log(json_safe(m), step=s), lambda ok: trackio.finish()))
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))

        def tensorboard(m, s):
            for k, v in m.items():
                if isinstance(v, (int, float)) and k != "step" and math.isfinite(v):
                    writer.add_scalar(k, v, s)
            writer.flush()

        trackers.append(Tracker(tensorboard, lambda ok: writer.close()))
    return trackers


# ----------------------------------------------------------------------------- progress
class Progress:
    """A rich progress bar with ETA and the key metrics in a terminal; one plain line per
    step otherwise (``step 3/60: reward 0.5 ... eta 0:04:10``)."""

    KEYS = (("rollout/reward_mean", "reward"), ("rollout/response_length_correct", "len+"),
            ("rollout/response_length_incorrect", "len-"), ("train/clip_frac_low", "clip"), ("time/step", "s/step"))

    def __init__(self, total: int, start: int, enabled: bool):
        self.bar, self.total, self.start, self.t0 = None, total, start, time.perf_counter()
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self.task = self.bar.add_task("train", total=total, completed=start, info="")
            self.bar.start()

    @classmethod
    def summary(cls, metrics: dict) -> str:
        parts = [f"{label} {metrics[k]:.3g}" for k, label in cls.KEYS if k in metrics and not math.isnan(metrics[k])]
        parts += [f"{k.split('/')[1]} {v:.3f}" for k, v in metrics.items() if k.startswith("eval/") and k.endswith("/accuracy")]
        return "  ".join(parts)

    def update(self, step: int, metrics: dict) -> None:
        if self.bar:
            self.bar.update(self.task, completed=step, info=self.summary(metrics))
            if any(k.startswith("eval/") for k in metrics):
                self.bar.console.print(f"step {step}: {self.summary(metrics)}")
            return
        per_step = (time.perf_counter() - self.t0) / max(1, step - self.start)
        left = int(per_step * (self.total - step))
        eta = f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"
        dist.print0(f"step {step}/{self.total}: {self.summary(metrics)}  eta {eta}")

    def print(self, text: str) -> None:
        (self.bar.console.print if self.bar else dist.print0)(text)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
