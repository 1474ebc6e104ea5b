"""Checkpoints and run directories: the Hugging Face model folder (training dtype, model
card, nothing of the trainer inside), the trainer state beside it (float32 masters and the
optimizer, exact), manifests that catch truncation, fallback to the newest intact
checkpoint, a rebuilt `latest`, pruning that never touches a later step, torn JSONL tails,
`drzero push` (network calls mocked), trackers (wandb offline, trackio stand-in), strict
JSON and plain progress lines off a terminal."""

import json
import math
import os
import re
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drzero import checkpoint, tracking
from drzero.config import PushConfig, TrainConfig
from drzero.errors import DrZeroError
from drzero.models import load_model_and_tokenizer

MODEL_FILES = {"README.md", "chat_template.jinja", "config.json", "generation_config.json", "model.safetensors",
               "tokenizer.json", "tokenizer_config.json"}


def _trained_toy(seed=0):
    """The toy model after one AdamW step on random gradients: float32 masters whose values
    bfloat16 cannot hold, and a non-empty optimizer state."""
    torch.manual_seed(seed)
    model, tok = load_model_and_tokenizer("toy")
    model.float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return model, tok, opt


def _save(run_dir, step, model, tok, opt, dtype=torch.float32, keep=0):
    return checkpoint.save(run_dir, step, model, tok, opt, small_state={"note": step}, export_dtype=dtype,
                           card=f"card of step {step}\n", keep=keep)


@pytest.fixture(scope="module")
def toy():
    return _trained_toy()


@pytest.mark.slow
def test_bf16_export_is_a_clean_model_folder_and_the_trainer_state_restores_float32_masters(tmp_path, toy):
    model, tok, opt = toy
    ckpt = _save(tmp_path / "run", 1, model, tok, opt, dtype=torch.bfloat16)
    assert ckpt.name == "step-000001"
    assert set(checkpoint.model_files(ckpt)) == MODEL_FILES  # no optimizer or RNG file among the model files
    assert {p.name for p in (ckpt / "trainer").iterdir()} == {".metadata", "__0_0.distcp", "state.pt", "state.json"}
    weights = load_file(str(ckpt / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.bfloat16}
    assert "lm_head.weight" not in weights  # tied to the embeddings: saved once
    assert json.loads((ckpt / "config.json").read_text())["dtype"] == "bfloat16"
    from transformers import AutoModelForCausalLM

    served = AutoModelForCausalLM.from_pretrained(ckpt)  # dtype auto: what vLLM's dtype=auto also reads
    assert served.dtype == torch.bfloat16
    # resume: a fresh learner loads the bf16 export, then the trainer state's float32 masters
    fresh, _ = load_model_and_tokenizer(str(ckpt))
    fresh.float()
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    small = checkpoint.load(ckpt, fresh, fresh_opt)
    assert small["step"] == 1 and small["note"] == 1 and set(small["rng"]) == {"python", "numpy", "torch"}
    rounded = 0
    for (name, p), q in zip(model.named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), name  # exact, not the bf16-rounded export
        rounded += not torch.equal(p.bfloat16().float(), p)
    assert rounded  # the export alone would not have resumed exactly
    a, b = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert set(a) == set(b)
    for i in a:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(a[i][k], b[i][k]), (i, k)


def test_lora_checkpoint_holds_merged_weights_and_adapter_and_resumes_the_adapters(tmp_path):
    pytest.importorskip("peft")
    from drzero.models import add_lora

    def lora_model():
        model, tok = load_model_and_tokenizer("toy")
        return add_lora(model, rank=4, alpha=8, target_modules="all-linear"), tok

    torch.manual_seed(0)
    model, tok = lora_model()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.randn_like(p)
    opt.step()
    ckpt = _save(tmp_path / "run", 1, model, tok, opt)
    assert (ckpt / "adapter" / "adapter_config.json").exists() and (ckpt / "model.safetensors").exists()
    merged, _ = load_model_and_tokenizer(str(ckpt))
    assert not hasattr(merged, "peft_config")
    fresh, _ = lora_model()  # a resumed LoRA run: the base model, fresh adapters, then the trainer state
    fresh_opt = torch.optim.AdamW([p for p in fresh.parameters() if p.requires_grad], lr=1e-2)
    checkpoint.load(ckpt, fresh, fresh_opt)
    trained = dict(model.named_parameters())
    for name, p in fresh.named_parameters():
        assert torch.equal(p, trained[name]), name
    shard = (ckpt / "trainer" / "__0_0.distcp").stat().st_size
    assert shard < 0.5 * (ckpt / "model.safetensors").stat().st_size  # adapters and their moments only


@pytest.mark.parametrize("damage", ["truncate_weights", "truncate_trainer_shard", "flip_a_byte", "drop_manifest"])
def test_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, toy, damage):
    model, tok, opt = toy
    run = tmp_path / "run"
    for step in (1, 2, 3):
        _save(run, step, model, tok, opt)
    newest = run / "checkpoints" / "step-000003"
    assert checkpoint.verify(newest) is None and checkpoint.find_resumable(run) == (newest, [])
    if damage == "truncate_weights":
        f = newest / "model.safetensors"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        expected = "model.safetensors has"
    elif damage == "truncate_trainer_shard":
        f = newest / "trainer" / "__0_0.distcp"
        f.write_bytes(f.read_bytes()[:1000])
        expected = "trainer/__0_0.distcp has"
    elif damage == "flip_a_byte":
        f = newest / "model.safetensors"
        data = bytearray(f.read_bytes())
        data[-1] ^= 0xFF
        f.write_bytes(bytes(data))
        expected = "does not match its sha256"
    else:
        (newest / "manifest.json").unlink()
        expected = "incomplete"
    found, notes = checkpoint.find_resumable(run)
    assert found == run / "checkpoints" / "step-000002"
    assert len(notes) == 1 and "step-000003" in notes[0] and expected in notes[0] and "\n" not in notes[0]


