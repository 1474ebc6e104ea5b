"""What a training run writes while it runs: ``metrics.jsonl``, ``samples.jsonl`` and
``weights.jsonl`` in the run directory, a progress bar (rich) or plain lines, and the
optional external trackers (Weights & Biases, TensorBoard). Only rank 0 writes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from drzero import dist
from drzero.errors import DrZeroError


class RunLog:
    """The run's JSONL files, trackers and progress display, opened for appending."""

    FILES = ("metrics", "samples", "weights")

    def __init__(self, run_dir: Path, cfg, *, total_steps: int, start_step: int, progress: bool):
        self.main = dist.is_main()
        self.files = {name: open(run_dir / f"{name}.jsonl", "a") for name in self.FILES} if self.main else {}
        self.trackers = external_trackers(cfg, run_dir) if self.main else []
        self.progress = Progress(total_steps, start_step, enabled=progress and self.main)

    def write(self, name: str, records: list[dict]) -> None:
        """Append ``records`` to ``{name}.jsonl`` (rank 0 only) and flush."""
        if not self.main:
            return
        f = self.files[name]
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()

    def step(self, step: int, metrics: dict) -> None:
        """One iteration's metrics: to metrics.jsonl, the trackers and the progress display."""
        if not self.main:
            return
        self.write("metrics", [metrics])
        for tracker in self.trackers:
            tracker(metrics, step)
        self.progress.update(step, metrics)

    def note(self, text: str, label: str) -> None:
        if self.main:
            self.progress.print(f"{label}: {text}")

    def warn(self, text: str) -> None:
        if self.main:
            self.progress.print(f"[yellow]WARNING[/yellow] {text}" if self.progress.bar else f"WARNING {text}")

    def close(self) -> None:
        self.progress.close()
        for f in self.files.values():
            f.close()


def external_trackers(cfg, run_dir: Path) -> list:
    """Callables ``(metrics, step)`` for the trackers the config asks for."""
    trackers = []
    if cfg.wandb_project:
        try:
            import wandb
        except ImportError:
            raise DrZeroError("--wandb-project needs the wandb package (pip install wandb)") from None
        wandb.init(project=cfg.wandb_project, config=asdict(cfg), dir=str(run_dir))
        trackers.append(lambda m, s: wandb.log(m, step=s))
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DrZeroError("--tensorboard needs the tensorboard package (pip install tensorboard)") from None
        writer = SummaryWriter(str(run_dir / "tb"))

        def tensorboard(m, s):
            for k, v in m.items():
                if isinstance(v, (int, float)) and k != "step" and not math.isnan(v):
                    writer.add_scalar(k, v, s)
            writer.flush()

        trackers.append(tensorboard)
    return trackers


class Progress:
    """A rich progress bar with ETA and the key metrics; plain lines when disabled."""

    KEYS = (("rollout/reward_mean", "reward"), ("rollout/response_length_correct", "len+"),
            ("rollout/response_length_incorrect", "len-"), ("train/clip_frac_low", "clip"), ("time/step", "s/step"))

    def __init__(self, total: int, start: int, enabled: bool):
        self.bar = None
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
        else:
            dist.print0(f"step {step}: {self.summary(metrics)}")

    def print(self, text: str) -> None:
        (self.bar.console.print if self.bar else dist.print0)(text)

    def close(self) -> None:
        if self.bar:
            self.bar.stop()
