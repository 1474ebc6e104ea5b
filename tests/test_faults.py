"""Fault injection for eval, probe, report and every command's input checks (issue 17).

- An eval interrupted (SIGKILL at two points, SIGINT, an exception mid-benchmark, an
  endpoint that dies late) and rerun with the same --output ends with the results and the
  samples an uninterrupted eval writes; no finished sample is lost.
- Every bad flag and YAML value for train, eval, probe and report, broken model folders,
  bad output paths, bad endpoints, unknown dataset names, offline mode: exit code 2, one
  line on stderr, no traceback, nothing written.
- Training (the last section): kill -9 while a metrics line is half written, while a
  checkpoint is being written, between a checkpoint's rename and the `latest` update; a
  newest checkpoint corrupted by truncation, an older one with a truncated trainer shard
  and an empty `latest`; after each, `--resume`, ending with exactly the metric lines and
  parameters of an uninterrupted run. A second run into a run's directory is refused in
  one line; `--overwrite` replaces it. Each fault is injected in a child process that
  patches one function of drzero to kill itself (SIGKILL) at that point.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drzero import evaluate
from conftest import one_line_error
from drzero.cli import main as cli_main
from drzero.config import EvalConfig
from drzero.data import load_questions
from drzero.models import TOY_CHECKPOINT
from drzero.rollout import Generation
from drzero.signals import Interrupted
from drzero.templates import TEMPLATES
from resume_equal import assert_same_metrics, assert_same_weights

REPO = Path(__file__).resolve().parents[1]


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ----------------------------------------------------------------------------- broken inputs
@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Folders a user can end up with: a model without tokenizer files, a model whose
    weights were cut short, a file where a folder is wanted, a directory given as --config."""
    root = tmp_path_factory.mktemp("broken")
    no_tok = root / "no-tokenizer"
    shutil.copytree(TOY_CHECKPOINT, no_tok)
    (no_tok / "tokenizer.json").unlink()
    empty_vocab = root / "empty-vocab"  # passes the file check; only loading shows the tokenizer is empty
    shutil.copytree(TOY_CHECKPOINT, empty_vocab)
    (empty_vocab / "tokenizer.json").unlink()
    (empty_vocab / "vocab.txt").write_text("")
    cut = root / "cut-weights"
    shutil.copytree(TOY_CHECKPOINT, cut)
    with open(cut / "model.safetensors", "r+b") as f:
        f.truncate(3_000_000)
    (root / "a-file").write_text("not a folder\n")
    (root / "a-dir").mkdir()
    return root