def test_old_layout_checkpoint_is_refused_in_one_line(tmp_path):
    old = tmp_path / "run" / "checkpoints" / "step-000004"
    old.mkdir(parents=True)
    (old / "trainer_state.pt").write_bytes(b"x")
    with pytest.raises(DrZeroError, match="older drzero.*--model") as e:
        checkpoint.find_resumable(tmp_path / "run")
    assert "\n" not in str(e.value)


def test_start_run_rebuilds_latest_cuts_logs_and_drops_the_abandoned_future(tmp_path, toy):
    model, tok, opt = toy
    run = tmp_path / "run"
    for step in (1, 2, 3):
        _save(run, step, model, tok, opt)
    root = run / "checkpoints"
    (root / ".tmp-step-000004").mkdir()  # a save killed half-way
    (root / "latest").write_text("")  # an empty pointer ...
    assert checkpoint.latest(run) is None
    (root / "latest").write_text("step-000009")  # ... or a dangling one
    assert checkpoint.latest(run) is None
    (root / "step-000003" / "model.safetensors").write_bytes(b"torn")
    found, _ = checkpoint.find_resumable(run)  # the directory listing decides, not the pointer
    assert found == root / "step-000002"
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(4)) + '{"step": 4, "rew')
    checkpoint.start_run(run, "algo: x\n", overwrite=False, resumed_step=2, resumed_from=found)
    assert checkpoint.latest(run) == found
    assert [s for s, _ in checkpoint.list_checkpoints(run)] == [1, 2]  # step 3 belonged to the abandoned steps
    assert not list(root.glob(".tmp-*"))
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]


def test_pruning_keeps_the_newest_of_this_run_and_never_a_later_step(tmp_path, toy):
    model, tok, opt = toy
    run = tmp_path / "run"
    _save(run, 7, model, tok, opt)  # a checkpoint at a step the run has not reached (yet)
    for step in (1, 2, 3):
        _save(run, step, model, tok, opt, keep=2)
    assert [s for s, _ in checkpoint.list_checkpoints(run)] == [2, 3, 7]
    assert checkpoint.latest(run) == run / "checkpoints" / "step-000003"  # the one just saved, never dangling


