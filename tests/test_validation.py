"""The one validation path (``drzero.parsing.validate``): ranges, flags vs YAML keys, output
folders, model folders, question-set names, URLs. Unit level; the CLI's behaviour (exit
code 2, one line, nothing written) is in test_faults.py."""

import dataclasses
import json
import shutil
import typing

import pytest

from drzero.config import RANGES, EvalConfig, ProbeConfig, ReportConfig, TrainConfig
from drzero.inputs import check_model, check_output_path, check_url
from drzero.parsing import apply_overrides, check_config, flag_error, parse_config, validate
from drzero.data import BUNDLED, check_source, load_questions
from drzero.errors import DrZeroError
from drzero.models import TOY_CHECKPOINT

COMMANDS = (TrainConfig, EvalConfig, ProbeConfig)


def _numeric_fields(cls):
    hints = typing.get_type_hints(cls)
    return [name for name, hint in hints.items() if {int, float} & {hint, *typing.get_args(hint)}]


@pytest.mark.parametrize("cls", COMMANDS, ids=lambda c: c.__name__)
def test_every_numeric_field_has_a_range_and_its_default_is_in_it(cls):
    """A new numeric field without a rule would accept anything: the table must grow with it."""
    missing = [name for name in _numeric_fields(cls) if name not in RANGES]
    assert not missing, f"no range in config.RANGES for {missing}"
    check_config(cls())  # the defaults are valid


@pytest.mark.parametrize("cls,field,bad", [
    (EvalConfig, "limit", 0), (EvalConfig, "limit", -3), (EvalConfig, "max_new_tokens", 0),
    (EvalConfig, "temperature", -1.0), (EvalConfig, "batch_size", 0), (EvalConfig, "grader_timeout_s", 0.0),
    (EvalConfig, "n", 0), (EvalConfig, "top_p", 0.0), (EvalConfig, "top_p", 1.5), (EvalConfig, "concurrency", 0),
    (EvalConfig, "retries", -1), (EvalConfig, "temperature", float("nan")), (EvalConfig, "seed", -1),
    (ProbeConfig, "n", 0), (ProbeConfig, "n_questions", 0), (ProbeConfig, "sample_questions", 0),
    (ProbeConfig, "max_new_tokens", 0), (ProbeConfig, "batch_size", 0), (ProbeConfig, "grader_timeout_s", -1.0),
    (TrainConfig, "temperature", 0.0), (TrainConfig, "temperature", -1.0), (TrainConfig, "lr", 0.0),
    (TrainConfig, "lr", float("inf")), (TrainConfig, "max_steps", 0), (TrainConfig, "group_size", 1),
    (TrainConfig, "grader_timeout_s", 0.0), (TrainConfig, "eval_limit", 0), (TrainConfig, "keep_checkpoints", 0),
    (TrainConfig, "vllm_memory", 1.0), (TrainConfig, "adam_beta2", 1.0), (TrainConfig, "clip_eps_low", 1.0),
])
def test_out_of_range_values_name_the_flag_the_key_and_the_range(cls, field, bad):
    cfg = dataclasses.replace(cls(), **{field: bad})
    with pytest.raises(DrZeroError) as e:
        check_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg and f"--{field.replace('_', '-')}" in msg and f"key {field}" in msg
    assert any(word in msg for word in (">", "in (", "in [", "finite")), msg  # the accepted range


def test_endpoint_urls_are_checked_with_the_settings():
    with pytest.raises(DrZeroError, match="--endpoint 'localhost:8000/v1' is not an http"):
        check_config(EvalConfig(endpoint="localhost:8000/v1"))
    check_config(EvalConfig(endpoint="http://localhost:8000/v1"))


def test_greedy_eval_allows_temperature_zero_but_not_n_identical_samples():
    check_config(EvalConfig(temperature=0.0, n=1))
    with pytest.raises(DrZeroError, match="identical greedy samples"):
        check_config(EvalConfig(temperature=0.0, n=4))
    check_config(EvalConfig(temperature=0.6, n=4))