def _bad_cli_cases():
    """(command line, text the error must contain); {b} is the broken-inputs folder, {o} a
    fresh output folder that must not be created."""
    train = ["train", "--output-dir", "{o}"]
    ev = ["eval", "--benchmarks", "toy:test", "--limit", "8", "--max-new-tokens", "32", "--output", "{o}"]
    probe = ["probe", "--n-questions", "8", "--sample-questions", "4", "--max-new-tokens", "32", "--output", "{o}"]
    return [
        # train: types, choices, switches, ranges
        (train + ["--max-steps", "three"], "--max-steps: expected an integer"),
        (train + ["--max-steps", "0"], "--max-steps (key max_steps) must be >= 1"),
        (train + ["--algo", "nosuch"], "--algo: 'nosuch' is not one of grpo, dr_grpo, dapo, rloo"),
        (train + ["--mask-truncated", "no"], "--mask-truncated is a switch"),
        (train + ["--temperature", "0"], "--temperature (key temperature) must be > 0"),
        (train + ["--temperature", "-1"], "must be > 0"),
        (train + ["--lr", "abc"], "--lr: expected a number"),
        (train + ["--lr", "0"], "--lr (key lr) must be > 0"),
        (train + ["--group-size", "1"], "must be >= 2"),
        (train + ["--top-p", "0"], "must be in (0, 1]"),
        (train + ["--grader-timeout-s", "0"], "--grader-timeout-s (key grader_timeout_s) must be > 0"),
        (train + ["--eval-limit", "0"], "--eval-limit (key eval_limit) must be >= 1"),
        (train + ["--micro-batch-size", "5"], "micro_batch_size=5 must divide"),
        (train + ["--nosuch", "1"], "unknown option --nosuch"),
        (train + ["--template", "chatml"], "unknown template 'chatml'"),
        (train + ["--dataset", "gsm8k"], "unknown dataset 'gsm8k'; bundled: aime24"),
        (train + ["--model", "{b}/nowhere"], "does not exist"),  # and no config.yaml is written
        (train + ["--model", "{b}/no-tokenizer"], "no tokenizer files"),
        (train + ["--model", "{b}/cut-weights"], "model.safetensors is truncated"),
        (["train", "--output-dir", "{b}/a-file"], "is a file, not a folder"),
        (["train", "--output-dir", "{b}/a-file/run"], "is a file, so no folder can be made under it"),
        (train + ["--config", "{b}/a-dir"], "is not a file"),
        # eval
        (ev + ["--limit", "0"], "--limit (key limit) must be >= 1, got 0"),
        (ev + ["--limit", "-3"], "--limit (key limit) must be >= 1, got -3"),
        (ev + ["--max-new-tokens", "0"], "--max-new-tokens (key max_new_tokens) must be >= 1"),
        (ev + ["--temperature", "-1"], "--temperature (key temperature) must be >= 0"),
        (ev + ["--temperature", "nan"], "must be a finite number"),
        (ev + ["--batch-size", "0"], "--batch-size (key batch_size) must be >= 1"),
        (ev + ["--grader-timeout-s", "0"], "--grader-timeout-s (key grader_timeout_s) must be > 0"),
        (ev + ["--n", "0"], "--n (key n) must be >= 1"),
        (ev + ["--n", "4"], "identical greedy samples"),
        (ev + ["--concurrency", "0"], "--concurrency (key concurrency) must be >= 1"),
        (ev + ["--endpoint", "localhost:8000/v1"], "is not an http(s) URL"),
        (ev + ["--benchmarks", "aime25"], "unknown dataset 'aime25'; bundled: aime24, amc, math500"),
        (ev + ["--benchmarks", " , "], "--benchmarks is empty"),
        (ev + ["--model", "{b}/no-tokenizer"], "no tokenizer files"),
        (ev + ["--model", "{b}/cut-weights"], "model.safetensors is truncated"),
        (ev + ["--model", "{b}/empty-vocab"], "its tokenizer encodes nothing"),
        (ev + ["--output", "{b}/a-file"], "is a file, not a folder"),
        (ev + ["--output", "{b}/a-file/sub"], "is a file, so no folder can be made under it"),
        (ev + ["--config", "{b}/a-dir"], "is not a file"),
        (ev + ["--lmit", "3"], "did you mean --limit"),
        # probe
        (probe + ["--n", "0"], "--n (key n) must be >= 1"),
        (probe + ["--n-questions", "0"], "--n-questions (key n_questions) must be >= 1"),
        (probe + ["--sample-questions", "0"], "must be >= 1"),
        (probe + ["--max-new-tokens", "0"], "--max-new-tokens (key max_new_tokens) must be >= 1"),
        (probe + ["--temperatures", "0,1"], "must all be > 0"),
        (probe + ["--templates", "r1,chatml"], "unknown template 'chatml'"),
        (probe + ["--questions", "nosuch"], "unknown dataset 'nosuch'"),
        (probe + ["--judge-endpoint", "localhost:9/v1"], "is not an http(s) URL"),
        (probe + ["--model", "{b}/cut-weights"], "truncated"),
        (probe + ["--output", "{b}/a-file"], "is a file, not a folder"),
        # report
        (["report", "{b}/a-dir", "--output", "{o}"], "not a training run directory"),
        (["report", "--output", "{o}"], "give at least one run directory"),
    ]