def test_truncate_jsonl_drops_a_torn_tail_and_refuses_damage_in_the_middle(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "x": s}) for s in range(5)]
    path.write_text("\n".join(lines) + "\n" + '{"step": 5, "x"')
    checkpoint.truncate_jsonl(path, 3)
    assert path.read_text() == "\n".join(lines[:4]) + "\n"
    path.write_text(lines[0] + "\n" + lines[1] + "\n")  # complete lines only, last one newline-terminated
    checkpoint.truncate_jsonl(path, 10)
    assert path.read_text() == lines[0] + "\n" + lines[1] + "\n"
    path.write_text(lines[0] + "\n{garbage\n" + lines[2] + "\n")
    with pytest.raises(DrZeroError, match="metrics.jsonl:2"):
        checkpoint.truncate_jsonl(path, 10)


def test_run_dir_checks(tmp_path):
    run = tmp_path / "run"
    checkpoint.check_run_dir(run, resume=False, overwrite=False)  # a new folder is fine
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    checkpoint.mark_folder(run, "train")  # a run is known by drzero's marker
    with pytest.raises(DrZeroError, match=r"already holds a run; continue it with --resume .*--overwrite"):
        checkpoint.check_run_dir(run, resume=False, overwrite=False)
    checkpoint.check_run_dir(run, resume=False, overwrite=True)
    with pytest.raises(DrZeroError, match="give one of them"):
        checkpoint.check_run_dir(run, resume=True, overwrite=True)
    with pytest.raises(DrZeroError, match="is a file"):
        checkpoint.check_run_dir(run / "metrics.jsonl", resume=False, overwrite=False)
    with pytest.raises(DrZeroError, match="which is a file"):
        checkpoint.check_run_dir(run / "metrics.jsonl" / "sub", resume=False, overwrite=False)
    other = run / "notes.txt"  # --overwrite removes what a run writes, nothing else
    other.write_text("mine")
    (run / "checkpoints" / "step-000001").mkdir(parents=True)
    checkpoint.start_run(run, "a: 1\n", overwrite=True, resumed_step=None, resumed_from=None)
    assert sorted(p.name for p in run.iterdir()) == [".drzero.json", ".lock", "config.yaml", "notes.txt"]