def test_probe_lists_are_checked():
    for cfg, match in [(ProbeConfig(temperatures="0,1"), "must all be > 0"),
                       (ProbeConfig(temperatures="warm"), "comma-separated numbers"),
                       (ProbeConfig(temperatures=" , "), "empty"),
                       (ProbeConfig(templates="r1,chatml"), "unknown template 'chatml'"),
                       (ProbeConfig(templates="", custom_template=None), "--templates is empty"),
                       (ProbeConfig(custom_template="no field"), "must contain {question}"),
                       (ProbeConfig(judge_endpoint="localhost:9/v1"), "not an http")]:
        with pytest.raises(DrZeroError, match=match):
            check_config(cfg)
    check_config(ProbeConfig(templates="", custom_template="Q: {question}\nA:"))


@pytest.mark.parametrize("key,text,match", [
    ("max_steps", "three", "expected an integer"),
    ("algo", "nosuch", "not one of grpo, dr_grpo, dapo, rloo"),
    ("lr", "abc", "expected a number"),
    ("advantage_scale", "foo", "not one of group, batch, none"),
])
def test_flags_are_refused_with_the_yaml_rules(key, text, match):
    """A flag and a YAML key with the same bad value give the same one-line reason."""
    flag = f"--{key.replace('_', '-')}"
    from_flag = flag_error(TrainConfig, [flag, text], "drzero train")
    with pytest.raises(DrZeroError) as from_yaml:
        apply_overrides(TrainConfig, TrainConfig(), {key: text}, "r.yaml")
    assert match in from_flag and match in str(from_yaml.value)
    assert from_flag.startswith(flag)


def test_flag_errors_for_switches_unknown_and_missing_values():
    assert "is a switch" in flag_error(TrainConfig, ["--mask-truncated", "no"], "drzero train")
    assert "did you mean --limit" in flag_error(EvalConfig, ["--lmit", "3"], "drzero eval")
    assert flag_error(EvalConfig, ["--limit"], "drzero eval") == "--limit needs a value"
    assert flag_error(EvalConfig, ["--limit", "None", "--mask"], "drzero eval").startswith("unknown option --mask")
    assert flag_error(TrainConfig, ["--no-mask-truncated", "--lr", "1e-6", "--eval-limit", "None"], "t") is None
    assert flag_error(ReportConfig, ["run-a", "run-b", "--output", "o"], "drzero report") is None


