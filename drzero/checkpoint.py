"""Run directories and checkpoints: what is on disk, how it is written, verified and resumed.

    RUN/
      .drzero.json             {"kind": "train"}: the marker that says drzero writes this folder
      config.yaml              the resolved config (written once the model and data have loaded)
      resumes.jsonl            settings a --resume changed, with the step after which (drzero.resume)
      metrics.jsonl  samples.jsonl  weights.jsonl
      trackers.json            external tracker ids (wandb), so --resume continues the same run
      checkpoints/
        latest                 the name of the newest complete checkpoint (for people and tools)
        step-000040/           a clean Hugging Face model folder: what `drzero push` uploads
          config.json  generation_config.json  model.safetensors (training dtype)  tokenizer files
          README.md            model card: base model, objective, template and its prompt, data, metrics
          adapter/             LoRA runs only: the peft adapter (the weights above are merged)
          trainer/             the trainer state, never uploaded:
            .metadata  __R_0.distcp   torch.distributed.checkpoint: float32 master weights of the
                                      trained parameters + optimizer state, one file per rank
            state.pt  state.json      step, scheduler, bias monitor, RNG (rank 0; small)
          manifest.json        size and sha256 of every file above, written last

A checkpoint is written into ``checkpoints/.tmp-step-N``, fsynced, hashed into its
manifest, renamed into place, and only then is ``latest`` replaced, so a kill at any
moment leaves the previous checkpoints intact. ``--resume`` takes the newest checkpoint
whose files match its manifest (a truncated or missing file sends it to the one before,
saying so), rebuilds ``latest``, cuts the JSONL logs back to its step (a torn last line
included) and removes checkpoints of the abandoned steps after it.

A run directory holds one run, known by its marker (``folder_kind``; a folder from before
the marker by its config.yaml): training into one that holds a run is refused unless the
command says ``--resume`` or ``--overwrite`` (``check_run_dir``); ``--overwrite`` removes
only what a run writes and refuses a run whose ``checkpoints/`` holds anything else; a
folder that is no run but holds names a run writes (``samples.jsonl``, ``checkpoints/``,
...) is refused, as is an eval's folder; and nothing is written
before the config, model and data have been validated (``start_run``). One process at a
time: the trainer holds an advisory lock on ``RUN/.lock`` (``lock_run_dir``) from before it
loads until it exits, so a second ``drzero train`` on the same folder (say, a ``--resume``
started while the run still goes) stops with one line instead of mixing two runs' files.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from drzero import dist
from drzero.errors import DrZeroError
from drzero.paths import check_path_fits

LATEST = "latest"
LOCK = ".lock"  # held (flock) by the process training into the folder; never removed
_held_locks: dict[Path, object] = {}  # run dir -> its open lock file, kept open until the process ends
MANIFEST = "manifest.json"
TRAINER = "trainer"  # the trainer state's folder inside step-N/
RUN_FILES = ("config.yaml", "metrics.jsonl", "samples.jsonl", "weights.jsonl", "trackers.json",
             "resumes.jsonl")  # what a run writes ...
RUN_DIRS = ("checkpoints", "tb", "wandb")  # ... and these folders: all that --overwrite removes


MARKER = ".drzero.json"  # {"kind": "train"} or {"kind": "eval"}: what wrote the folder (written by its first write)


# ----------------------------------------------------------------------------- run directories
def holds_run(run_dir: Path) -> bool:
    return folder_kind(run_dir) == "train"


def mark_folder(folder: Path, kind: str) -> None:
    """Say that drzero's ``kind`` ("train" or "eval") writes ``folder`` (once; rank 0)."""
    if dist.is_main() and not (folder / MARKER).is_file():
        _atomic_write(folder / MARKER, json.dumps({"kind": kind}) + "\n")