@pytest.mark.slow
def test_one_process_per_run_dir(tmp_path):
    """A second process training into a folder another one is using (a --resume started
    while the run still goes) stops in one line, naming the holder; once the holder exits,
    the folder is free. A new folder is locked when start_run creates it."""
    import subprocess
    import sys
    import textwrap

    run = tmp_path / "run"
    checkpoint.start_run(run, "a: 1\n", overwrite=False, resumed_step=None, resumed_from=None)
    assert (run / ".lock").read_text().strip() == str(os.getpid())
    assert checkpoint.lock_run_dir(run)  # this process holds it already
    probe = textwrap.dedent(f"""
        import sys
        from drzero import checkpoint
        from drzero.errors import DrZeroError
        try:
            checkpoint.lock_run_dir(checkpoint.Path({str(run)!r}))
        except DrZeroError as e:
            print("REFUSED", e); sys.exit(2)
        print("LOCKED")
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"is in use by another drzero process (pid {os.getpid()})" in done.stdout
    checkpoint._held_locks.pop(run.resolve()).close()  # the holder ends
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "LOCKED" in done.stdout, done.stdout + done.stderr
    assert not checkpoint.lock_run_dir(tmp_path / "not-yet")  # nothing to lock before it exists


# ----------------------------------------------------------------------------- push
def _fake_hub(monkeypatch):
    """Replace only huggingface_hub's network calls; record what would be committed."""
    import huggingface_hub.hf_api as hf_api

    calls = {}

    def create_repo(self, repo_id, **kw):
        calls["repo"] = (repo_id, kw.get("private"))
        return hf_api.RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, **kw):
        calls["files"] = sorted(op.path_in_repo for op in operations)
        calls["sizes"] = {op.path_in_repo: Path(op.path_or_fileobj).stat().st_size for op in operations}
        return types.SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")

    monkeypatch.setattr(hf_api.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(hf_api.HfApi, "create_commit", create_commit)
    monkeypatch.setattr(hf_api.HfApi, "_validate_yaml", lambda self, content, **kw: None)  # a POST to the hub
    monkeypatch.setattr(hf_api, "is_xet_available", lambda: False)  # the single-commit path
    return calls


def test_push_uploads_the_model_folder_and_never_the_trainer_state(tmp_path, toy, monkeypatch):
    from drzero.push import run_push

    model, tok, opt = toy
    run = tmp_path / "run"
    _save(run, 1, model, tok, opt)
    newest = _save(run, 2, model, tok, opt)
    calls = _fake_hub(monkeypatch)
    url = run_push(PushConfig(run=str(run), repo_id="me/toy-dr-grpo", private=True))
    assert url.endswith("/commit/0") and calls["repo"] == ("me/toy-dr-grpo", True)
    assert calls["files"] == sorted(MODEL_FILES)
    assert calls["sizes"]["model.safetensors"] == (newest / "model.safetensors").stat().st_size  # step 2's
    (newest / "model.safetensors").write_bytes(b"torn")
    calls.clear()
    with pytest.raises(DrZeroError, match="not intact"):
        run_push(PushConfig(run=str(run), repo_id="me/x", step=2))
    run_push(PushConfig(run=str(run), repo_id="me/x"))  # the newest intact one: step 1
    assert calls["files"] == sorted(MODEL_FILES)
    for bad, match in [(dict(repo_id="not a repo id"), "--repo-id"), (dict(step=5), "no checkpoint of step 5"),
                       (dict(repo_id=""), "--repo-id")]:
        with pytest.raises(DrZeroError, match=match):
            run_push(PushConfig(**{"run": str(run), "repo_id": "me/x", **bad}))


def test_push_is_a_command(capsys):
    from drzero.cli import main

    assert main(["push", "--repo-id", "me/x"]) == 2  # reaches push's own checks through the CLI
    assert "push needs a run directory" in capsys.readouterr().err


# ----------------------------------------------------------------------------- tracking
def test_json_outputs_write_null_for_nan_and_inf(tmp_path):
    record = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}, "e": 2}
    assert json.loads(tracking.dumps(record)) == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": 2}
    tracking.write_json(tmp_path / "results.json", record)
    assert "NaN" not in (tmp_path / "results.json").read_text() and "Infinity" not in (tmp_path / "results.json").read_text()
    log = tracking.RunLog(tmp_path, TrainConfig(), total_steps=1, start_step=0, progress=False)
    log.step(1, {"step": 1, "rollout/response_length_correct": float("nan"), "rollout/reward_mean": 0.5})
    log.close()
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and json.loads(text)["rollout/response_length_correct"] is None
    from drzero.report import load_run, summarize  # the reader accepts null

    (tmp_path / "config.yaml").write_text("algo: dr_grpo\n")
    summary = summarize(load_run(str(tmp_path)))
    assert summary["steps"] == 1 and summary["reward_last5"] == 0.5 and math.isnan(summary["length_correct_last5"])


def test_outside_a_terminal_every_step_prints_one_plain_line(tmp_path, capsys):
    log = tracking.RunLog(tmp_path, TrainConfig(), total_steps=3, start_step=0, progress=True)  # stdout is captured
    for step in (1, 2, 3):
        log.step(step, {"step": step, "rollout/reward_mean": 0.25 * step, "time/step": 1.0})
    log.close()
    lines = capsys.readouterr().out.splitlines()
    assert [x.split(":")[0] for x in lines] == ["step 1/3", "step 2/3", "step 3/3"]
    assert "reward 0.5" in lines[1] and "eta" in lines[1]


def test_missing_tracker_package_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    import importlib.util

    from drzero.train import train

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trackio" else real(name, *a))
    monkeypatch.setattr("drzero.train.load_model_and_tokenizer", lambda *a, **k: pytest.fail("the model was loaded"))
    cfg = TrainConfig(output_dir=str(tmp_path / "r"), trackio="proj")
    with pytest.raises(DrZeroError, match="needs the trackio package"):
        train(cfg)
    assert not (tmp_path / "r").exists()


