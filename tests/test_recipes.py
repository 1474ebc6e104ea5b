"""Recipes: every value of a paper recipe equals the reference value it cites, and every
recipe parses into a valid training config.

The reference is sail-sg/understand-r1-zero (on sail-sg/oat). The table below is the record
of what it runs; each entry is (the value in our units, the citation). Where drzero cannot
use the reference's value (a dataset not on the hub, a setting with no counterpart) the
entry says so: the test then checks the recipe against the documented choice, so nothing
enters a recipe without a line here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from drzero.config import TrainConfig
from drzero.parsing import check_train_config
from drzero.parsing import parse_config
from drzero.train import steps_for_epochs
from drzero.errors import DrZeroError

RECIPES = Path(__file__).resolve().parents[1] / "drzero" / "recipes"
SH_7B = "sail-sg/understand-r1-zero examples/qwen2.5-math-7b.sh, Qwen-Math template run"
SH_15B = "sail-sg/understand-r1-zero examples/qwen2.5-math-1.5b.sh, R1 template run (= README Training)"
README = "sail-sg/understand-r1-zero README.md"
ARGS = "sail-sg/oat oat/args.py, OATArgs defaults"
TRAIN_PY = "sail-sg/understand-r1-zero train_zero_math.py"
OURS = "drzero setting without a reference counterpart; no effect on the gradient"
LEVELS_3_5 = "level in ['Level 3', 'Level 4', 'Level 5']"


def _shared(sh: str) -> dict:
    """Values both papers' scripts pass identically: key -> (value, flag as the script writes it, source)."""
    return {
        "prompts_per_step": (128, "--rollout_batch_size 128", sh),
        "group_size": (8, "N_SAMPLE=8", sh),
        "train_batch_size": (128, "--train_batch_size 128", sh),
        "ppo_epochs": (1, "--num_ppo_epochs 1", sh),
        "max_new_tokens": (3000, "--generate_max_length 3000", sh),
        "temperature": (1.0, "--temperature 1", sh),
        "top_p": (1.0, "--top_p 1", sh),
        "lr": (1e-6, "--learning_rate 0.000001", sh),
        "lr_schedule": ("constant", "--lr_scheduler constant", sh),
        "warmup_steps": (0, "constant", "transformers get_scheduler('constant') has no warmup"),
        "beta": (0.0, "--beta 0", sh),
        "max_epochs": (20, "--num_prompt_epoch 20", sh),
        "dtype": ("bfloat16", "--bf16", sh),
        "gradient_checkpointing": (True, "--gradient-checkpointing", sh),
        "engine": ("vllm", "vLLM", f"{sh}: oat's actors generate with vLLM"),
        "dataset_split": ("train", "--train_split train", sh),
        "question_column": ("problem", "--input_key problem", sh),
        "eval_datasets": ("aime24,amc,math500,minerva,olympiadbench", "--eval_data", f"{sh}: ./datasets/evaluation_suite"),
        "eval_limit": (None, "every question", f"{sh}: the whole evaluation suite"),
        "eval_every": (16, "--eval_steps 16", sh),
        "eval_max_new_tokens": (3000, "--eval_generate_max_length 3000", sh),
        "weight_decay": (0.0, "l2 = 0.0", ARGS),
        "adam_beta2": (0.95, "adam_beta_2 = 0.95", ARGS),
        "max_grad_norm": (1.0, "max_norm = 1.0", ARGS),
        "mask_truncated": (False, "--ignore_no_eos", f"{TRAIN_PY}: loss_mask is True unless --ignore_no_eos"),
        # deviations, each documented in the recipe
        "dataset": ("DigitalLearningGmbH/MATH-lighteval", "--prompt_data",
                    f"{sh}: a local MATH subset not on the hub; the hub copy of MATH instead"),
        "answer_column": ("solution", "--output_key answer",
                          f"{sh}: the hub copy has full solutions, graded through their last \\boxed{{}}"),
        "save_every": (16, "[ours]", OURS),
    }


def _paper_7b(algo: str, critic: str) -> dict:
    return {**_shared(SH_7B),
            "model": ("Qwen/Qwen2.5-Math-7B", "--pretrain Qwen/Qwen2.5-Math-7B", SH_7B),
            "algo": (algo, f"--critic_type {critic}", SH_7B if algo == "dr_grpo" else README),
            "template": ("qwen_math", "--prompt_template qwen_math", SH_7B),
            "dataset_filter": (LEVELS_3_5, "MATH level 3-5", "paper Sec. 4 and README: MATH level 3-5 questions"),
            "sharding": ("fsdp", "--zero-stage 2", f"{SH_7B}: ZeRO-2 sharding; FSDP2 here"),
            # memory settings planned for 8 x A100-80G (drzero plan; test_gpu_recipes_fit_their_stated_hardware)
            "micro_batch_size": (32, "[ours] drzero plan", OURS),
            "vllm_memory": (0.5, "[ours] drzero plan", f"{OURS}; {SH_7B} has --vllm_gpu_ratio 0.35"),
            "output_dir": (f"runs/qwen2.5-math-7b-{algo}", "[ours]", OURS)}


