"""Evaluation: bundled benchmarks, pass@k, the HF and endpoint backends, the CLI."""

import itertools
import json
import os
import random
from math import comb

import pytest

from drzero.analysis import pass_at_k
from drzero.cli import main as cli_main
from drzero.data import load_benchmark, load_questions
from drzero.errors import DrZeroError
from drzero.config import EvalConfig
from drzero.evaluate import aggregate, run_eval
from drzero.grader import grade


def test_bundled_counts_and_list_answers():
    counts = {name: len(load_benchmark(name)) for name in ("aime24", "amc", "math500", "minerva", "olympiadbench")}
    assert counts == {"aime24": 30, "amc": 83, "math500": 500, "minerva": 272, "olympiadbench": 675}
    minerva = load_benchmark("minerva")
    assert isinstance(minerva[0]["answer"], list)
    # list answers: any match counts, graded by drzero.grader
    assert grade("\\boxed{9.6}", minerva[0]["answer"]).correct
    amc = load_benchmark("amc")
    assert amc[0]["answer"] == "142" and grade("\\boxed{142}", amc[0]["answer"]).correct


def test_pass_at_k_matches_brute_force():
    for n in range(1, 7):
        for c in range(n + 1):
            outcomes = [1] * c + [0] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                brute = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(brute)
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_aggregate_lengths_and_rates():
    samples = [
        {"index": 0, "correct": True, "formatted": True, "length": 10, "finish_reason": "stop"},
        {"index": 0, "correct": False, "formatted": True, "length": 30, "finish_reason": "length"},
        {"index": 1, "correct": False, "formatted": False, "length": 50, "finish_reason": "stop"},
        {"index": 1, "correct": False, "formatted": True, "length": 10, "finish_reason": "stop"},
    ]
    m = aggregate(samples, 2)
    assert m["accuracy"] == 0.25 and m["pass@2"] == 0.5 and m["pass@1"] == 0.25
    assert m["length_correct"] == 10 and m["length_incorrect"] == 30
    assert m["format_rate"] == 0.75 and m["truncation_rate"] == 0.25