def test_flags_and_yaml_parse_to_the_same_config(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: 1e-6\nmask_truncated: true\neval_limit: null\ntemperature: 0.7\n")
    out = str(tmp_path / "run")
    from_yaml = parse_config(TrainConfig, ["--config", str(recipe), "--output-dir", out], "t")
    from_flags = parse_config(TrainConfig, ["--lr", "1e-6", "--mask-truncated", "--eval-limit", "None",
                                            "--temperature", "0.7", "--output-dir", out], "t")
    assert from_yaml.lr == 1e-6 and isinstance(from_yaml.lr, float)
    assert dataclasses.replace(from_yaml, config=None) == from_flags
    assert not (tmp_path / "run").exists()


def test_output_path_checks(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    check_output_path(str(tmp_path / "new" / "deeper"))  # can be made
    check_output_path(str(tmp_path))  # exists
    with pytest.raises(DrZeroError, match="is a file, not a folder"):
        check_output_path(str(a_file))
    with pytest.raises(DrZeroError, match="is a file, so no folder can be made under it"):
        check_output_path(str(a_file / "sub" / "dir"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # nothing created


def test_output_path_not_writable(tmp_path, monkeypatch):
    """The decision itself (test_faults runs it for real without the privilege to override)."""
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    with pytest.raises(DrZeroError, match="is not writable"):
        check_output_path(str(locked / "out"), "--output-dir")


def _copy_toy(tmp_path, name="model"):
    dst = tmp_path / name
    shutil.copytree(TOY_CHECKPOINT, dst)
    return dst


def test_model_folder_checks(tmp_path):
    assert check_model("toy") == str(TOY_CHECKPOINT)
    assert check_model("Qwen/Qwen2.5-Math-1.5B") == "Qwen/Qwen2.5-Math-1.5B"  # a hub name: nothing to check offline-free
    with pytest.raises(DrZeroError, match="does not exist"):
        check_model(str(tmp_path / "nope"))
    model = _copy_toy(tmp_path)
    assert check_model(str(model)) == str(model)
    (model / "tokenizer.json").unlink()
    with pytest.raises(DrZeroError, match="no tokenizer files"):
        check_model(str(model))
    model = _copy_toy(tmp_path, "cut")
    weights = model / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size - 1)
    with pytest.raises(DrZeroError, match="model.safetensors is truncated"):
        check_model(str(model))
    weights.write_bytes(b"\xff" * 64)
    with pytest.raises(DrZeroError, match="damaged"):
        check_model(str(model))
    weights.unlink()
    with pytest.raises(DrZeroError, match="no weights"):
        check_model(str(model))


def test_sharded_weights_are_checked(tmp_path):
    model = _copy_toy(tmp_path)
    (model / "model.safetensors").rename(model / "model-00001-of-00001.safetensors")
    (model / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(DrZeroError, match="model-00002-of-00002.safetensors .* is missing"):
        check_model(str(model))


def test_offline_hub_model_must_be_cached(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DrZeroError, match="offline mode"):
        check_model("nobody-here/no-such-model")


def test_question_source_names():
    for ok in ("toy", "toy:test", "aime24", "MATH", "olympiad", "owner/name"):
        check_source(ok)
    for bad, match in [("aime25", "unknown dataset 'aime25'"), ("gsm8k", "bundled: aime24"),
                       ("toy:dev", "unknown toy split"), ("./missing.jsonl", "does not exist"),
                       ("a/b/c", "unknown dataset")]:
        with pytest.raises(DrZeroError, match=match):
            check_source(bad)
    assert "toy:test" in BUNDLED and "math500" in BUNDLED
    with pytest.raises(DrZeroError, match="limit must be >= 1"):
        load_questions("toy:test", limit=0)
    assert len(load_questions("toy:test", limit=3)) == 3


def test_urls_need_a_scheme_and_a_host():
    check_url("http://127.0.0.1:8000/v1", "--endpoint")
    check_url("https://api.example.com/v1", "--endpoint")
    for bad in ("localhost:8000/v1", "127.0.0.1:8000", "ftp://host/v1", "http://", "/v1"):
        with pytest.raises(DrZeroError, match="not an http"):
            check_url(bad, "--endpoint")


def test_validate_checks_inputs_without_writing(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    cases = [
        (EvalConfig(output=str(a_file)), "is a file"),
        (EvalConfig(benchmarks="math500,aime25", output=str(tmp_path / "o")), "aime25"),
        (EvalConfig(model=str(tmp_path / "none"), output=str(tmp_path / "o")), "does not exist"),
        (ProbeConfig(questions="nosuch", output=str(tmp_path / "o")), "unknown dataset"),
        (TrainConfig(output_dir=str(a_file / "run")), "is a file"),
        (TrainConfig(model=str(tmp_path / "none"), output_dir=str(tmp_path / "r")), "does not exist"),
        (TrainConfig(eval_datasets="toy:test,nosuch", output_dir=str(tmp_path / "r")), "nosuch"),
        (ReportConfig(runs=(str(tmp_path),), output=str(tmp_path / "rep")), "not a training run directory"),
    ]
    for cfg, match in cases:
        with pytest.raises(DrZeroError, match=match):
            validate(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    validate(EvalConfig(model="served", endpoint="http://127.0.0.1:9/v1", output=str(tmp_path / "o")))