def _paper_15b(algo: str, critic: str) -> dict:
    return {**_shared(SH_15B),
            "model": ("Qwen/Qwen2.5-Math-1.5B", "--pretrain Qwen/Qwen2.5-Math-1.5B", SH_15B),
            "algo": (algo, f"--critic_type {critic}", SH_15B if algo == "dr_grpo" else README),
            "template": ("r1", "--prompt_template r1", f"{SH_15B}; paper Fig. 6"),
            "sharding": ("none", "--zero-stage 2", f"{SH_15B}: a 1.5B learner fits per GPU; data parallel"),
            # memory settings planned for 8 x A100-40G (drzero plan; test_gpu_recipes_fit_their_stated_hardware)
            "micro_batch_size": (16, "[ours] drzero plan", OURS),
            "vllm_memory": (0.35, "--vllm_gpu_ratio 0.35", SH_15B),
            "output_dir": (f"runs/qwen2.5-math-1.5b-{algo}", "[ours]", OURS)}


REFERENCE = {
    "qwen2.5-math-7b-dr_grpo.yaml": _paper_7b("dr_grpo", "drgrpo"),
    "qwen2.5-math-7b-grpo.yaml": _paper_7b("grpo", "grpo"),
    "qwen2.5-math-1.5b-dr_grpo.yaml": _paper_15b("dr_grpo", "drgrpo"),
    "qwen2.5-math-1.5b-grpo.yaml": _paper_15b("grpo", "grpo"),
}