def folder_kind(folder: Path) -> str | None:
    """Which drzero command wrote ``folder``: "train", "eval" or None (not drzero's, or
    not there). The marker says; folders from before it are known by their config.yaml
    (a train config's keys) or results.json (an eval's)."""
    folder = Path(folder)
    try:
        kind = json.loads((folder / MARKER).read_text()).get("kind")
        if kind in ("train", "eval"):
            return kind
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import yaml

        from drzero.config import TrainConfig

        config = yaml.safe_load((folder / "config.yaml").read_text())
        fields = {f for f in TrainConfig.__dataclass_fields__}
        if isinstance(config, dict) and "algo" in config and set(config) <= fields:
            return "train"
    except (OSError, ValueError, yaml.YAMLError):
        pass
    try:
        results = json.loads((folder / "results.json").read_text())
        if isinstance(results, dict) and isinstance(results.get("config"), dict) and "benchmarks" in results:
            return "eval"
    except (OSError, ValueError):
        pass
    return None


def foreign_files(run_dir: Path) -> list[str]:
    """What ``--overwrite`` would remove that a run does not write: anything in its
    ``checkpoints/`` but step folders, half-written ones and ``latest``; for a folder that
    is no run, every name a run would write."""
    if folder_kind(run_dir) != "train":
        return [n + "/" * (run_dir / n).is_dir() for n in (*RUN_FILES, *RUN_DIRS) if (run_dir / n).exists()]
    root = run_dir / "checkpoints"
    ours = lambda p: p.name == LATEST or p.name.startswith((".tmp-", "step-")) and p.is_dir()  # noqa: E731
    return [f"checkpoints/{p.name}" + "/" * p.is_dir() for p in sorted(root.iterdir()) if not ours(p)] \
        if root.is_dir() else []


