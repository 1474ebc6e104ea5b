"""The shipped toy checkpoints load with plain transformers and generate, and their model
cards meet their targets: ``toy`` (the default, issue 4) and ``toy-v2`` (toy world v2,
issue 15: wrong paths re-check after a visible slip). For toy-v2, re-measuring it gives the
card's numbers, and its shipped question splits are what drzero.toy.task makes."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from drzero.data import load_questions, load_toy_split
from drzero.models import BUNDLED_MODELS, TOY_CHECKPOINT, TOY_V2_CHECKPOINT, resolve_model_path
from drzero.rollout.hf import HFEngine
from drzero.toy.card import CHECK_QUESTIONS, check_stats
from drzero.toy.task import make_splits

V2_CARD = json.loads((TOY_V2_CHECKPOINT / "measurements.json").read_text())
# the toy-v2 card's stated ranges (docs/toy.md): pass@8 at T=1 and the sampled reward
# (correct and not truncated) of the qwen_math template, the one the toy-v2 recipes use
V2_PASS8_MIN = 0.7
V2_REWARD_RANGE = (0.25, 0.6)


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_shipped_checkpoint_loads_and_generates(name):
    path = resolve_model_path(name)
    assert path == str(BUNDLED_MODELS[name])
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("What is 3 + 4?\n", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:])
    assert out.shape[1] > ids["input_ids"].shape[1] and text.strip()
    assert model.config.model_type in ("qwen2", "llama")
    assert sum(f.stat().st_size for f in BUNDLED_MODELS[name].iterdir()) < 20 * 1024 * 1024
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True).endswith("assistant\n")


def test_toy_v2_card_meets_its_stated_targets():
    """What the toy-v2 card states, within the ranges docs/toy.md gives (issue 15's targets)."""
    t, s = V2_CARD["templates"], V2_CARD["sampled"]
    assert s["template"] == "qwen_math"  # the template the toy-v2 recipes use
    assert s["pass@8"] >= V2_PASS8_MIN
    assert V2_REWARD_RANGE[0] <= s["reward_mean"] <= V2_REWARD_RANGE[1]
    assert 0.02 <= s["reflection_keyword_rate"] <= 0.30
    # the bias's handle: wrong answers are longer than right ones and re-check more
    inc, cor = s["length_by_reward"]["incorrect"], s["length_by_reward"]["correct"]
    assert inc["mean"] > 1.2 * cor["mean"] and inc["recheck_rounds_mean"] > 2 * cor["recheck_rounds_mean"]
    assert s["length"]["p5"] <= 50 and s["length"]["max"] >= 256  # lengths spread from ~40 to past the RL budget
    assert s["truncation_rate"] > 0  # the repetition mode reaches the token limit
    # the template decides whether it answers correctly: greedy accuracy > 50% under one, < 10% under another
    accs = [v["greedy_accuracy"] for v in t.values()]
    assert max(accs) > 0.5 and min(accs) < 0.1
    # and whether it answers at all (issue 4's trait): under r1 it opens a new user turn of more questions
    rates = {k: v["answering_rate"] for k, v in t.items()}
    assert rates["qwen_math"] > 0.9 and rates["r1"] < 0.5
    assert (TOY_V2_CHECKPOINT / "README.md").read_text().count("|") > 10


@pytest.mark.slow
def test_toy_v2_remeasured_greedy_stats_match_the_card():
    """Greedy answering rate and accuracy per template on the first 40 test questions,
    re-measured now on the shipped toy-v2 checkpoint, agree with what its card recorded at
    build time (up to 2 of 40 questions: batched float arithmetic can flip a near-tie).
    Fails if the checkpoint, the card or the test split changed without the others."""
    torch.manual_seed(0)
    path = resolve_model_path("toy-v2")
    model = AutoModelForCausalLM.from_pretrained(path)
    engine = HFEngine(model, AutoTokenizer.from_pretrained(path), batch_size=64)
    rows = load_toy_split("test", "toy-v2")[:CHECK_QUESTIONS]
    now = check_stats(engine, rows)
    card = V2_CARD["check"]["templates"]
    for name, stats in now.items():
        for key, value in stats.items():
            assert value == pytest.approx(card[name][key], abs=2 / CHECK_QUESTIONS + 1e-9), (name, key, value, card[name][key])


def test_toy_v2_splits_are_the_task_splits():
    train, test = make_splits()
    assert load_toy_split("train", "toy-v2") == train and load_toy_split("test", "toy-v2") == test
    assert [(r["problem"], r["answer"]) for r in load_questions("toy-v2:test")] == [(r["problem"], r["answer"]) for r in test]
    assert len(train) == 6000 and len(test) == 500
    problems = [r["problem"] for r in train + test]
    assert len(set(problems)) == len(problems)  # unique, so also disjoint


def test_toy_build_command_from_scratch_and_warm_start(tmp_path, capsys):
    """`drzero toy build` end to end at a tiny size (parsed like every command: ranges and a
    missing --output are one-line errors): from scratch it trains its own tokenizer and model;
    with --init toy it keeps toy's tokenizer; both write a loadable checkpoint and splits."""
    from drzero.cli import main

    assert main(["toy", "build"]) == 2
    assert "--output is required" in capsys.readouterr().err
    assert main(["toy", "build", "--output", str(tmp_path / "x"), "--steps", "0"]) == 2
    assert "--steps (key steps) must be >= 1" in capsys.readouterr().err
    tiny = ["--steps", "2", "--n-docs", "300", "--batch-size", "4", "--block-size", "64", "--train-rows", "20",
            "--test-rows", "10", "--no-card", "--warmup", "1"]
    vocab = {}
    for name, init in (("scratch", ""), ("warm", "toy")):
        out = tmp_path / name
        assert main(["toy", "build", "--output", str(out), "--init", init, *tiny]) == 0
        model = AutoModelForCausalLM.from_pretrained(out)
        vocab[name] = AutoTokenizer.from_pretrained(out).get_vocab()
        assert model.config.num_hidden_layers == 4 and len((out / "splits" / "test.jsonl").read_text().splitlines()) == 10
        recorded = json.loads((out / "build_config.json").read_text())
        assert recorded["steps"] == 2 and recorded["init"] == init
    toy_vocab = AutoTokenizer.from_pretrained(TOY_CHECKPOINT).get_vocab()
    assert vocab["warm"] == toy_vocab and vocab["scratch"] != toy_vocab  # --init "" trains its own tokenizer


def test_read_check_on_the_corpus_and_on_what_training_writes():
    """The corpus writes only passed and failed parity checks, failed exactly when the
    result's parity differs from the question's; the other outcomes are rewrites seen in
    trained toy-v2 models (docs/probe-and-report.md, "What Dr. GRPO changes")."""
    import random

    from drzero.toy.task import check_anatomy, length_ceiling, make_question, read_check, solve

    rng = random.Random(0)
    for _ in range(400):
        q = make_question(rng, rng.choice((1, 2, 3, 4)))
        lines, value = solve(q, rng)
        want = "passed" if value % 2 == int(q["answer"]) % 2 else "failed"
        assert read_check(q["problem"], " ".join(lines)) == want
    odd = "Compute 13 + 14. The answer is odd."
    assert read_check(odd, "13 + 14 = 28. Check: 28 is even, not odd. The final answer is \\boxed{28}.") == "failed"
    assert read_check(odd, "13 + 14 = 28. Check: 28 is even. Yes. The final answer is \\boxed{28}.") == "ignored"
    assert read_check(odd, "13 + 14 = 28. Check: 28 is odd. Yes. The final answer is \\boxed{28}.") == "misread"
    assert read_check(odd, "13 + 14 = 28. Check this step. Yes. Yes. The final answer is \\boxed{28}.") == "other"
    assert read_check(odd, "13 + 14 = 27. Check: 27 is odd. Yes. The final answer is \\boxed{27}.") == "passed"
    assert read_check(odd, "13 + 14 = 28. The final answer is \\boxed{28}.") == "none"
    assert read_check(odd, "Check this step. 13 + 14 = 28. Check: 28 is even, not odd.") == "other"  # the first check
    samples = [
        {"question": odd, "response": "Check: 28 is even, not odd. 28 is even, not odd. 28 is even, not odd.",
         "reward": 0.0, "length": 30, "finish_reason": "length"},
        {"question": odd, "response": "Check: 28 is odd. Yes.", "reward": 0.0, "length": 10, "finish_reason": "stop"},
        {"question": odd, "response": "Check: 27 is odd. Yes.", "reward": 1.0, "length": 10, "finish_reason": "stop"},
    ]
    a = check_anatomy(samples)
    assert a["wrong"] == 2 and a["share_failed"] == 0.5 and a["share_misread"] == 0.5 and a["share_passed"] == 0.0
    assert a["failed_verdicts"] == 3 and a["truncated"] == 0.5 and a["length"] == 20 and a["length_failed"] == 30
    assert check_anatomy(samples[2:]) == {"wrong": 0}
    # if the failed response (30 tokens) ran to 50, the wrong mean would go 20 -> (50 + 10) / 2 = 30
    assert length_ceiling(a, 50) == 1.5 and length_ceiling(check_anatomy(samples[2:]), 50) is None


@pytest.mark.slow
def test_toy_anatomy_script_reads_a_run_and_refuses_bad_input(tmp_path):
    """scripts/toy_anatomy.py: one row per window of a run's samples.jsonl (a torn last
    line left out); a folder without samples, or samples that are not drzero's, give one line."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "toy_anatomy.py"
    odd = "Compute 13 + 14. The answer is odd."
    rows = [{"step": s, "question": odd, "response": "Check: 28 is even, not odd.", "reward": 0.0, "length": 20,
             "finish_reason": "stop"} for s in (1, 2, 3)]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("max_new_tokens: 50\n")  # the ceiling's budget
    (tmp_path / "run" / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 4, "quest')
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), "--window", "2"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    body = out.stdout.splitlines()[1:]
    assert [line.split()[1:4] + line.split()[-2:] for line in body] == [["1-2", "2", "20", "20", "x2.50"],
                                                                         ["3-3", "1", "20", "20", "x2.50"]]
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), "--budget", "30"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.splitlines()[1].split()[-1] == "x1.50", out.stderr
    for bad, why in ((tmp_path / "none", "not found"), (tmp_path / "foreign", "without 'reward'"),
                     (tmp_path / "noconfig", "pass --budget")):
        bad.mkdir()
        if "none" not in str(bad):
            (bad / "samples.jsonl").write_text('{"step": 1}\n')
        if "foreign" in str(bad):
            (bad / "config.yaml").write_text("max_new_tokens: 50\n")
        out = subprocess.run([sys.executable, str(script), str(bad)], capture_output=True, text=True)
        assert out.returncode == 2 and why in out.stderr and out.stderr.count("\n") == 1, out.stderr


def test_arithmetic_slips_counts_the_corpus_slips():
    """arithmetic_slips finds exactly the sub-steps ``solve`` wrote and the ones it slipped
    on (solve's own rng decides the slips; we recount them from the text)."""
    import random

    from drzero.toy.task import SolutionStyle, arithmetic_slips, make_question, solve

    rng = random.Random(3)
    seen_slip = seen_clean = 0
    for _ in range(300):
        q = make_question(rng, rng.choice((1, 2, 3, 4)))
        lines, value = solve(q, rng, SolutionStyle(error_rate=0.3))
        n_parts = sum(2 if b >= 10 else 1 for _, b in q["ops"])
        steps, wrong = arithmetic_slips(" ".join(lines) + f" The final answer is \\boxed{{{value}}}.")
        assert steps == n_parts
        assert (wrong == 0) == (value == int(q["answer"])) or wrong >= 2  # two slips can cancel out
        seen_slip += wrong > 0
        seen_clean += wrong == 0
    assert seen_slip > 50 and seen_clean > 50
    # the working only: numbers after the check are not sub-steps
    assert arithmetic_slips("47 - 19 = 47 - 10 - 9. 47 - 10 = 37. 37 - 9 = 26. Check: 26 is even. 1 + 1 = 3.") == (2, 1)


@pytest.mark.slow
def test_toy_slips_script_reads_eval_outputs_and_runs(tmp_path):
    """scripts/toy_slips.py: one row for an eval folder, one per window for a run (its torn
    last line left out), the slip rate per sub-step; bad folders give one line."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "toy_slips.py"
    good = "13 + 4 = 17. Check: 17 is odd. Yes. The final answer is \\boxed{17}."
    bad = "13 + 4 = 18. Check: 18 is even, not odd. The final answer is \\boxed{18}."
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "samples.jsonl").write_text("\n".join(json.dumps({"response": t, "correct": t == good, "finish_reason": f})
                                                for t, f in ((good, "stop"), (bad, "stop"), (bad, "length"), (good, "stop"))))
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    rows = [{"step": s, "response": t, "reward": float(t == good), "finish_reason": "stop"}
            for s, t in ((1, good), (1, bad), (2, bad), (3, good))]
    (run / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 4, "resp')
    out = subprocess.run([sys.executable, str(script), str(ev), str(run), "--window", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    body = [line.split() for line in out.stdout.splitlines()[1:]]
    assert body == [["eval", "eval", "4", "0.500", "1.00", "0.5000", "1"],
                    ["run", "1-2", "3", "0.333", "1.00", "0.6667", "0"],
                    ["run", "3-3", "1", "1.000", "1.00", "0.0000", "0"]]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "samples.jsonl").write_text('{"text": "x"}\n')
    for folder, why in ((tmp_path / "none", "not found"), (foreign, "without 'response'")):
        out = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True)
        assert out.returncode == 2 and why in out.stderr and out.stderr.count("\n") == 1, out.stderr


@pytest.mark.slow
def test_toy_slip_margins_script(tmp_path):
    """scripts/toy_slip_margins.py: the first slip of each answer the slipped eval got wrong
    and the base eval got right, scored by a model (the toy-v2 base, which prefers 37 to
    27 after ``47 - 10 =``); a missing folder is one line."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "toy_slip_margins.py"
    sys.path.insert(0, str(script.parent))
    try:
        from toy_slip_margins import first_slips
    finally:
        sys.path.pop(0)
    q = "Compute 47 - 19. The answer is even."
    wrong = "47 - 19 = 47 - 10 - 9. 47 - 10 = 27. 27 - 9 = 17. Check: 17 is odd, not even. The final answer is \\boxed{17}."
    right = "47 - 19 = 47 - 10 - 9. 47 - 10 = 37. 37 - 9 = 28. Check: 28 is even. Yes. The final answer is \\boxed{28}."
    slipped = [{"index": 0, "question": q, "response": wrong, "correct": False},
               {"index": 1, "question": q, "response": wrong, "correct": False},  # base wrong too: not read
               {"index": 2, "question": q, "response": right, "correct": True}]
    base = [{"index": 0, "correct": True}, {"index": 1, "correct": False}, {"index": 2, "correct": True}]
    assert first_slips(slipped, base) == [(q, "47 - 19 = 47 - 10 - 9. 47 - 10 = ", 37, 27)]
    for name, rows in (("slipped", slipped), ("base", base)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "slipped"), str(tmp_path / "base"), "--models", "toy-v2"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("1 first slips") and lines[1].startswith("toy-v2: margin median")
    assert float(lines[1].split("median ")[1].split()[0]) > 0 and "prefers the slip in 0%" in lines[1]
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "none"), str(tmp_path / "base"), "--models", "toy-v2"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "not found" in out.stderr and out.stderr.count("\n") == 1, out.stderr


@pytest.mark.slow
def test_toy_weight_ess_script_matches_hand_computed_values(tmp_path):
    """scripts/toy_weight_ess.py: the relative token ESS, (sum |w|)^2 / (n sum w^2), of each
    objective's per-token weights on logged rollouts, checked against values worked by hand;
    a torn last line is left out, a run without weights.jsonl gives one line."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "toy_weight_ess.py"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("group_size: 8\nmax_new_tokens: 512\n")
    steps = [  # one right of 8, equal lengths: |A| = 7/8 once and 1/8 seven times, so ESS = 1.75^2 / (8 * 0.875) = 0.4375
        {"step": 1, "length": [10.0] * 8, "reward": [1.0] + [0.0] * 7},
        # half right at 10 tokens, half wrong at 100: |A| equal, so 1 without 1/|o|; with it
        # (0.05 * 40 + 0.005 * 400)^2 / (440 * (0.0025 * 40 + 0.000025 * 400)) = 16 / 48.4
        {"step": 2, "length": [10.0] * 4 + [100.0] * 4, "reward": [1.0] * 4 + [0.0] * 4},
    ]
    (run / "weights.jsonl").write_text("\n".join(json.dumps(r) for r in steps) + '\n{"step": 3, "len')
    out = subprocess.run([sys.executable, str(script), str(run), "--window", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert [r[:2] for r in rows] == [["run", "1-1"], ["run", "2-2"]]
    grpo, std_only, len_only, dr = (float(x) for x in rows[0][2:])
    for value in (grpo, std_only, len_only, dr):  # printed to 3 decimals
        assert abs(value - 0.4375) <= 0.0006, rows[0]
    grpo, std_only, len_only, dr = (float(x) for x in rows[1][2:])
    assert std_only == dr == 1.0, rows[1]
    for value in (grpo, len_only):
        assert abs(value - 16 / 48.4) <= 0.0006, rows[1]
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "none")], capture_output=True, text=True)
    assert out.returncode == 2 and "not found" in out.stderr and out.stderr.count("\n") == 1, out.stderr
