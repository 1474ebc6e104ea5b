"""drzero plan: shapes read without downloads, the memory model's parts against what torch
really saves, the fit verdict and the largest micro-batch, the train start-up check, and
one-line errors for bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from drzero import plan
from drzero.cli import main
from drzero.config import PlanConfig, TrainConfig
from drzero.inputs import TOY_CHECKPOINT
from drzero.parsing import parse_config
from drzero.errors import DrZeroError


def _plan_cfg(*argv: str) -> PlanConfig:
    return parse_config(PlanConfig, list(argv), prog="drzero plan")


@pytest.mark.parametrize("name, params", [("Qwen/Qwen2.5-Math-1.5B", 1_543_714_304),
                                          ("Qwen/Qwen2.5-Math-7B", 7_615_616_512)])
def test_builtin_shapes_count_the_models_parameters(name, params):
    """The table's shapes give the released models' parameter counts, and so does a model
    transformers builds from them (on the meta device: nothing allocated)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = plan.shape_from_config(plan.MODEL_SHAPES[name], name, "table")
    assert shape.params == params
    spec = dict(plan.MODEL_SHAPES[name])
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(spec.pop("model_type"), **spec))
    assert sum(p.numel() for p in model.parameters()) == params


def test_shape_comes_from_a_local_config_then_the_table(tmp_path, monkeypatch):
    toy = plan.read_model_shape("toy")
    assert toy.source.endswith("config.json") and toy.vocab == json.loads((TOY_CHECKPOINT / "config.json").read_text())["vocab_size"]
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)  # an empty cache: offline
    assert plan.read_model_shape("Qwen/Qwen2.5-Math-7B").source.startswith("drzero's built-in table")
    with pytest.raises(DrZeroError, match="no config.json in a local folder or the Hugging Face cache"):
        plan.read_model_shape("someone/unknown-model")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DrZeroError, match="cannot read"):
        plan.read_model_shape(str(tmp_path))


@pytest.mark.slow
def test_activation_coefficients_match_what_autograd_saves():
    """``ACT_PER_HIDDEN``: the bytes a decoder layer of Qwen2.5-0.5B's shape saves for backward
    per token (saved-tensor hooks; padded batches, as the trainer's), in float32 and under bf16
    autocast, within 3% of the plan's formula. Fails if transformers starts saving more (or
    the plan's coefficients drift)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    d, i = 896, 4864

    def saved(layers: int, tokens: int, dtype) -> int:
        cfg = Qwen2Config(hidden_size=d, intermediate_size=i, num_hidden_layers=layers, num_attention_heads=14,
                          num_key_value_heads=2, vocab_size=64)
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(cfg)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen: dict[int, int] = {}

        def pack(t):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        ids = torch.randint(0, 64, (2, tokens // 2))
        attention = torch.ones_like(ids)
        attention[0, :3] = 0  # left padding
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            model(input_ids=ids, attention_mask=attention, use_cache=False, logits_to_keep=1)
        return sum(v for k, v in seen.items() if k not in params)

    for dtype, b in ((None, 4), (torch.bfloat16, 2)):
        # two layer counts and two lengths: the per-layer, per-token slope (bf16 weight copies cancel out)
        slope = ((saved(2, 256, dtype) - saved(1, 256, dtype)) - (saved(2, 128, dtype) - saved(1, 128, dtype))) / 128
        predicted = 4 * i * b + plan.ACT_PER_HIDDEN[b] * d
        assert abs(slope / predicted - 1) < 0.03, (b, slope, predicted)


def test_reference_recipes_fit_the_reference_hardware():
    """The issue's checks: 1.5B on 8 x A100-40G fits; 7B on 8 x A100-80G fits with a total time."""
    small = plan.run_plan(_plan_cfg("--config", "qwen2.5-math-1.5b-dr_grpo", "--gpus", "8", "--gpu", "A100-40G"))
    assert small.fits and small.peak < 40
    big = plan.run_plan(_plan_cfg("--config", "qwen2.5-math-7b-dr_grpo", "--gpus", "8", "--gpu", "A100-80G"))
    assert big.fits and big.total_s and big.iterations