def _key_lines(path: Path) -> dict[str, str]:
    """key -> the comment on its line, for every top-level key of a recipe."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([a-z_0-9]+):", line)
        if m:
            out[m.group(1)] = line.split("#", 1)[1].strip() if " # " in line or "  #" in line else ""
    return out


def test_every_recipe_is_covered():
    paper = {p.name for p in RECIPES.glob("*.yaml") if not p.name.startswith("toy-")}
    assert paper == set(REFERENCE), "a paper recipe without a reference table (or a table without a recipe)"


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_paper_recipe_values_equal_the_reference(name):
    recipe = yaml.safe_load((RECIPES / name).read_text())
    table = REFERENCE[name]
    assert set(recipe) == set(table), (f"uncited keys: {sorted(set(recipe) - set(table))}; "
                                       f"cited but missing: {sorted(set(table) - set(recipe))}")
    cfg = parse_config(TrainConfig, ["--config", str(RECIPES / name)], prog="t")
    for key, (value, flag, source) in table.items():
        assert getattr(cfg, key) == value, f"{name}: {key} = {getattr(cfg, key)!r}, the reference ({source}) has {value!r}"
    comments = _key_lines(RECIPES / name)
    for key, (_, flag, _) in table.items():
        assert flag in comments[key], f"{name}: the comment on {key} does not cite {flag!r}: {comments[key]!r}"


def test_paper_recipe_pairs_differ_only_in_the_objective():
    for size in ("7b", "1.5b"):
        dr = yaml.safe_load((RECIPES / f"qwen2.5-math-{size}-dr_grpo.yaml").read_text())
        grpo = yaml.safe_load((RECIPES / f"qwen2.5-math-{size}-grpo.yaml").read_text())
        assert {k for k in dr if dr[k] != grpo[k]} == {"algo", "output_dir"}


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_parses_into_a_valid_config_and_cites_its_values(path):
    cfg = parse_config(TrainConfig, ["--config", str(path)], prog="t")
    check_train_config(cfg)
    for key, comment in _key_lines(path).items():
        assert comment, f"{path.name}: {key} has no comment citing its source"


def test_max_epochs_follows_the_reference_count():
    # oat: num_prompt_epoch passes over a loader that drops the last incomplete batch
    assert steps_for_epochs(20, 8523, 128) == 20 * 66
    assert steps_for_epochs(1, 127 + 128, 128) == 1
    assert steps_for_epochs(0.5, 1280, 128) == 5
    with pytest.raises(DrZeroError, match="no full batch"):
        steps_for_epochs(1, 100, 128)
    with pytest.raises(DrZeroError, match=r"max_epochs\) must be > 0"):
        check_train_config(TrainConfig(max_epochs=0))


def test_train_setup_applies_dataset_filter_max_epochs_and_eval_columns(tmp_path):
    from drzero.data import load_toy_split
    from drzero.train import setup

    evalset = tmp_path / "ev.jsonl"
    evalset.write_text('{"q": "Compute 2 * 3.", "a": 6, "other": "x"}\n{"q": "Compute 2 * 4.", "a": 8, "other": "y"}\n')
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), dataset="toy:train", dataset_filter="level == 4", max_epochs=2,
                      prompts_per_step=16, eval_datasets=str(evalset), eval_question_column="q",
                      eval_answer_column="a", grader_workers=1, progress=False)
    s = setup(cfg)
    level4 = [r for r in load_toy_split("train") if r["level"] == 4]
    assert len(s.rows) == len(level4) and all(r["problem"].startswith("Solve for x") for r in s.rows)
    assert s.cfg.max_steps == 2 * (len(level4) // 16)
    assert s.eval_sets[str(evalset)] == [{"problem": "Compute 2 * 3.", "answer": "6"},
                                         {"problem": "Compute 2 * 4.", "answer": "8"}]


def test_config_names_a_bundled_recipe(tmp_path, capsys):
    """`--config NAME` finds a recipe shipped inside the package (pip users have no repo);
    an unknown name is one line listing the bundled ones."""
    from drzero.cli import main
    from drzero.config import TrainConfig
    from drzero.parsing import apply_overrides, load_yaml, parse_config

    by_name = parse_config(TrainConfig, ["--config", "qwen2.5-math-7b-dr_grpo"], prog="t")
    by_path = apply_overrides(TrainConfig, TrainConfig(), load_yaml(str(RECIPES / "qwen2.5-math-7b-dr_grpo.yaml")), "p")
    assert by_name.model == by_path.model == "Qwen/Qwen2.5-Math-7B" and by_name.adam_beta2 == by_path.adam_beta2
    assert main(["train", "--config", "no-such-recipe", "--output-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a bundled recipe" in err and "toy-grpo" in err and "\n" not in err


def test_toy_v2_recipes_differ_only_in_the_objective():
    """The length-bias experiment (issue 15): the toy-v2 pair shares model, data, budget and
    seed; only the objective (and the run folder) differ, and the budget leaves room for
    re-check loops (>= 256 new tokens)."""
    from drzero.models import resolve_model_path, TOY_V2_CHECKPOINT

    grpo = yaml.safe_load((RECIPES / "toy-v2-grpo.yaml").read_text())
    dr = yaml.safe_load((RECIPES / "toy-v2-dr_grpo.yaml").read_text())
    assert {k for k in set(grpo) | set(dr) if grpo.get(k) != dr.get(k)} == {"algo", "output_dir"}
    assert (grpo["algo"], dr["algo"]) == ("grpo", "dr_grpo")
    for recipe in (grpo, dr):
        cfg = parse_config(TrainConfig, ["--config", str(RECIPES / f"toy-v2-{recipe['algo']}.yaml")], prog="t")
        assert cfg.max_new_tokens >= 256 and cfg.group_size >= 8 and cfg.prompts_per_step >= 16
        assert cfg.model == "toy-v2" and resolve_model_path(cfg.model) == str(TOY_V2_CHECKPOINT)
        assert cfg.dataset == "toy-v2:train" and cfg.eval_datasets == "toy-v2:test"


PLANNED_FOR = re.compile(r"^# Planned for (\d+) x ([\w.-]+)", re.MULTILINE)


@pytest.mark.parametrize("path", sorted(p for p in RECIPES.glob("*.yaml") if "engine: vllm" in p.read_text()),
                         ids=lambda p: p.name)
def test_gpu_recipes_fit_their_stated_hardware(path):
    """Every bundled GPU recipe names the hardware its memory settings were planned for, and
    ``drzero plan`` says it fits there: the recipe's micro-batch, no larger than the largest
    that fits, with room to spare (10%) for what the plan cannot see."""
    from drzero import plan
    from drzero.config import PlanConfig

    found = PLANNED_FOR.search(path.read_text())
    assert found, f"{path.name}: no '# Planned for N x GPU' line"
    gpus, gpu = found.groups()
    cfg = parse_config(PlanConfig, ["--config", str(path), "--gpus", gpus, "--gpu", gpu], prog="plan")
    est = plan.run_plan(cfg)
    assert est.fits, f"{path.name} does not fit {gpus} x {gpu}: {est.why}"
    assert est.micro_per_rank <= est.best_micro
    assert est.peak <= 0.9 * est.device.memory_gib, f"{path.name}: peak {est.peak:.1f} GiB leaves under 10% free"
    assert f"peak {est.peak:.1f} of" in path.read_text(), f"{path.name}: its comment quotes another peak than the plan's"