def test_trackio_run_is_named_after_the_run_dir_resumed_by_name_and_finished(tmp_path, monkeypatch):
    calls = []
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw)),
                                 log=lambda m, step=None: calls.append(("log", m, step)),
                                 finish=lambda: calls.append(("finish",)))
    monkeypatch.setitem(sys.modules, "trackio", fake)
    run = tmp_path / "my-run"
    run.mkdir()
    for resume in (None, str(run)):
        log = tracking.RunLog(run, TrainConfig(trackio="proj", resume=resume), total_steps=2, start_step=0, progress=False)
        log.step(1, {"step": 1, "x": float("nan")})
        log.close()
    inits = [c[1] for c in calls if c[0] == "init"]
    assert [(k["project"], k["name"], k["resume"]) for k in inits] == [("proj", "my-run", "never"), ("proj", "my-run", "allow")]
    assert ("log", {"step": 1, "x": None}, 1) in calls
    assert [c[0] for c in calls].count("finish") == 2


def test_wandb_run_is_named_after_the_run_dir_and_resume_continues_it(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    inits = []
    real_init = wandb.init

    def spy(**kw):
        inits.append(kw)
        return real_init(**kw)

    monkeypatch.setattr(wandb, "init", spy)
    run = tmp_path / "my-run"
    run.mkdir()
    for resume in (None, str(run)):
        log = tracking.RunLog(run, TrainConfig(wandb_project="proj", resume=resume), total_steps=2, start_step=0,
                              progress=False)
        log.step(1, {"step": 1, "rollout/reward_mean": 0.5})
        log.close()
        assert wandb.run is None  # finished
    stored = json.loads((run / "trackers.json").read_text())["wandb_id"]
    assert [(k["name"], k["id"], k["resume"]) for k in inits] == [("my-run", stored, "allow")] * 2
    # one wandb run, written twice: both offline folders carry its id (wandb names them by the
    # second they start; a second start within the same second gets a "-1" suffix)
    written = [p.name for p in (run / "wandb").glob("offline-run-*")]
    assert len(written) == 2 and all(re.search(rf"-{stored}(-\d+)?$", name) for name in written), written


@pytest.mark.slow
def test_bf16_training_run_gives_a_servable_checkpoint_with_its_model_card(tmp_path):
    """What a user checks first: 2 steps in bf16, then plain transformers loads the
    checkpoint in bf16 and generates, and README.md says how the model was trained."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from drzero.algo import describe_objective, resolve_objective
    from drzero.templates import TEMPLATES
    from drzero.train import train

    cfg = TrainConfig(output_dir=str(tmp_path / "run"), template="qwen_math", max_steps=2, prompts_per_step=2,
                      group_size=2, micro_batch_size=4, max_new_tokens=16, eval_every=0, eval_limit=4,
                      grader_workers=1, progress=False, dtype="bfloat16", lr=1e-3)
    train(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "step-000002"
    assert set(checkpoint.model_files(ckpt)) == MODEL_FILES
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert model.dtype == torch.bfloat16
    assert (ckpt / "model.safetensors").stat().st_size < 4_000_000  # 1.7M parameters x 2 bytes, not x 4
    prompt = TEMPLATES["qwen_math"].render("What is 2 + 3?")
    out = model.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=8, do_sample=False)
    assert out.shape[1] > len(tok(prompt)["input_ids"])
    card = (ckpt / "README.md").read_text()
    objective = describe_objective("dr_grpo", resolve_objective("dr_grpo", max_new_tokens=16))
    for expected in (objective, TEMPLATES["qwen_math"].render("{question}"), "`qwen_math`", "drzero toy model",
                     "`toy:train`", "2 of 2 policy iterations", "bfloat16", "| rollout/reward_mean |",
                     "| eval/toy:test/accuracy |"):
        assert expected in card, expected