def test_local_files_and_column_mapping(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text("\n".join(json.dumps({"q": f"{i}+1?", "a": i + 1}) for i in range(3)))
    rows = load_questions(str(p), question_column="q", answer_column="a")
    assert rows[2] == {"problem": "2+1?", "answer": "3"}
    csv = tmp_path / "q.csv"
    csv.write_text("problem,answer\n1+1?,2\n")
    assert load_questions(str(csv)) == [{"problem": "1+1?", "answer": "2"}]
    with pytest.raises(DrZeroError, match="no question column 'x'"):
        load_questions(str(p), question_column="x", answer_column="a")
    with pytest.raises(DrZeroError, match="unknown benchmark|does not exist"):
        load_questions("./nowhere.jsonl")
    broken = tmp_path / "b.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(DrZeroError, match="not valid JSON"):
        load_questions(str(broken))
    with pytest.raises(DrZeroError, match="unknown benchmark"):
        load_benchmark("gsm9k")


def test_shared_dataset_formats_load():
    """The shared training sets (saved datasets and JSON) load with column auto-detection."""
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train"
    if not shared.exists():
        pytest.skip("../shared is not beside this checkout")
    gsm = load_questions(str(shared / "gsm_8k"), limit=3)
    assert gsm[0]["problem"] and gsm[0]["answer"]
    math500 = load_questions(str(shared / "math_train_500.json"), question_column="question", answer_column="gt_answer", limit=2)
    assert math500[0]["answer"] == "24x^2-6x+3"


class _HalfRight:
    """Completions replies: the toy question answered correctly half of the time; the first
    request of each prompt fails with 503 (to exercise retries)."""

    def __init__(self):
        self.seen, self.requests = set(), 0
        self.answers = {r["problem"]: r["answer"] for r in load_questions("toy:test")}

    def __call__(self, body, headers):
        self.requests += 1
        prompt = body["prompt"]
        if prompt not in self.seen:
            self.seen.add(prompt)
            return 503, b""
        q = prompt.split("user\n")[-1].split("<|im_end|>")[0]
        ans = self.answers.get(q, "0")
        rng = random.Random(q)
        choices = [{"index": i, "text": f"Easy. The final answer is \\boxed{{{ans if rng.random() < 0.5 else 999}}}.",
                    "finish_reason": "stop"} for i in range(body.get("n", 1))]
        return 200, {"choices": choices, "usage": {"completion_tokens": 9}}


def test_endpoint_backend_retries_and_resumes_from_cache(tmp_path, fake_openai, monkeypatch):
    replies = _HalfRight()
    fake_server = fake_openai(replies)
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    cfg = EvalConfig(model="served", benchmarks="toy:test", limit=6, n=2, temperature=1.0, max_new_tokens=32,
                     endpoint=fake_server, api_key_env="FAKE_KEY", output=str(tmp_path / "ev"), retries=3, concurrency=3)
    first = run_eval(cfg)
    m = first["benchmarks"]["toy:test"]
    assert m["n_questions"] == 6 and 0 <= m["accuracy"] <= 1 and "pass@2" in m
    before = replies.requests
    again = run_eval(cfg)  # everything cached: no new request
    assert replies.requests == before
    assert again["benchmarks"] == first["benchmarks"]
    assert "sk-test" not in (tmp_path / "ev" / "results.json").read_text()
    lines = (tmp_path / "ev" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 12 and {"question", "reference", "response", "extracted", "correct", "length", "finish_reason"} <= set(json.loads(lines[0]))


def test_unreachable_endpoint_is_one_line_error(tmp_path, capsys):
    code = cli_main(["eval", "--model", "x", "--benchmarks", "toy:test", "--limit", "2", "--endpoint",
                     "http://127.0.0.1:9/v1", "--retries", "0", "--output", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: endpoint") and "unreachable" in err and "\n" not in err


def test_unknown_benchmark_is_one_line_error(capsys, tmp_path):
    """Answered at once (no hub call), listing the bundled names."""
    code = cli_main(["eval", "--benchmarks", "aime25", "--output", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "unknown dataset 'aime25'" in err and "aime24, amc, math500, minerva, olympiadbench, toy:train, toy:test" in err
    assert not (tmp_path / "e").exists()


def test_eval_decodes_on_idle_cores_only(monkeypatch):
    """``drzero eval`` without --decode-threads, greedy: on a small CPU machine, every core
    when they are idle as it starts, DecodeThreads' one-thread rule when something else runs;
    the flag always wins; nothing changes on a GPU or on a big machine."""
    import drzero.rollout.hf as hf

    monkeypatch.setattr(hf.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(hf, "idle_cpus", lambda interval=0.25: 1.9)
    assert hf.eval_decode_threads(None, "cpu") == 2
    assert hf.eval_decode_threads(1, "cpu") == 1
    assert hf.eval_decode_threads(None, "cuda") is None
    assert hf.eval_decode_threads(None, "cpu", greedy=False) is None  # a sampled eval repeats under its seed
    monkeypatch.setattr(hf, "idle_cpus", lambda interval=0.25: 1.2)  # another process holds most of a core
    assert hf.eval_decode_threads(None, "cpu") is None
    monkeypatch.setattr(hf, "idle_cpus", lambda interval=0.25: None)  # /proc/stat unreadable
    assert hf.eval_decode_threads(None, "cpu") is None
    monkeypatch.setattr(hf.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(hf, "idle_cpus", lambda interval=0.25: 16.0)
    assert hf.eval_decode_threads(None, "cpu") is None  # torch's own setting


def test_eval_passes_the_decode_threads_it_chose(tmp_path, monkeypatch):
    """run_eval applies the idle-core rule to greedy evals of a model decoded here, not to
    sampled ones, and a flag overrides it."""
    import drzero.evaluate as ev
    import drzero.rollout.hf as hf

    monkeypatch.setattr(hf, "idle_cpus", lambda interval=0.25: 2.0)
    monkeypatch.setattr(hf.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(hf, "usable_cpus", lambda: 2)
    chosen, load = [], ev.load_engine

    def spy(*args, **kw):
        chosen.append(kw["decode_threads"])
        return load(*args, **kw)

    monkeypatch.setattr(ev, "load_engine", spy)
    base = dict(model="toy", benchmarks="toy:test", limit=2, max_new_tokens=4, grader_workers=1)
    run_eval(EvalConfig(**base, output=str(tmp_path / "greedy")))
    run_eval(EvalConfig(**base, temperature=0.7, output=str(tmp_path / "sampled")))
    run_eval(EvalConfig(**base, decode_threads=1, output=str(tmp_path / "flag")))
    assert chosen == [2, None, 1]


def test_idle_cpus_reads_proc_stat():
    from drzero.rollout.hf import idle_cpus, usable_cpus

    idle = idle_cpus(0.05)
    assert idle is None or 0.0 <= idle <= (os.cpu_count() or 1) + 1e-9
    if os.path.exists("/proc/stat") and usable_cpus() == os.cpu_count():
        assert idle is not None  # readable here: the rule is live on this machine


def test_idle_cpus_arithmetic_on_given_snapshots(monkeypatch):
    """idle CPUs = cores x (idle + iowait delta) / (delta of the first 8 fields: guest time
    is already inside user); iowait going down (the kernel allows it) gives 0, not < 0."""
    import io

    import drzero.rollout.hf as hf

    def fake(snapshots):
        it = iter(snapshots)
        return lambda path, *a, **k: io.StringIO(next(it))

    monkeypatch.setattr(hf.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(hf, "usable_cpus", lambda: 2)
    #                   user nice system idle iowait irq softirq steal guest guest_nice
    a = "cpu  100 0 50 1000 10 0 0 0 100 0\n"
    b = "cpu  150 0 50 1140 20 0 0 0 150 0\n"  # 200 ticks, 150 of them idle or iowait
    monkeypatch.setattr(hf, "open", fake([a, b]), raising=False)
    assert hf.idle_cpus(0) == 2 * 150 / 200
    c = "cpu  300 0 50 1000 0 0 0 0 100 0\n"  # idle + iowait went down by 10
    monkeypatch.setattr(hf, "open", fake([a, c]), raising=False)
    assert hf.idle_cpus(0) == 0.0
    monkeypatch.setattr(hf, "usable_cpus", lambda: 1)  # a container's share: the machine's numbers do not apply
    assert hf.idle_cpus(0) is None


def test_usable_cpus_respects_affinity():
    from drzero.rollout.hf import usable_cpus

    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() <= len(os.sched_getaffinity(0))


def test_default_batch_size_by_engine_and_resume(tmp_path):
    """256 questions per batch where bigger is faster and fits (vLLM; the HF engine on a CPU
    with a small model), else 64 (big models, a GPU, many samples per question, an endpoint);
    a resumed eval keeps the batch size its samples were cut by."""
    from drzero.eval_output import previous_batch_size
    from drzero.rollout import default_batch_size, kv_bytes_per_token

    def guess(output, model="toy", engine="hf", endpoint=None, n=1, device="cpu"):  # as run_eval makes it
        return previous_batch_size(output) or default_batch_size(model, engine=engine, endpoint=endpoint, n=n,
                                                                 max_new_tokens=EvalConfig().max_new_tokens,
                                                                 device=device)

    out = tmp_path / "e"
    assert kv_bytes_per_token("toy") == 4 * 2 * 2 * 48 * 4  # layers x (k, v) x kv heads x head dim x float32
    assert kv_bytes_per_token("someone/not-here") is None  # offline: unknown, so the safe 64
    assert guess(out) == 256
    assert guess(out, n=8) == 64  # 2048 sequences' keys/values: too many
    assert guess(out, model="someone/not-here") == 64
    assert guess(out, engine="vllm", device="cuda") == 256
    assert guess(out, device="cuda") == 64
    assert guess(out, endpoint="http://localhost:1/v1") == 64
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"config": {"batch_size": 64}}))
    assert guess(out) == 64
    (out / "results.json").write_text("{torn")
    assert guess(out) == 256


def test_decode_threads_reach_the_hf_engine_and_are_checked(capsys, tmp_path, monkeypatch):
    """``drzero eval --decode-threads N`` decodes on N CPU threads (``DecodeThreads``);
    0 is a one-line error before anything loads."""
    import drzero.rollout.hf as hf
    from drzero.rollout import load_engine

    engine = load_engine("toy", decode_threads=2)
    assert engine.decode_threads == 2
    monkeypatch.setattr(hf.os, "cpu_count", lambda: 2)  # a machine with few cores: the rule says 1, the flag wins
    assert hf.DecodeThreads(engine, "cpu").threads == 2
    assert hf.DecodeThreads(load_engine("toy"), "cpu").threads == 1
    capsys.readouterr()  # the loads' progress bars
    code = cli_main(["eval", "--decode-threads", "0", "--benchmarks", "toy:test", "--output", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--decode-threads (key decode_threads) must be >= 1" in err and "\n" not in err
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_eval_toy_math500_writes_files(tmp_path):
    out = tmp_path / "ev"
    code = cli_main(["eval", "--model", "toy", "--benchmarks", "math500", "--limit", "8", "--max-new-tokens", "32",
                     "--output", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["benchmarks"]["math500"]["n_questions"] == 8
    assert len((out / "samples.jsonl").read_text().splitlines()) == 8


@pytest.mark.slow
def test_eval_with_the_math_verify_grader_gives_math_verify_s_own_verdicts(tmp_path):
    """`drzero eval --grader math_verify` = math-verify called the documented way on each
    sample (the toy model's own output, so calling its parse_expr path here is safe)."""
    from math_verify import parse, verify

    out = tmp_path / "ev"
    assert cli_main(["eval", "--benchmarks", "toy:test", "--limit", "24", "--max-new-tokens", "64", "--grader",
                     "math_verify", "--grader-workers", "1", "--output", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["grader"] == "math_verify"
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    direct = [any(verify(parse(f"${ref}$"), parse(r["response"]))
                  for ref in (r["reference"] if isinstance(r["reference"], list) else [r["reference"]])) for r in rows]
    assert [r["correct"] for r in rows] == direct
    assert 0 < sum(direct) < len(direct)  # both verdicts occur: the comparison can tell them apart