def test_largest_micro_batch_is_the_edge_of_fitting():
    cfg = _plan_cfg("--config", "qwen2.5-math-1.5b-dr_grpo", "--gpus", "8", "--gpu", "A100-40G")
    shape, device = plan.read_model_shape(cfg.model), plan.resolve_device("A100-40G")
    est = plan.estimate(cfg, shape, device, 8)
    assert 1 <= est.best_micro < cfg.train_batch_size // 8  # the search has an edge to find
    assert est.best_micro is not None
    assert plan.estimate(cfg, shape, device, 8, micro_per_rank=est.best_micro, search=False).fits
    per_step = cfg.train_batch_size // 8
    bigger = [m for m in range(est.best_micro + 1, per_step + 1) if per_step % m == 0]
    assert all(not plan.estimate(cfg, shape, device, 8, micro_per_rank=m, search=False).fits for m in bigger)


def test_sharding_splits_the_optimizer_state_and_checkpointing_saves_activations():
    cfg = _plan_cfg("--config", "qwen2.5-math-7b-dr_grpo")
    shape, device = plan.read_model_shape(cfg.model), plan.resolve_device("H100-80G")
    parts = lambda c, n: {p.name: p.gib for p in plan.estimate(c, shape, device, n, search=False).parts}
    fsdp8, fsdp4 = parts(cfg, 8), parts(cfg, 4)
    assert fsdp4["AdamW moments m, v (float32)"] == pytest.approx(2 * fsdp8["AdamW moments m, v (float32)"])
    ddp = parts(_plan_cfg("--config", "qwen2.5-math-7b-dr_grpo", "--sharding", "none"), 8)
    assert ddp["weights (float32 masters)"] == pytest.approx(8 * fsdp8["weights (float32 masters)"])
    no_ckpt = parts(_plan_cfg("--config", "qwen2.5-math-7b-dr_grpo", "--no-gradient-checkpointing"), 8)
    assert no_ckpt["activations"] > 5 * fsdp8["activations"]


def test_plan_command_prints_fit_time_and_assumptions(capsys):
    assert main(["plan", "--config", "qwen2.5-math-1.5b-dr_grpo", "--gpus", "8", "--gpu", "A100-40G"]) == 0
    out = capsys.readouterr().out
    assert "fits: peak" in out and "largest micro-batch that fits" in out and "time per policy iteration" in out
    assert "total:" in out and "assumptions:" in out and "MFU" in out
    for part in ("weights (float32 masters)", "AdamW moments", "activations", "LM head chunk", "vLLM (awake)"):
        assert part in out


@pytest.mark.parametrize("argv, message", [
    (["--gpu", "B300-9000G"], "unknown GPU"),
    (["--gpus", "0"], "at least 1 GPU"),
    (["--model", "/no/such/model"], "not a model folder"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(["plan", "--config", "qwen2.5-math-1.5b-dr_grpo", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_unreadable_model_config_is_one_line(tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(TOY_CHECKPOINT, model)
    (model / "config.json").write_text('{"hidden_size": 8}')  # readable JSON, but no decoder shape
    assert main(["plan", "--config", "toy-dr_grpo", "--model", str(model), "--gpu", "cpu", "--gpus", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a decoder shape" in err and "\n" not in err


def test_train_start_up_refuses_what_cannot_fit_a_gpu(monkeypatch, capsys):
    """On GPUs the start-up check refuses, naming the micro-batch that fits; on a CPU it prints
    one line and goes on."""
    cfg = parse_config(TrainConfig, ["--config", "qwen2.5-math-7b-dr_grpo", "--micro-batch-size", "128"], prog="t")
    monkeypatch.setattr(plan, "device_from_cuda", lambda index=0: plan.resolve_device("A100-80G"))
    with pytest.raises(DrZeroError, match=r"does not fit 8 x A100-80G .*micro_batch_size \d+ would fit"):
        plan.check_at_start(cfg, "cuda:0", 8)
    fitting = parse_config(TrainConfig, ["--config", "qwen2.5-math-7b-dr_grpo"], prog="t")
    plan.check_at_start(fitting, "cuda:0", 8)
    assert "plan: peak" in capsys.readouterr().out
    plan.check_at_start(TrainConfig(), "cpu", 1)
    assert "plan: peak about" in capsys.readouterr().out


def test_a_folder_with_only_config_json_is_planned(tmp_path, capsys):
    """plan reads the shape and nothing else: no weights or tokenizer needed (a config.json
    copied from the hub page is enough)."""
    from transformers import Qwen2Config

    from drzero.cli import main

    Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                intermediate_size=128, vocab_size=1000).save_pretrained(tmp_path)
    assert main(["plan", "--model", str(tmp_path), "--gpus", "1", "--gpu", "H100-80G"]) == 0
    assert "fits" in capsys.readouterr().out
