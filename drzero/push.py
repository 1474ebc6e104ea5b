"""``drzero push RUN_DIR --repo-id ORG/NAME [--step N]``: upload a checkpoint's model folder
to the Hugging Face Hub.

What is uploaded is the Hugging Face model folder of ``checkpoints/step-N`` (weights in the
training dtype, config, generation config, tokenizer, the README.md model card, and
``adapter/`` for LoRA runs); the trainer state (``trainer/``: optimizer, float32 masters,
RNG) and ``manifest.json`` never are. The checkpoint is verified against its manifest
first. Credentials are huggingface_hub's own (``hf auth login`` or ``HF_TOKEN``).
"""

from __future__ import annotations

from pathlib import Path

from drzero import checkpoint
from drzero.config import PushConfig
from drzero.parsing import validate
from drzero.errors import DrZeroError

NEVER_UPLOADED = [f"{checkpoint.TRAINER}/*", checkpoint.MANIFEST]  # huggingface_hub ignore patterns


def choose_checkpoint(run_dir: Path, step: int | None) -> Path:
    """The intact checkpoint to upload: ``step``'s, or the newest intact one."""
    if not run_dir.is_dir():
        raise DrZeroError(f"{run_dir} is not a run directory")
    found = dict(checkpoint.list_checkpoints(run_dir))
    if not found:
        raise DrZeroError(f"{run_dir} has no checkpoints (nothing under {run_dir / 'checkpoints'})")
    if step is None:
        ckpt, notes = checkpoint.find_resumable(run_dir)
        for note in notes:
            print(note)
        if ckpt is None:
            raise DrZeroError(f"{run_dir}: no intact checkpoint to push")
        return ckpt
    if step not in found:
        raise DrZeroError(f"{run_dir} has no checkpoint of step {step} (it has steps {', '.join(map(str, found))})")
    problem = checkpoint.verify(found[step])
    if problem:
        raise DrZeroError(f"{found[step]} is not intact ({problem}); not pushing it")
    return found[step]


def run_push(cfg: PushConfig) -> str:
    """Upload the model folder; returns the commit's URL."""
    validate(cfg)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError, HfHubHTTPError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(cfg.repo_id)
    except HFValidationError as e:
        raise DrZeroError(f"--repo-id {cfg.repo_id!r}: {str(e).splitlines()[0]}") from None
    ckpt = choose_checkpoint(Path(cfg.run), cfg.step)
    files = checkpoint.model_files(ckpt)
    print(f"pushing {ckpt} to {cfg.repo_id}: {len(files)} files ({', '.join(files)}); not the trainer state")
    api = HfApi()
    try:
        api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True)
        info = api.upload_folder(repo_id=cfg.repo_id, folder_path=str(ckpt), ignore_patterns=list(NEVER_UPLOADED),
                                 revision=cfg.revision, commit_message=f"drzero: {Path(cfg.run).resolve().name} {ckpt.name}")
    except (HfHubHTTPError, OSError, ValueError) as e:  # no credentials, no network, no permission, bad metadata
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise DrZeroError(f"push to {cfg.repo_id} failed: {first}") from None
    url = getattr(info, "commit_url", None) or f"https://huggingface.co/{cfg.repo_id}"
    print(f"pushed: {url}")
    return url
