"""probe (with a judge on a real local HTTP server) and report."""

import json
from pathlib import Path

import pytest

from drzero.analysis import is_answering, reflection_keywords
from drzero.judge import Judge
from drzero.config import ProbeConfig
from drzero.probe import run_probe
from drzero.report import make_report
from drzero.data import load_toy_split as load_split


def test_reflection_keywords_and_answering_detector():
    assert reflection_keywords("Wait, let me check again. Let me double-check.") == ["check again", "double-check"]
    assert reflection_keywords("We compute 3 + 4 = 7.") == []
    assert is_answering("so \\boxed{7}") and is_answering("<answer> 7 </answer>") and is_answering("The answer is 7.")
    assert not is_answering("\nWhat is 3 + 4?\nCompute 2 * 5.")


def test_answering_detector_stops_at_a_new_turn():
    """The toy-v2 model's real greedy output under the r1 template: it opens a new user turn
    and writes more questions, each with the task's parity phrase ("The answer is odd.").
    The paper's judge calls that "continues the prompt", not answering; the rule used to
    count it. Now it reads the response only up to the new turn, as the grader does."""
    r1_drift = " First, let us read the question again.\nUser: Evaluate 16 + 36. The answer is odd.\nEvaluate 30 + 37. The answer is odd."
    assert not is_answering(r1_drift)
    assert not is_answering("Let me think.\nUser: What is 2 + 2?\nAssistant: The answer is 4.")
    assert not is_answering("Let me think.<|im_start|>user\nWhat is 2 + 2? The answer is \\boxed{4}")
    # an answer given before the model goes on to a new turn still counts
    assert is_answering("So the answer is 7.\nUser: What is 2 + 2?")
    assert is_answering("44 - 37 = 7. 7 + 23 = 30. Check: 30 is even. Yes. The final answer is \\boxed{30}.")
    # the documented limit (why drzero probe calls the rule a format rate): more questions
    # on plain new lines, with no turn marker, still pass
    assert is_answering("\nEvaluate 36 - 11 + 33. The answer is odd.\nEvaluate 39 + 33. The answer is odd.")


def _judge_reply(body, headers):
    assert headers["Authorization"] == "Bearer judge-key"
    prompt = body["messages"][0]["content"]
    response = prompt.split("Response:\n", 1)[1]
    if "single integer (0 or 1)" in prompt:  # the answering question
        text = "1: it answers" if "boxed" in response or "<answer>" in response else "0: it continues the text"
    else:  # the self-reflection categories; the verdict ends the reply
        text = ("Not 0 (it is on topic), and it re-checks its work: 2." if reflection_keywords(response)
                else "Not 3 (no code), no reflection: 1")
    return 200, {"choices": [{"message": {"role": "assistant", "content": text}}]}


@pytest.fixture
def judge_url(monkeypatch, fake_openai):
    monkeypatch.setenv("JUDGE_KEY", "judge-key")
    return fake_openai(_judge_reply)


def test_judge_client_against_local_server(judge_url):
    judge = Judge(judge_url, "judge", api_key_env="JUDGE_KEY")
    assert judge.answering([("q", "so \\boxed{1}"), ("q", "What is 2+2?")]) == [True, False]
    assert judge.reflection([("q", "let me check again"), ("q", "7")]) == [2, 1]


