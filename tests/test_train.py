"""Training loop: a 2-step smoke run, micro-batch gradient invariance, resume, bad input."""

import json
import math

import pytest
import torch

from drzero.algo import (MICROBATCH_AGGREGATIONS, PRESETS, describe_objective, group_advantages, informative_groups,
                         resolve_objective)
from drzero.config import TrainConfig
from drzero.parsing import check_train_config
from drzero.errors import DrZeroError
from drzero.models import load_model_and_tokenizer
from drzero.grader import Grader
from drzero.rollout import SamplingParams, generate_and_grade
from drzero.rollout.hf import HFEngine
from drzero.templates import TEMPLATES
from drzero.data import load_toy_split as load_split
from drzero.train import accumulate_gradients, step_prompts, train

TINY = dict(template="qwen_math", max_steps=2, prompts_per_step=2, group_size=4, micro_batch_size=4, max_new_tokens=80,
            eval_every=0, eval_limit=8, log_samples=2, progress=False, grader_workers=1)


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_two_step_smoke_changes_parameters_and_logs_finite_metrics(tmp_path):
    before = _params(load_model_and_tokenizer("toy")[0])
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), lr=1e-3, **TINY)
    train(cfg)
    run = tmp_path / "run"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if "rollout/reward_mean" in m]
    assert [m["step"] for m in steps] == [1, 2]
    for m in steps:
        for k, v in m.items():
            if k.startswith(("train/", "rollout/reward", "rollout/truncation", "time/")):
                assert math.isfinite(v), (k, v)
    for key in ("rollout/response_length_correct", "rollout/response_length_incorrect", "rollout/length_gap_within_group",
                "rollout/zero_variance_group_frac",
                "train/clip_frac_low", "train/clip_frac_high", "train/entropy", "train/grad_norm", "train/lr",
                "time/generate", "time/tokens_per_s"):
        assert key in steps[-1]
    assert any(k.startswith("eval/toy:test/accuracy") for k in lines[-1])  # final evaluation
    ckpt = run / "checkpoints" / (run / "checkpoints" / "latest").read_text()
    after = _params(load_model_and_tokenizer(str(ckpt))[0])
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed"
    assert (run / "config.yaml").exists() and (run / "samples.jsonl").read_text().strip()


def _micro_batch_grads(preset, micros=(1, 4, 8), rewards=(1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0), **overrides):
    model, tok = load_model_and_tokenizer("toy")
    model.to(torch.float64)
    tpl = TEMPLATES["qwen_math"]
    rows = load_split("train")[:2]
    batch = generate_and_grade(HFEngine(model, tok), rows, tpl, SamplingParams(n=4, temperature=1.0, max_new_tokens=20, seed=3),
                               Grader(workers=1))
    batch.rewards = torch.tensor(rewards)
    obj = resolve_objective(preset, max_new_tokens=20, **overrides)
    batch.advantages = group_advantages(batch.rewards, 4, scale=obj.advantage_scale, baseline=obj.baseline)
    batch.keep = informative_groups(batch.rewards, 4) if obj.filter_zero_variance else torch.ones(8, dtype=torch.bool)
    grads = []
    for micro in micros:
        model.zero_grad(set_to_none=True)
        accumulate_gradients(model, batch, obj, micro_batch_size=micro, temperature=1.0, pad_id=tok.pad_token_id,
                             device="cpu", dtype=torch.float64)
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]))
    return grads


@pytest.mark.parametrize("preset", [p for p in PRESETS if PRESETS[p].aggregation not in MICROBATCH_AGGREGATIONS])
def test_gradient_same_for_micro_batch_1_and_4(preset):
    grads = _micro_batch_grads(preset)
    assert grads[0].abs().sum() > 0
    # Micro-batches of 4 and 8 run each prompt once for its responses (models.PromptPrefill),
    # micro-batches of 1 run it per response: the same sums in another order, and the model's
    # RMSNorm computes in float32 even with float64 weights, so they agree to float32 rounding
    # (~1e-8 of the largest entry). A normaliser that depended on micro-batching would be off by O(1).
    scale = grads[0].abs().max()
    assert (grads[0] - grads[1]).abs().max() <= 1e-6 * scale
    assert (grads[0] - grads[2]).abs().max() <= 1e-6 * scale