LONGEST_RUN_FILE = "checkpoints/.tmp-old-step-000000/adapter/adapter_model.safetensors"  # the deepest a run writes


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse a run directory that cannot be used, in one line, before anything loads or
    is written: a file, a folder under a file or not writable, or (for a new run) one
    that already holds a run."""
    if resume and overwrite:
        raise DrZeroError("--resume continues a run and --overwrite replaces it: give one of them")
    check_path_fits(run_dir, "--resume" if resume else "--output-dir", LONGEST_RUN_FILE)
    if run_dir.exists() and not run_dir.is_dir():
        raise DrZeroError(f"output dir {run_dir} is a file, not a directory")
    existing = next((p for p in [run_dir, *run_dir.absolute().parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise DrZeroError(f"output dir {run_dir} is under {existing}, which is a file")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise DrZeroError(f"output dir {run_dir}: {existing} is not writable")
    if resume and not (run_dir / "config.yaml").is_file():
        raise DrZeroError(f"--resume {run_dir}: not a run directory (no config.yaml)")
    kind = folder_kind(run_dir) if run_dir.is_dir() else None
    if kind == "eval":
        raise DrZeroError(f"{run_dir} holds a drzero eval (results.json), not a training run; give training its own "
                          "--output-dir")
    if resume and kind is None:
        raise DrZeroError(f"--resume {run_dir}: not a drzero training run (its config.yaml is not a train config)")
    if not resume and not overwrite and kind == "train":
        raise DrZeroError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
                          f"or replace it with --overwrite")
    foreign = foreign_files(run_dir) if not resume and run_dir.is_dir() else []
    if foreign:  # --overwrite removes only what drzero wrote; a new run never writes into someone's files
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        what = "--overwrite " if kind == "train" else ""
        raise DrZeroError(f"{what}{run_dir}: it holds files drzero did not write ({shown}); move them away or use "
                          "another --output-dir")


def lock_run_dir(run_dir: Path, then: str = "then --resume") -> bool:
    """Take the run folder's lock for this process (rank 0), or stop in one line if another
    process holds it. Returns False when the folder does not exist yet (``start_run`` locks
    it once created). Held until the process ends; the lock file holds the holder's pid."""
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if not dist.is_main() or key in _held_locks:
        return True
    if not run_dir.is_dir():
        return False
    try:
        import fcntl
    except ImportError:  # no flock (Windows): not locked
        return True
    f = open(run_dir / LOCK, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise DrZeroError(f"{run_dir} is in use by another drzero process (pid {holder}); wait for it to finish "
                          f"or stop it, {then}") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _held_locks[key] = f
    return True


def start_run(run_dir: Path, config_text: str, *, overwrite: bool, resumed_step: int | None,
              resumed_from: Path | None) -> None:
    """The first writes of a run (rank 0; everything has been validated by now). A new
    run: remove a previous run's files (``--overwrite``), write config.yaml. A resumed one
    (``resumed_step``: the step to continue after, 0 when it starts over): cut the JSONL
    logs back to that step, remove checkpoints of later steps (an abandoned future) and
    half-written ones, point ``latest`` at ``resumed_from``."""
    if not dist.is_main():
        return
    if not lock_run_dir(run_dir):  # a new folder: create it and lock it before the first write
        run_dir.mkdir(parents=True, exist_ok=True)
        lock_run_dir(run_dir)
        if resumed_step is None:  # another run may have begun here since check_run_dir
            check_run_dir(run_dir, resume=False, overwrite=overwrite)
    if overwrite:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            shutil.rmtree(run_dir / name, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    mark_folder(run_dir, "train")
    if resumed_step is not None:
        for name in ("metrics", "samples", "weights", "resumes"):
            # starting over (no checkpoint): the base model's step-0 evaluation is redone too
            truncate_jsonl(run_dir / f"{name}.jsonl", resumed_step if resumed_from else -1)
        root = run_dir / "checkpoints"
        for step, path in list_checkpoints(run_dir):
            if step > resumed_step:
                shutil.rmtree(path)
        for tmp in root.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        if resumed_from is not None:
            _point_latest(root, resumed_from.name)
        elif (root / LATEST).exists():
            (root / LATEST).unlink()
    _atomic_write(run_dir / "config.yaml", config_text)


# ----------------------------------------------------------------------------- listing and verifying
def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoints/step-N`` (complete or not), by step."""
    out = []
    for p in (run_dir / "checkpoints").glob("step-*"):
        suffix = p.name.removeprefix("step-")
        if p.is_dir() and suffix.isdigit():
            out.append((int(suffix), p))
    return sorted(out)


def latest(run_dir: Path) -> Path | None:
    """The checkpoint ``checkpoints/latest`` names, when it exists and is complete."""
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    path = run_dir / "checkpoints" / name
    return path if name and (path / MANIFEST).is_file() else None


def verify(ckpt: Path) -> str | None:
    """Why ``ckpt`` cannot be trusted (a missing manifest, a missing file, a size or a
    sha256 that differs from the manifest's), or None when it is intact. Under several
    ranks each rank hashes its share of the files (a collective: call it on every rank)."""
    manifest_path = ckpt / MANIFEST
    try:
        files = json.loads(manifest_path.read_text())["files"]
    except FileNotFoundError:
        problem = "incomplete (no manifest.json)"
        if (ckpt / "trainer_state.pt").exists():
            problem = "written by an older drzero (trainer_state.pt inside the model folder)"
        files, problems = {}, [problem]
    except (ValueError, KeyError, TypeError):
        files, problems = {}, ["manifest.json is unreadable"]
    else:
        problems = []
    mine = sorted(files)[dist.rank() :: dist.world_size()]
    for rel in mine:
        path, expected = ckpt / rel, files[rel]
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif path.stat().st_size != expected["size"]:
            problems.append(f"{rel} has {path.stat().st_size} bytes, the manifest says {expected['size']}")
        elif _sha256(path) != expected["sha256"]:
            problems.append(f"{rel} does not match its sha256")
    problems = [p for rank_problems in dist.all_gather_object(problems) for p in rank_problems]
    return problems[0] if problems else None


def find_resumable(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest intact checkpoint of a run (None if there is none) and one line per
    checkpoint skipped on the way (said to the user). An older-layout checkpoint is refused."""
    notes = []
    for step, path in reversed(list_checkpoints(run_dir)):
        problem = verify(path)
        if problem is None:
            return path, notes
        if "older drzero" in problem:
            raise DrZeroError(f"{path} was {problem}; it cannot be resumed by this version: start a new run "
                              f"from its weights with --model {path} --output-dir NEW_DIR")
        notes.append(f"checkpoint {path.name} is not intact ({problem}); skipping it")
    return None, notes


def read_step(ckpt: Path) -> int:
    return int(json.loads((ckpt / TRAINER / "state.json").read_text())["step"])


def model_files(ckpt: Path) -> list[str]:
    """The model folder's files (relative paths): everything but the trainer state and the manifest."""
    return sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*")
                  if p.is_file() and p.relative_to(ckpt).parts[0] not in (TRAINER, MANIFEST))


# ----------------------------------------------------------------------------- saving and loading
def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(run_dir: Path, step: int, model, tokenizer, optimizer, *, small_state: dict, export_dtype: torch.dtype,
         card: str, keep: int) -> Path:
    """Write ``checkpoints/step-{step:06d}`` and point ``latest`` at it; keep the ``keep``
    newest (0 = all). Call on every rank: the trainer state is saved shard by shard, the
    model export is gathered once to rank 0 (when sharded), which writes it in
    ``export_dtype`` with its model card. ``small_state``: picklable trainer objects
    (scheduler, monitor) saved by rank 0 with the step and the RNG state."""
    root = run_dir / "checkpoints"
    final, tmp = root / f"step-{step:06d}", root / f".tmp-step-{step:06d}"
    try:
        return _save(run_dir, step, model, tokenizer, optimizer, small_state=small_state, export_dtype=export_dtype,
                     card=card, keep=keep)
    except BaseException as e:  # no half-written .tmp-step-N left behind (a kill still may: resume cleans it)
        shutil.rmtree(tmp, ignore_errors=True)
        if disk_full(e):
            need, free = checkpoint_bytes(model, optimizer, export_dtype), shutil.disk_usage(root).free
            raise DrZeroError(f"no space left on the device writing checkpoint {final.name} in {root}: it needs about "
                              f"{_human(need)}, {_human(free)} are free there (the earlier checkpoints are intact); "
                              f"free some space, then --resume {run_dir}") from None
        raise


def disk_full(e: BaseException) -> bool:
    """Whether a save failed for want of space: ENOSPC/EDQUOT, or what torch's zip writer and
    safetensors make of it ("unexpected pos", "No space left")."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(e, Exception) and any(s in str(e) for s in ("No space left", "unexpected pos", "StorageFull"))


def checkpoint_bytes(model, optimizer, export_dtype: torch.dtype) -> int:
    """About how many bytes a checkpoint takes: the export in ``export_dtype``, the float32
    masters of the trained parameters and the optimizer state."""
    size = torch.finfo(export_dtype).bits // 8 if export_dtype.is_floating_point else 4
    export = sum(p.numel() for p in model.parameters()) * size
    masters = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad)
    state = sum(t.numel() * t.element_size() for st in optimizer.state.values() for t in st.values()
                if isinstance(t, torch.Tensor))
    return export + masters + state


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _save(run_dir: Path, step: int, model, tokenizer, optimizer, *, small_state: dict, export_dtype: torch.dtype,
          card: str, keep: int) -> Path:
    root = run_dir / "checkpoints"
    final, tmp = root / f"step-{step:06d}", root / f".tmp-step-{step:06d}"
    if dist.is_main():
        for stale in root.glob(".tmp-*"):  # left by a kill during an earlier save
            shutil.rmtree(stale, ignore_errors=True)
        (tmp / TRAINER).mkdir(parents=True)
    dist.barrier()
    dist.save_trainer_state(model, optimizer, tmp / TRAINER)  # every rank writes its own shard
    gathered = dist.full_state_dict(model, rank0_cpu=True) if dist.is_sharded(model) else None
    if dist.is_main():
        torch.save({"step": step, "rng": rng_state(), **small_state}, tmp / TRAINER / "state.pt")
        (tmp / TRAINER / "state.json").write_text(json.dumps({"step": step, "ranks": dist.world_size()}, indent=2))
        export_model(tmp, model, tokenizer, export_dtype, gathered)
        (tmp / "README.md").write_text(card)
    dist.barrier()
    files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    mine = {rel: {"size": (tmp / rel).stat().st_size, "sha256": _sha256(tmp / rel, fsync=True)}
            for rel in files[dist.rank() :: dist.world_size()]}  # each rank hashes (and fsyncs) its share
    manifest = {k: v for part in dist.all_gather_object(mine) for k, v in part.items()}
    if dist.is_main():
        _atomic_write(tmp / MANIFEST, json.dumps({"step": step, "files": manifest}, indent=1))
        for folder in {tmp, *(p.parent for p in tmp.rglob("*"))}:
            _fsync_dir(folder)
        if final.exists():  # re-saving a step (after a resume fell back past it): never leave no step-N behind
            trash = root / f".tmp-old-{final.name}"
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
        _point_latest(root, final.name)
        older = [p for s, p in list_checkpoints(run_dir) if s <= step]  # never a later step's (nor another run's)
        for old in older[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return final


def export_model(folder: Path, model, tokenizer, dtype: torch.dtype, gathered: dict | None = None) -> None:
    """The Hugging Face model folder: weights in ``dtype`` (the training dtype; the float32
    masters stay in the trainer state), config.json saying so, generation config, tokenizer.
    ``gathered``: the whole weights of a sharded model (rank 0). LoRA: the adapter in
    ``adapter/`` and the merged weights."""
    if hasattr(model, "peft_config"):
        model.save_pretrained(folder / "adapter")
        model = copy.deepcopy(model).merge_and_unload()
        state = model.state_dict()
    else:
        state = gathered if gathered is not None else model.state_dict()
    # tied weights (lm_head = embeddings) are saved once
    tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - {n for n, _ in model.named_parameters()}
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype) for k, v in state.items() if k not in tied}
    model.save_pretrained(folder, safe_serialization=True, state_dict=state)
    config = json.loads((folder / "config.json").read_text())  # save_pretrained records the module's dtype (float32)
    for key in {"dtype"} | ({"torch_dtype"} & set(config)):  # older transformers name it torch_dtype
        config[key] = str(dtype).removeprefix("torch.")
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(folder)


def load(ckpt: Path, model, optimizer) -> dict:
    """Restore the trained parameters (float32 masters) and the optimizer state saved in
    ``ckpt/trainer`` (every rank reads its shard; a collective), and return the small state
    (step, rng, and what the trainer passed as ``small_state``)."""
    dist.load_trainer_state(model, optimizer, ckpt / TRAINER)
    return torch.load(ckpt / TRAINER / "state.pt", weights_only=False)


# ----------------------------------------------------------------------------- the model card
CARD_METRICS = ("rollout/reward_mean", "rollout/accuracy", "rollout/response_length_mean", "rollout/truncation_rate")


def model_card(cfg, step: int, *, objective_line: str, template, run_dir: Path) -> str:
    """The checkpoint's README.md: base model, algorithm and resolved objective, the
    template with its exact prompt string (the model was trained on it, not on its chat
    template), data, training settings, and the latest metrics up to ``step`` (from
    metrics.jsonl). Hub metadata on top (``base_model`` only for a hub name)."""
    from drzero import __version__

    records = []
    if (run_dir / "metrics.jsonl").exists():
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    latest_values: dict[str, tuple] = {}
    for r in records:
        if r.get("step", 0) <= step:
            for k, v in r.items():
                if (k in CARD_METRICS or (k.startswith("eval/") and k.endswith("/accuracy"))) and v is not None:
                    latest_values[k] = (v, r["step"])
    is_hub = cfg.model not in ("toy", "toy-v2") and not Path(cfg.model).expanduser().exists() and cfg.model.count("/") == 1
    base = (f"The drzero {cfg.model} model (`drzero/toy/{'checkpoint' if cfg.model == 'toy' else 'checkpoint-v2'}`)"
            if cfg.model in ("toy", "toy-v2")
            else f"[`{cfg.model}`](https://huggingface.co/{cfg.model})" if is_hub else f"The local model `{Path(cfg.model).name}`")
    front = ["---", "library_name: transformers", "pipeline_tag: text-generation"]
    front += [f"base_model: {cfg.model}"] if is_hub else []
    front += ["tags:", "- drzero", f"- {cfg.algo}", "- reinforcement-learning", "- math", "---", ""]
    eval_sets = ", ".join(x.strip() for x in cfg.eval_datasets.split(",") if x.strip()) or "none"
    data = f"`{cfg.dataset}`" + (f" (split `{cfg.dataset_split}`)" if cfg.dataset_split else "")
    data += "".join(f", {k} column `{v}`" for k, v in (("question", cfg.question_column), ("answer", cfg.answer_column)) if v)
    stop = ", ".join(f"`{x}`" for x in template.stop) or "the end-of-sequence token"
    answer_where = {"answer_tag": "`<answer>...</answer>`", "boxed": "the last `\\boxed{}`"}.get(
        template.answer_format, "`<answer>...</answer>` or the last `\\boxed{}`")
    lines = front + [
        f"# {run_dir.resolve().name}, step {step}", "",
        f"{base} trained with R1-Zero-like reinforcement learning (rule-based reward: 1 for a correct final answer, "
        f"else 0) by drzero {__version__}: algorithm `{cfg.algo}`, {step} of {cfg.max_steps} "
        f"policy iterations{f', LoRA rank {cfg.lora_rank}' if cfg.lora_rank else ''}.", "",
        "## Objective", "", "```", objective_line, "```", "",
        "## Prompt template", "",
        f"Trained with the `{template.name}` template. Prompt the model with exactly this string, `{{question}}` "
        "being the problem (not with the tokenizer's chat template, which it was not trained on):", "",
        "````", template.prompt.replace("{{", "{").replace("}}", "}"), "````", "",
        f"Answers are read from {answer_where}; generation stops at {stop}.", "",
        "## Data and settings", "",
        f"- training questions: {data}; evaluation: {eval_sets}",
        f"- {cfg.prompts_per_step} prompts x {cfg.group_size} samples per iteration, {cfg.max_new_tokens} new tokens, "
        f"temperature {cfg.temperature:g}, top-p {cfg.top_p:g}, lr {cfg.lr:g} ({cfg.lr_schedule}), beta {cfg.beta:g}, seed {cfg.seed}",
        f"- weights in {cfg.dtype} (`model.safetensors`); the training run's full config is its `config.yaml`", "",
        f"## Metrics (latest up to step {step})", "",
        "| metric | value | at step |", "|---|---|---|",
        *[f"| {k} | {v:.4g} | {at} |" for k, (v, at) in latest_values.items()], "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- JSONL logs
def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep the lines of steps <= ``max_step`` (the later ones will be redone); a torn last
    line (a kill mid-write) is dropped. Replaced atomically: a kill here loses nothing."""
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    keep = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if i >= len(lines) - 2:  # the last line, with or without its newline: torn by a kill
                break
            raise DrZeroError(f"{path}:{i + 1}: not valid JSON; the log is damaged beyond a torn last line") from None
        if record.get("step", 0) <= max_step:
            keep.append(line + b"\n")
    _atomic_write(path, b"".join(keep))


# ----------------------------------------------------------------------------- files
def _sha256(path: Path, fsync: bool = False) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
        if fsync:
            os.fsync(f.fileno())
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _point_latest(root: Path, name: str) -> None:
    _atomic_write(root / LATEST, name)
    _fsync_dir(root)