@pytest.mark.slow
def test_probe_toy_with_judge(tmp_path, judge_url):
    cfg = ProbeConfig(model="toy", n_questions=40, sample_questions=8, n=4, temperatures="0.7,1.0", max_new_tokens=64,
                      output=str(tmp_path / "probe"), judge_endpoint=judge_url, judge_api_key_env="JUDGE_KEY")
    card = run_probe(cfg, log=lambda *a: None)
    rates = {k: v["answering_rate"] for k, v in card["templates"].items()}
    assert len(set(round(r, 3) for r in rates.values())) > 1, rates  # the template matters
    assert card["recommended_template"] in rates
    out = tmp_path / "probe"
    for name in ("scorecard.md", "scorecard.html", "answering_rate.png", "pass_at_k.png", "reflection.png", "responses.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert "judge-key" not in (out / "scorecard.json").read_text()
    assert "keywords+judge" in (out / "scorecard.json").read_text()


def _fake_run(path, algo, inc_growth, seed=0, extra=""):
    path.mkdir()
    (path / "config.yaml").write_text(f"algo: {algo}\nseed: {seed}\noutput_dir: {path}\n{extra}")
    with open(path / "metrics.jsonl", "w") as f, open(path / "weights.jsonl", "w") as w:
        f.write(json.dumps({"step": 0, "eval/toy:test/accuracy": 0.1}) + "\n")
        for s in range(1, 11):
            f.write(json.dumps({"step": s, "rollout/reward_mean": 0.1 * s / 2, "rollout/response_length_mean": 40 + s,
                                "rollout/response_length_correct": 40.0, "rollout/response_length_incorrect": 40.0 + inc_growth * s,
                                "rollout/truncation_rate": 0.0, **({"eval/toy:test/accuracy": 0.3} if s == 10 else {})}) + "\n")
            w.write(json.dumps({"step": s, "length": [10, 20, 30, 40], "correct": [True, False, True, False],
                                "advantage": [0.5, -0.5, 0.5, -0.5], "token_weight": [0.05, -0.025, 0.016, -0.0125],
                                "question_scale": [1.7, 2.0]}) + "\n")


def test_report_two_runs(tmp_path):
    _fake_run(tmp_path / "grpo", "grpo", 5.0)
    _fake_run(tmp_path / "drgrpo", "dr_grpo", 0.0)
    page = make_report([str(tmp_path / "grpo"), str(tmp_path / "drgrpo")], str(tmp_path / "rep"))
    html = page.read_text()
    for img in ("reward.png", "length_split.png", "eval_accuracy.png", "truncation.png", "weights.png"):
        assert img in html and (tmp_path / "rep" / img).stat().st_size > 1000
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "grpo (grpo): 10 steps" in summary and "incorrect-response length 55.0 -> 80.0" in summary
    assert "drgrpo (dr_grpo)" in summary and "incorrect-response length 40.0 -> 40.0" in summary


def test_report_draws_seeds_of_one_experiment_as_one_line_with_a_band(tmp_path):
    _fake_run(tmp_path / "g0", "grpo", 4.0, seed=0)
    _fake_run(tmp_path / "g1", "grpo", 6.0, seed=1)
    _fake_run(tmp_path / "d0", "dr_grpo", 0.0, seed=0)
    make_report([str(tmp_path / d) for d in ("g0", "g1", "d0")], str(tmp_path / "rep"))
    groups = {s["label"]: s for s in json.loads((tmp_path / "rep" / "summary.json").read_text())}
    g = groups["grpo (2 seeds)"]  # 40 + 4*s and 40 + 6*s: the mean grows 5 per step, the std 1 per step
    assert g["seeds"] == 2 and g["length_incorrect_last5"] == pytest.approx(80.0)
    assert g["length_incorrect_last5_std"] == pytest.approx(8.0)
    assert "grpo (2 seeds)" in (tmp_path / "rep" / "summary.md").read_text()
    assert "dr_grpo (2 seeds)" not in groups and "d0 (dr_grpo)" in groups  # a different experiment, one seed


def test_report_groups_seeds_run_for_different_lengths_under_a_constant_lr(tmp_path):
    """A seed resumed to more iterations is the same experiment when the learning rate is
    constant; with a decaying schedule the length changes every iteration's lr: apart."""
    _fake_run(tmp_path / "g0", "grpo", 4.0, seed=0, extra="max_steps: 400\nlr_schedule: constant\n")
    _fake_run(tmp_path / "g1", "grpo", 6.0, seed=1, extra="max_steps: 300\nlr_schedule: constant\n")
    _fake_run(tmp_path / "c0", "grpo", 4.0, seed=0, extra="max_steps: 400\nlr_schedule: cosine\n")
    _fake_run(tmp_path / "c1", "grpo", 6.0, seed=1, extra="max_steps: 300\nlr_schedule: cosine\n")
    make_report([str(tmp_path / d) for d in ("g0", "g1", "c0", "c1")], str(tmp_path / "rep"))
    labels = [s["label"] for s in json.loads((tmp_path / "rep" / "summary.json").read_text())]
    assert "grpo (2 seeds)" in labels and "c0 (grpo)" in labels and "c1 (grpo)" in labels


def test_report_on_a_non_run_is_a_clear_error(tmp_path, capsys):
    from drzero.cli import main

    assert main(["report", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "not a training run directory" in capsys.readouterr().err


def test_toy_splits_shape():
    train, test = load_split("train"), load_split("test")
    assert len(train) >= 5000 and len(test) >= 500
    assert not {r["problem"] for r in test} & {r["problem"] for r in train}
    assert {"problem", "answer", "level"} <= set(test[0])


def test_bias_monitor_on_recorded_toy_v2_runs():
    """The trainer's bias monitor fed the per-iteration lengths that real toy-v2 runs logged
    (tests/data/toy_v2_lengths.json: GRPO and Dr. GRPO, same seeds, 300 iterations each):
    it warns during every GRPO run and never during a Dr. GRPO one. Without its patience
    (warning on the first iteration the comparison holds) it also warned on Dr. GRPO's
    early transient, which this test keeps as the reason for the patience."""
    from drzero.analysis import BiasMonitor

    runs = json.loads((Path(__file__).parent / "data" / "toy_v2_lengths.json").read_text())["runs"]
    assert sum(r["algo"] == "grpo" for r in runs.values()) >= 4 and sum(r["algo"] == "dr_grpo" for r in runs.values()) >= 4

    def warnings(run, **kw):
        monitor = BiasMonitor(**kw)
        nan = float("nan")
        return [step for step, (c, i) in enumerate(zip(run["correct"], run["incorrect"]), start=1)
                if monitor.update(step, nan if c is None else c, nan if i is None else i)]

    for name, run in runs.items():
        assert len(run["incorrect"]) >= 300, name
        fired = warnings(run)
        assert bool(fired) == (run["algo"] == "grpo"), (name, fired)
    impatient = [name for name, run in runs.items() if run["algo"] == "dr_grpo" and warnings(run, patience=1)]
    assert impatient, "the early transient the patience is for"