@pytest.mark.parametrize("preset", [p for p in PRESETS if PRESETS[p].aggregation in MICROBATCH_AGGREGATIONS])
def test_framework_micro_batch_normalisers_do_change_the_gradient(preset):
    """The presets that reproduce verl's / TRL's micro-batch normalisers: in the trainer the
    gradient changes with the micro-batch size (describe_objective says so)."""
    grads = _micro_batch_grads(preset, micros=(1, 8))
    scale = grads[0].abs().max()
    assert (grads[0] - grads[1]).abs().max() > 1e-3 * scale
    assert "DEPENDS" in describe_objective(preset, resolve_objective(preset))


@pytest.mark.parametrize("preset", ["dr_grpo", "grpo"])
def test_zero_variance_filter_counts_only_the_remaining_responses(preset):
    """One of the two groups is all wrong: its advantages are zero either way, so filtering it
    only changes N_step from 8 to 4 (the normaliser counts the remaining responses): the
    gradient doubles (beta 0)."""
    rewards = (1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    plain = _micro_batch_grads(preset, micros=(4,), rewards=rewards)[0]
    filtered = _micro_batch_grads(preset, micros=(4,), rewards=rewards, filter_zero_variance=True)[0]
    assert plain.abs().sum() > 0
    assert torch.allclose(filtered, 2 * plain, rtol=1e-6, atol=1e-6 * plain.abs().max().item())


def test_zero_variance_filter_and_k1_in_the_reward_run(tmp_path):
    """--filter-zero-variance and --kl-estimator k1_reward (beta > 0): one iteration trains,
    and the objective line says how the filtered groups are counted."""
    cfg = TrainConfig(output_dir=str(tmp_path / "run"), lr=1e-3, beta=0.05, kl_estimator="k1_reward",
                      filter_zero_variance=True, **{**TINY, "max_steps": 1})
    train(cfg)
    m = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][1]
    assert math.isfinite(m["train/loss"]) and m["train/kl"] == 0.0  # k1 is in the reward, not the loss
    line = describe_objective(cfg.algo, resolve_objective(cfg.algo, max_new_tokens=80, beta=0.05,
                                                          kl_estimator="k1_reward", filter_zero_variance=True))
    assert "count the remaining" in line and "log(pi_old/pi_ref)" in line


def test_data_order_is_a_permutation_per_epoch():
    seen = [i for s in range(5) for i in step_prompts(10, 2, seed=1, step=s)]
    assert sorted(seen) == list(range(10))
    assert step_prompts(10, 4, 1, 3) == step_prompts(10, 4, 1, 3)


@pytest.mark.parametrize("overrides,match", [
    (dict(train_batch_size=100), "exceeds"),
    (dict(train_batch_size=24), "divide"),
    (dict(micro_batch_size=5), "micro_batch_size"),
    (dict(group_size=1), "group_size"),
])
def test_impossible_batch_sizes_are_explained(overrides, match):
    cfg = TrainConfig(prompts_per_step=4, group_size=8, micro_batch_size=4)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    with pytest.raises(DrZeroError, match=match):
        check_train_config(cfg)


def test_bad_inputs_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "1+1?", "solution_text": "2"}) + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"problem": "1+1?", "answer": ""}) + "\n")
    cases = [
        (dict(model=str(tmp_path / "nope")), "does not exist"),
        (dict(dataset=str(bad)), "no answer column"),
        (dict(dataset=str(empty)), "empty answer"),
        (dict(template="chatml"), "unknown template"),
    ]
    for overrides, match in cases:
        cfg = TrainConfig(output_dir=str(tmp_path / "r"), **{**TINY, **overrides})
        with pytest.raises(DrZeroError, match=match) as e:
            train(cfg)
        assert "\n" not in str(e.value)


@pytest.mark.slow
def test_lora_run_writes_adapter_and_merged_checkpoint(tmp_path):
    pytest.importorskip("peft")
    cfg = TrainConfig(output_dir=str(tmp_path / "lora"), lora_rank=4, lr=1e-2, **{**TINY, "max_steps": 1})
    train(cfg)
    ckpt = tmp_path / "lora" / "checkpoints" / "step-000001"
    assert (ckpt / "adapter" / "adapter_config.json").exists()
    model, _ = load_model_and_tokenizer(str(ckpt))  # merged weights load as a plain HF model
    assert not hasattr(model, "peft_config")