@pytest.mark.parametrize("argv,expected", _bad_cli_cases(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_flag_is_one_line_exit_2_and_writes_nothing(argv, expected, broken, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # default output folders would land here
    before = _listing(broken)
    argv = [a.replace("{b}", str(broken)).replace("{o}", str(tmp_path / "out")) for a in argv]
    code = cli_main(argv)
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert expected in err, err
    assert _listing(tmp_path) == [] and _listing(broken) == before  # nothing written anywhere


@pytest.mark.parametrize("command,yaml_text,expected", [
    ("train", "max_steps: three\n", "max_steps: expected an integer, got 'three'"),
    ("train", "algo: nosuch\n", "algo: 'nosuch' is not one of"),
    ("train", "mask_truncated: 'no'\n", "mask_truncated: expected true or false, got 'no'"),
    ("train", "temperature: 0\n", "--temperature (key temperature) must be > 0"),
    ("train", "lr: -1e-6\n", "--lr (key lr) must be > 0"),
    ("train", "no_such_key: 1\n", "unknown config key(s) no_such_key"),
    ("train", "- a list\n", "expected a mapping"),
    ("train", "lr: [1e-6\n", "not valid YAML"),
    ("eval", "limit: 0\n", "--limit (key limit) must be >= 1"),
    ("eval", "max_new_tokens: 0\n", "--max-new-tokens (key max_new_tokens) must be >= 1"),
    ("eval", "temperature: -1\n", "--temperature (key temperature) must be >= 0"),
    ("eval", "batch_size: 0\n", "--batch-size (key batch_size) must be >= 1"),
    ("eval", "grader_timeout_s: 0\n", "--grader-timeout-s (key grader_timeout_s) must be > 0"),
    ("eval", "benchmarks: aime25\n", "unknown dataset 'aime25'"),
    ("eval", "endpoint: localhost:8000/v1\n", "is not an http(s) URL"),
    ("probe", "n: 0\n", "--n (key n) must be >= 1"),
    ("probe", "n_questions: 0\n", "--n-questions (key n_questions) must be >= 1"),
    ("probe", "max_new_tokens: 0\n", "--max-new-tokens (key max_new_tokens) must be >= 1"),
    ("probe", "temperatures: '0.0'\n", "must all be > 0"),
])
def test_bad_yaml_value_is_one_line_exit_2_and_writes_nothing(command, yaml_text, expected, tmp_path, monkeypatch,
                                                               capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.yaml").write_text(yaml_text)
    out = ["--output-dir" if command == "train" else "--output", str(tmp_path / "out")]
    code = cli_main([command, "--config", "recipe.yaml", *out])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert expected in err, err
    assert _listing(tmp_path) == ["recipe.yaml"]


def test_report_refuses_bad_output_and_reads_a_torn_last_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    good = [json.dumps({"step": s, "rollout/reward_mean": 0.1 * s}) for s in range(1, 4)]
    (run / "metrics.jsonl").write_text("\n".join(good) + '\n{"step": 4, "rollout/rew')  # a run still writing
    (tmp_path / "f").write_text("x")
    for output, expected in [(tmp_path / "f", "is a file, not a folder"), (tmp_path / "f" / "rep", "is a file, so")]:
        code = cli_main(["report", str(run), "--output", str(output)])
        err = capsys.readouterr().err
        one_line_error(code, err)
        assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "run"]
    assert cli_main(["report", str(run), "--output", str(tmp_path / "rep")]) == 0
    assert "3 steps" in (tmp_path / "rep" / "summary.md").read_text()
    capsys.readouterr()
    (run / "metrics.jsonl").write_text('{"step": 1\n' + "\n".join(good) + "\n")  # damage in the middle
    code = cli_main(["report", str(run), "--output", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert "metrics.jsonl:1: not valid JSON" in err


def _as_unprivileged(cmd: list[str]) -> list[str]:
    """Run ``cmd`` so that file permissions apply to it (root ignores them)."""
    if os.geteuid() != 0:
        return cmd
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a folder unwritable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]


@pytest.mark.slow
def test_unwritable_output_is_refused_by_eval_probe_and_report(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1}) + "\n")
    locked.chmod(0o555)
    driver = ("import json, sys, io, contextlib\nfrom drzero.cli import main\nres = []\n"
              "for argv in json.loads(sys.argv[1]):\n    err = io.StringIO()\n"
              "    with contextlib.redirect_stderr(err):\n        code = main(argv)\n"
              "    res.append([code, err.getvalue()])\nprint(json.dumps(res))\n")
    out = str(locked / "out")
    argvs = [["eval", "--benchmarks", "toy:test", "--limit", "8", "--output", out],
             ["probe", "--n-questions", "8", "--output", out],
             ["report", str(run), "--output", out]]
    try:
        proc = subprocess.run(_as_unprivileged([sys.executable, "-c", driver, json.dumps(argvs)]), capture_output=True,
                              text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    for code, err in json.loads(proc.stdout.splitlines()[-1]):
        one_line_error(code, err)
        assert f"{locked} is not writable" in err
    assert list(locked.iterdir()) == []


# ----------------------------------------------------------------------------- the hub and offline mode
@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: refuse(addr))
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("argv,expected", [
    (["eval", "--benchmarks", "someone/no-such-set", "--limit", "8"], "offline mode (HF_HUB_OFFLINE=1)"),
    (["eval", "--model", "someone/no-such-model", "--benchmarks", "toy:test"], "offline mode (HF_HUB_OFFLINE=1)"),
    (["probe", "--questions", "someone/no-such-set"], "offline mode (HF_HUB_OFFLINE=1)"),
    (["eval", "--benchmarks", "aime25"], "bundled: aime24"),
])
def test_offline_mode_makes_no_network_attempt(argv, expected, no_network, tmp_path, monkeypatch, capsys):
    import datasets  # noqa: F401 - imported before the variable is set, as in a long-lived process

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = cli_main([*argv, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert expected in err and no_network == []
    assert not (tmp_path / "out").exists()


def test_unreachable_hub_is_one_line_after_one_attempt(no_network, tmp_path, monkeypatch, capsys):
    """No 25-55 s of retries: one request, then the bundled names and the offline hint."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    t = time.perf_counter()
    code = cli_main(["eval", "--benchmarks", "someone/no-such-set", "--limit", "8", "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert "cannot reach the Hugging Face hub" in err and "HF_HUB_OFFLINE=1" in err and "bundled: aime24" in err
    assert time.perf_counter() - t < 10 and len(no_network) <= 2  # one request (an address lookup per family)


# ----------------------------------------------------------------------------- endpoints
class _Completions:
    """The replies of a completions server a test steers: ``mode`` = ok, null_text, html or
    down; ``ok`` answers deterministically (right for about half the questions); ``before``,
    if set, is called with this object before each reply."""

    def __init__(self, answers: dict):
        self.mode, self.requests, self.answers, self.before, self.url = "ok", 0, answers, None, ""

    def __call__(self, body, headers):
        if self.before is not None:
            self.before(self)
        self.requests += 1
        if self.mode == "down":
            return 503, b""
        if self.mode == "html":
            return 200, b"<html><body>502 Bad Gateway</body></html>"
        prompt = body["prompt"]
        right = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 2 == 0
        text = None if self.mode == "null_text" else f"So \\boxed{{{self.answers.get(prompt, '0') if right else 999}}}."
        return 200, {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": {"completion_tokens": 5}}


@pytest.fixture
def server(fake_openai):
    rows = load_questions("toy:test", limit=8)
    replies = _Completions({TEMPLATES["qwen_math"].render(r["problem"]): r["answer"] for r in rows})
    replies.url = fake_openai(replies)
    return replies


def _endpoint_eval(url: str, out: Path, *extra: str) -> list[str]:
    return ["eval", "--model", "served", "--endpoint", url, "--benchmarks", "toy:test", "--limit", "8",
            "--max-new-tokens", "32", "--batch-size", "2", "--retries", "0", "--grader-workers", "1",
            "--output", str(out), *extra]


def test_endpoint_null_text_is_one_line_and_not_cached(server, tmp_path, capsys):
    server.mode = "null_text"
    code = cli_main(_endpoint_eval(server.url, tmp_path / "o"))
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert "returned a choice whose text is null, not a string" in err
    cache = tmp_path / "o" / "endpoint_cache.jsonl"
    assert not cache.exists() or cache.read_text() == ""


def test_endpoint_invalid_json_is_reported_as_such_at_once(server, tmp_path, capsys):
    server.mode = "html"
    code = cli_main(_endpoint_eval(server.url, tmp_path / "o", "--retries", "3"))
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert "answered with invalid JSON" in err and "unreachable" not in err and "<html>" in err
    assert server.requests <= 2  # one per prompt of the first chunk: a server that answers is not retried


def test_endpoint_dying_late_keeps_finished_work_and_resumes(server, tmp_path, capsys, monkeypatch):
    """The server goes down after 4 requests: the two finished chunks (4 questions) stay on
    disk, the error says so, and the rerun, once the server is back, matches an
    uninterrupted eval."""
    assert cli_main(_endpoint_eval(server.url, tmp_path / "full")) == 0
    capsys.readouterr()
    server.requests = 0
    lock, served = threading.Lock(), [0]

    def dies_after_4(replies):  # counted under a lock: the server answers requests of one chunk concurrently
        with lock:
            served[0] += 1
            if served[0] > 4:
                replies.mode = "down"

    server.before = dies_after_4
    code = cli_main(_endpoint_eval(server.url, tmp_path / "late"))
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert "unreachable" in err and "4 samples are kept" in err and "run the same command again to resume" in err
    assert len((tmp_path / "late" / "samples.jsonl").read_text().splitlines()) == 4
    server.mode, server.before = "ok", None
    assert cli_main(_endpoint_eval(server.url, tmp_path / "late")) == 0
    _assert_same_eval(tmp_path / "full", tmp_path / "late")


# ----------------------------------------------------------------------------- eval interrupted and resumed
def _assert_same_eval(a: Path, b: Path) -> None:
    """Same results.json (but for the output path) and the same samples.jsonl, line for line."""
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    for r in (ra, rb):
        r["config"].pop("output")
    assert ra == rb and ra["status"] == "complete"
    assert (a / "samples.jsonl").read_text() == (b / "samples.jsonl").read_text()


class _FakeEngine:
    """Deterministic answers (right for about half the questions), and a KeyboardInterrupt
    (what Ctrl-C raises) at generate call ``interrupt_at``."""

    pad_id = 0

    def __init__(self, answers: dict, interrupt_at: int | None = None):
        self.answers, self.interrupt_at, self.calls = answers, interrupt_at, 0

    def generate(self, prompts, params, on_finished=None):
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls += 1
        out = []
        for i, prompt in enumerate(prompts):
            for k in range(params.n):
                h = int(hashlib.sha256(f"{prompt}|{k}".encode()).hexdigest(), 16)
                answer = self.answers.get(prompt, "0") if h % 2 else "999"
                out.append(Generation(i, [1], [1] * (1 + h % 9), f"so \\boxed{{{answer}}}", "stop"))
        return out

    def sync(self, model):
        pass

    def sleep(self):
        pass

    def wake_up(self):
        pass


@pytest.fixture
def fake_engine(monkeypatch):
    """``make(interrupt_at)``: from then on ``run_eval`` gets a _FakeEngine instead of
    loading the model; returns the list of engines it loads."""
    answers = {TEMPLATES["qwen_math"].render(r["problem"]): r["answer"]
               for name in ("toy:test", "math500") for r in load_questions(name, limit=6)}
    def make(interrupt_at=None):
        made = []  # the engines loaded from now on

        def load(*args, **kwargs):
            made.append(_FakeEngine(answers, interrupt_at))
            return made[-1]

        monkeypatch.setattr(evaluate, "load_engine", load)
        return made

    return make


def _cfg(out: Path, **kw) -> EvalConfig:
    settings = dict(model="toy", benchmarks="toy:test,math500", limit=6, max_new_tokens=8, batch_size=2, grader_workers=1)
    return EvalConfig(output=str(out), **{**settings, **kw})


def test_eval_interrupted_mid_benchmark_resumes_to_identical_results(tmp_path, fake_engine):
    made = fake_engine()
    evaluate.run_eval(_cfg(tmp_path / "full"))
    assert made[-1].calls == 6  # 2 benchmarks x 3 chunks of 2 questions
    made = fake_engine(interrupt_at=4)  # Ctrl-C in math500's second chunk
    with pytest.raises(Interrupted, match="interrupted by SIGINT: 1 finished benchmarks and 8 samples are kept"):
        evaluate.run_eval(_cfg(tmp_path / "cut"))
    kept = (tmp_path / "cut" / "samples.jsonl").read_text().splitlines()
    assert len(kept) == 8  # toy:test's 6 and math500's first chunk: nothing finished was lost
    partial = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert list(partial["benchmarks"]) == ["toy:test"] and partial["status"] == "interrupted"
    made = fake_engine()
    evaluate.run_eval(_cfg(tmp_path / "cut"))
    assert made[-1].calls == 2  # only math500's last two chunks were generated
    _assert_same_eval(tmp_path / "full", tmp_path / "cut")
    assert (tmp_path / "cut" / "samples.jsonl").read_text().splitlines()[:8] == kept
    made = fake_engine()
    evaluate.run_eval(_cfg(tmp_path / "cut"))  # a finished eval: nothing is generated, nothing changes
    assert made == []
    _assert_same_eval(tmp_path / "full", tmp_path / "cut")


def test_eval_resume_redoes_a_torn_line_and_a_chunk_cut_short(tmp_path, fake_engine):
    fake_engine()
    evaluate.run_eval(_cfg(tmp_path / "full"))
    fake_engine(interrupt_at=4)
    with pytest.raises(Interrupted, match="interrupted by SIGINT: 1 finished benchmarks and 8 samples are kept"):
        evaluate.run_eval(_cfg(tmp_path / "cut"))
    samples = tmp_path / "cut" / "samples.jsonl"
    full = (tmp_path / "full" / "samples.jsonl").read_text().splitlines()
    with open(samples, "a") as f:  # what a kill during a write leaves: one whole line of the next chunk, one torn
        f.write(full[8] + "\n" + full[9][:25])
    made = fake_engine()
    evaluate.run_eval(_cfg(tmp_path / "cut"))
    assert made[-1].calls == 2
    _assert_same_eval(tmp_path / "full", tmp_path / "cut")


def test_eval_output_of_other_settings_is_refused_not_mixed(tmp_path, fake_engine, capsys):
    fake_engine()
    evaluate.run_eval(_cfg(tmp_path / "o"))
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    made = fake_engine()
    same = {"--model": "toy", "--benchmarks": "toy:test,math500", "--limit": "6", "--max-new-tokens": "8"}
    for flag, value, expected in [("--max-new-tokens", "16", "max_new_tokens: 8 there, 16 now"),
                                  ("--limit", "4", "limit: 6 there, 4 now"),
                                  ("--model", str(TOY_CHECKPOINT), "model: 'toy' there"),
                                  ("--benchmarks", "math500", "benchmarks: 'toy:test,math500' there")]:
        args = [x for kv in {**same, flag: value}.items() for x in kv]
        code = cli_main(["eval", *args, "--batch-size", "2", "--output", str(tmp_path / "o")])
        err = capsys.readouterr().err
        one_line_error(code, err)
        assert "holds an eval with other settings" in err and expected in err, err
    assert made == []  # refused before any model was loaded
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before
    # settings that do not change the samples may change on a resume
    evaluate.run_eval(_cfg(tmp_path / "o", grader_workers=2, concurrency=2))


def test_eval_output_holding_unknown_samples_is_refused(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "samples.jsonl").write_text('{"benchmark": "toy:test", "index": 0}\n')
    code = cli_main(["eval", "--benchmarks", "toy:test", "--limit", "8", "--output", str(out)])
    one_line_error(code, capsys.readouterr().err)
    (out / "results.json").write_text("[1, 2]")
    code = cli_main(["eval", "--benchmarks", "toy:test", "--limit", "8", "--output", str(out)])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert "not a drzero eval's" in err


# ----------------------------------------------------------------------------- the real thing: signals
# long enough that an interrupt sent after the first few samples lands mid-run (the HF engine
# finished the earlier 8 questions x 32 tokens in about 0.1 s after the 5th sample)
EVAL_ARGS = ["--model", "toy", "--benchmarks", "toy:test,math500", "--limit", "24", "--max-new-tokens", "48",
             "--batch-size", "2", "--grader-workers", "1", "--device", "cpu"]


def _eval_process(out: Path, wait=True):
    cmd = [sys.executable, "-m", "drzero", "eval", *EVAL_ARGS, "--output", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if wait:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        return proc
    # a terminal's foreground process takes Ctrl-C; a test run started in the background of a
    # shell without job control (nohup ... &) inherits SIGINT ignored, so give it back its default
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt_after(out: Path, n_samples: int, sig) -> tuple[subprocess.Popen, list[str], str]:
    """Start the eval, send ``sig`` to its whole process group (as a terminal's Ctrl-C
    does) once ``n_samples`` samples are on disk; the samples on disk right after, stderr."""
    proc = _eval_process(out, wait=False)
    deadline = time.time() + 500
    samples = out / "samples.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and len(samples.read_text().splitlines()) >= n_samples:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the eval ended before it could be interrupted"
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    return proc, samples.read_text().splitlines(), err


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "full"
    _eval_process(out)
    return out


@pytest.mark.slow
def test_eval_killed_twice_and_resumed_matches_uninterrupted(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    finished: list[str] = []
    for n in (3, 27):  # mid toy:test; then, resumed, mid math500
        proc, on_disk, _ = _interrupt_after(out, n, signal.SIGKILL)
        assert proc.returncode == -signal.SIGKILL
        whole = [line for line in on_disk if line.endswith("}")]
        assert whole[: len(finished)] == finished  # what the first run finished is still there, in place
        keys = [(json.loads(line)["benchmark"], json.loads(line)["index"]) for line in whole]
        assert len(keys) == len(set(keys))  # the resumed run skipped it: no question written twice
        finished = whole
    _eval_process(out)
    final = (out / "samples.jsonl").read_text().splitlines()
    assert final[: len(finished)] == finished  # no finished sample lost
    _assert_same_eval(uninterrupted, out)


@pytest.mark.slow
def test_eval_ctrl_c_and_resume_matches_uninterrupted(uninterrupted, tmp_path):
    out = tmp_path / "ctrl-c"
    proc, on_disk, err = _interrupt_after(out, 5, signal.SIGINT)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert len(on_disk) >= 5
    _eval_process(out)
    final = (out / "samples.jsonl").read_text().splitlines()
    assert final[: len(on_disk)] == on_disk
    _assert_same_eval(uninterrupted, out)


@pytest.mark.slow
def test_real_process_bad_input_has_no_traceback(tmp_path):
    """The same checks through ``python -m drzero`` (not the in-process main)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv, expected in [(["train", "--max-steps", "three"], "--max-steps: expected an integer"),
                           (["eval", "--limit", "0"], "--limit (key limit) must be >= 1"),
                           (["probe", "--n", "0"], "--n (key n) must be >= 1")]:
        proc = subprocess.run([sys.executable, "-m", "drzero", *argv], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env=env)
        one_line_error(proc.returncode, proc.stderr)
        assert expected in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- training: kills, corruption, resume
TRAIN_ARGS = ["--template", "qwen_math", "--max-steps", "3", "--prompts-per-step", "2", "--group-size", "4",
        "--micro-batch-size", "8", "--max-new-tokens", "64", "--eval-datasets", "", "--save-every", "1",
        "--keep-checkpoints", "3", "--no-progress", "--grader-workers", "1", "--lr", "1e-3", "--seed", "6"]

TRAIN_CHILD = r"""
import os, signal, sys
from drzero import checkpoint, tracking
kind, at = sys.argv[1].split(":")
at = int(at)
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if kind == "torn-metrics":  # killed while writing step `at`'s metrics line
    write = tracking.RunLog.write
    def torn(self, name, records):
        if name == "metrics" and records[0].get("step") == at:
            line = tracking.dumps(records[0])
            self.files[name].write(line[: len(line) // 2]); self.files[name].flush(); die()
        write(self, name, records)
    tracking.RunLog.write = torn
elif kind == "mid-checkpoint":  # killed while writing step `at`'s weights
    export = checkpoint.export_model
    def half(folder, *a, **k):
        export(folder, *a, **k)
        if folder.name == f".tmp-step-{at:06d}":
            w = folder / "model.safetensors"; os.truncate(w, w.stat().st_size // 2); die()
    checkpoint.export_model = half
elif kind == "before-latest":  # killed after step `at`'s checkpoint is in place, before `latest` names it
    point = checkpoint._point_latest
    def maybe(root, name):
        if name == f"step-{at:06d}": die()
        point(root, name)
    checkpoint._point_latest = maybe
from drzero.cli import main
sys.exit(main(["train", *sys.argv[2:]]))
"""


def _train(run_dir, *extra, fault="none:0"):
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_CHILD, fault, "--output-dir", str(run_dir), *TRAIN_ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = proc.communicate(timeout=900)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # grader workers orphaned by a kill
    except ProcessLookupError:
        pass
    assert "Traceback" not in err, err[-3000:]
    return proc.returncode, out, err


def _metrics(run_dir):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if not k.startswith("time/")} for x in lines]


def _weights(run_dir, step):
    return load_file(str(Path(run_dir) / "checkpoints" / f"step-{step:06d}" / "model.safetensors"))


@pytest.mark.slow
def test_kills_and_corruption_then_resume_match_an_uninterrupted_run(tmp_path):
    ref, run = tmp_path / "reference", tmp_path / "run"
    assert _train(ref)[0] == 0
    reference = _metrics(ref)
    assert [m["step"] for m in reference] == [1, 2, 3]
    assert any(m["train/grad_norm"] > 0 for m in reference[:2])  # a learning signal early: the weights move

    # another run's files in the directory: refused in one line, untouched; --overwrite replaces them
    (run / "checkpoints" / "step-000009").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(10)))
    (run / "config.yaml").write_text("algo: grpo\n")
    code, out, err = _train(run)
    assert code == 2 and err.strip().count("\n") == 0 and "--resume" in err and "--overwrite" in err, err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 10

    code, _, _ = _train(run, "--overwrite", fault="torn-metrics:2")
    assert code == -signal.SIGKILL
    assert not (run / "checkpoints" / "step-000009").exists()
    assert not (run / "metrics.jsonl").read_text().endswith("\n")  # a torn last line

    code, out, _ = _train(run, "--resume", str(run), fault="mid-checkpoint:2")
    assert code == -signal.SIGKILL and "resumed from" in out and "at step 1" in out
    assert list((run / "checkpoints").glob(".tmp-step-000002"))  # the half-written checkpoint

    code, out, _ = _train(run, "--resume", str(run), fault="before-latest:3")
    assert code == -signal.SIGKILL and "at step 1" in out
    ckpts = run / "checkpoints"
    assert (ckpts / "step-000003" / "manifest.json").exists() and (ckpts / "latest").read_text() == "step-000002"

    # the newest checkpoint truncated, the one before it with a truncated trainer shard, `latest` emptied
    weights = ckpts / "step-000003" / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 3)
    shard = ckpts / "step-000002" / "trainer" / "__0_0.distcp"
    os.truncate(shard, shard.stat().st_size - 100)
    (ckpts / "latest").write_text("")
    code, out, _ = _train(run, "--resume", str(run))
    assert code == 0, out[-3000:]
    assert "checkpoint step-000003 is not intact (model.safetensors has" in out
    assert "checkpoint step-000002 is not intact (trainer/__0_0.distcp has" in out
    assert "resumed from" in out and "at step 1" in out

    assert_same_metrics(_metrics(run), reference)  # every step exactly once, equal to the uninterrupted run
    assert (ckpts / "latest").read_text() == "step-000003"
    w_ref, w_run = _weights(ref, 3), _weights(run, 3)
    assert_same_weights(w_ref, w_run)
    base = load_file(str(Path(__file__).resolve().parents[1] / "drzero" / "toy" / "checkpoint" / "model.safetensors"))
    assert any(not torch.equal(base[k], w_run[k]) for k in base)  # it did train