@pytest.mark.slow
def test_truncated_importance_sampling_option(tmp_path):
    """--tis-cap: the HF engine samples from the learner itself, so the weights are ~1 and
    none is truncated; the run logs them next to the log-prob gap."""
    train(TrainConfig(output_dir=str(tmp_path / "run"), lr=1e-3, tis_cap=2.0, **{**TINY, "max_steps": 1}))
    m = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][1]
    assert m["rollout/logprob_gap"] < 1e-4
    assert m["train/tis_weight_mean"] == pytest.approx(1.0, abs=1e-4) and m["train/tis_clip_frac"] == 0.0
    with pytest.raises(DrZeroError, match="tis_cap"):
        check_train_config(TrainConfig(tis_cap=-1.0))


def test_rollout_metrics_split_lengths_by_reward_and_measure_the_gap_within_groups():
    """A truncated response the grader accepts has reward 0: it counts as unrewarded.
    Group 1: rewarded 10, unrewarded 30 and 50 (gap 40 - 10 = 30); group 2: rewarded 20,
    unrewarded a truncated 'correct' 60 and 20 (gap 40 - 20 = 20). Mean gap 25."""
    from drzero.grader import Grade
    from drzero.rollout import Generation, Rollouts
    from drzero.train import rollout_metrics

    spec = [(10, True, "stop"), (30, False, "stop"), (50, False, "stop"),
            (20, True, "stop"), (60, True, "length"), (20, False, "stop")]
    gens = [Generation(i // 3, [1], [5] * n, "x", finish) for i, (n, _, finish) in enumerate(spec)]
    grades = [Grade(ok, True, "1") for _, ok, _ in spec]
    rewards = torch.tensor([float(ok and finish == "stop") for _, ok, finish in spec])
    batch = Rollouts([{"problem": "q", "answer": "1"}] * 6, gens, grades, rewards, group_size=3)
    obj = resolve_objective("grpo")
    batch.advantages = group_advantages(rewards, 3, scale=obj.advantage_scale)
    m, record = rollout_metrics(batch, obj)
    assert m["rollout/response_length_correct"] == 15.0  # 10 and 20, not the truncated 60
    assert m["rollout/response_length_incorrect"] == 40.0  # 30, 50, 60, 20
    assert m["rollout/length_gap_within_group"] == 25.0
    assert m["rollout/accuracy"] == 0.5 and m["rollout/reward_mean"] == pytest.approx(1 / 3)
    assert record["reward"] == rewards.tolist() and record["correct"] == [ok for _, ok, _ in spec]


def test_question_scale_logged_is_the_one_the_advantages_carry():
    """weights.jsonl's question_scale is algo.question_weights: 1/std_batch under scale=batch
    (the same for every question), 1/std_group under GRPO."""
    from drzero.algo import question_weights
    from drzero.grader import Grade
    from drzero.rollout import Generation, Rollouts
    from drzero.train import rollout_metrics

    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    gens = [Generation(i // 4, [1], [5] * (3 + i), "x", "stop") for i in range(8)]
    batch = Rollouts([{"problem": "q", "answer": "1"}] * 8, gens, [Grade(bool(r), True, "1") for r in rewards], rewards,
                     group_size=4)
    for scale, expected in (("batch", [1 / (rewards.std().item() + 1e-6)] * 2),
                            ("group", [1 / (rewards[:4].std().item() + 1e-6), 1 / (rewards[4:].std().item() + 1e-6)])):
        obj = resolve_objective("grpo", advantage_scale=scale)
        batch.advantages = group_advantages(rewards, 4, scale=scale)
        _, record = rollout_metrics(batch, obj)
        assert record["question_scale"] == pytest.approx(expected)
        assert record["question_scale"] == pytest.approx(question_weights(rewards, 4, scale=scale).tolist())


def test_default_micro_batch_fits_small_runs():
    """The micro-batch defaults to min(32, responses per optimizer step), so a 4 x 4 run
    needs no --micro-batch-size; an explicit one that does not divide is still refused."""
    from drzero.config import resolved_micro_batch_size

    small = TrainConfig(prompts_per_step=4, group_size=4)
    check_train_config(small)
    assert resolved_micro_batch_size(small) == 16 and resolved_micro_batch_size(TrainConfig()) == 32
    with pytest.raises(DrZeroError, match="must divide"):
        check_train_config(TrainConfig(prompts_per_step=4, group_size=4, micro_batch_size=6))
