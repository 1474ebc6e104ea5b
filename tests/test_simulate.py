"""drzero.simulate: the exact response-shape model reproduces GRPO's length bias and only it.

GRPO lengthens wrong responses and shortens right ones beyond the spread over seeds;
Dr. GRPO moves neither; with the loop choice blind to the slip (the control) neither
objective moves them. Plus: the sampler agrees with the exact enumeration, and the
command writes summary.json in the documented format.
"""

import json
from dataclasses import replace

import pytest
import torch

from drzero.cli import main
from drzero.errors import DrZeroError
from drzero.simulate import (
    ShapePolicy,
    SimulateConfig,
    exact_stats,
    question_slip_logits,
    run_simulate,
    sample_shapes,
    token_logprobs,
    world_of,
)

# Shorter and faster than the default run (lr x iterations sets the effect size; see docs/simulate.md)
FAST = SimulateConfig(objectives="grpo,dr_grpo", seeds=3, iterations=120, lr=0.01, curve_every=1000, control=False)


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    threads = torch.get_num_threads()
    out = {"visible": run_simulate(FAST)["summary"], "control": run_simulate(replace(FAST, slip_visibility=0.0))["summary"]}
    torch.set_num_threads(threads)
    return out


def _moved(entry):
    return entry["end"] - entry["start"]


@pytest.mark.slow
def test_grpo_lengthens_wrong_and_shortens_right_beyond_the_seed_spread(runs):
    wrong, right = runs["visible"]["grpo"]["incorrect_length"], runs["visible"]["grpo"]["correct_length"]
    assert _moved(wrong) > max(3 * wrong["end_std"], 0.2 * wrong["start"]), wrong
    assert -_moved(right) > max(3 * right["end_std"], 0.15 * right["start"]), right


@pytest.mark.slow
def test_dr_grpo_moves_neither(runs):
    for key in ("incorrect_length", "correct_length"):
        entry = runs["visible"]["dr_grpo"][key]
        assert abs(_moved(entry)) < 0.1 * entry["start"], (key, entry)
    # and the gap between the objectives is the bias, far outside both spreads
    g, d = runs["visible"]["grpo"]["incorrect_length"], runs["visible"]["dr_grpo"]["incorrect_length"]
    assert g["end"] - d["end"] > 3 * (g["end_std"] + d["end_std"])


def test_control_blind_loop_choice_moves_under_neither(runs):
    """Advantages sum to zero in each group: a length choice that cannot see the slip gets
    no expected push from 1/|o_i|, so GRPO behaves like Dr. GRPO."""
    for name in ("grpo", "dr_grpo"):
        for key in ("incorrect_length", "correct_length"):
            entry = runs["control"][name][key]
            assert abs(_moved(entry)) < 0.1 * entry["start"], (name, key, entry)


def test_sampler_agrees_with_exact_enumeration():
    cfg = SimulateConfig(questions=4, slip_visibility=0.6, fix_prob=0.3, repeat_init=0.05)
    world, slip_logits = world_of(cfg), question_slip_logits(cfg)
    policy = ShapePolicy(cfg.loop_init, cfg.repeat_init)
    with torch.no_grad():  # rows differ, paths uneven, so every branch of the enumeration matters
        policy.loop_logits[1] += torch.tensor([0.8, 0.5])
        policy.path_logits[1] += 0.4
    exact = exact_stats(policy, slip_logits, world)
    shapes = sample_shapes(policy, slip_logits, 20000, world, torch.Generator().manual_seed(0))  # N = 80,000
    right, length = shapes.reward > 0, shapes.length.float()
    assert right.float().mean().item() == pytest.approx(exact["accuracy"], abs=0.006)
    assert length[~right].mean().item() == pytest.approx(exact["incorrect_length"], rel=0.01)
    assert length[right].mean().item() == pytest.approx(exact["correct_length"], rel=0.01)
    assert shapes.repeated.float().mean().item() == pytest.approx(exact["repeat_rate"], abs=0.004)
    assert shapes.loops[~right].float().mean().item() == pytest.approx(exact["loops_incorrect"], rel=0.02)
    # the tokens the loss sees: the mask covers exactly each response's length; forced tokens carry no log-prob
    logprobs, mask = token_logprobs(policy, shapes, slip_logits, 20000, world)
    assert torch.equal(mask.sum(1), length)
    n_decisions = 2 + (shapes.actions >= 0).sum(1)
    assert torch.equal((logprobs != 0).sum(1) <= n_decisions, torch.ones_like(right))
    assert (logprobs <= 0).all()


def test_command_writes_summary_curves_and_plots(tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", "--output", str(out), "--iterations", "3", "--seeds", "2", "--questions", "4",
                 "--no-control"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["grpo", "dr_grpo", "dapo"]
    for entry in summary.values():
        assert set(entry) == {"incorrect_length", "correct_length"}
        for stats in entry.values():
            assert set(stats) == {"start", "end", "end_std"} and all(v == v for v in stats.values())
    curves = json.loads((out / "curves.json").read_text())
    assert len(curves["curves"]["grpo"]["incorrect_length"]) == 2  # seeds
    assert len(curves["curves"]["grpo"]["incorrect_length"][0]) == 4  # iterations + 1
    for png in ("lengths.png", "question_weights.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert not (out / "control").exists()


def test_bad_config_is_rejected_before_running():
    with pytest.raises(DrZeroError, match="objectives"):
        run_simulate(replace(FAST, objectives="grpo,ppo"))
    with pytest.raises(DrZeroError, match="slip_visibility"):
        run_simulate(replace(FAST, slip_visibility=1.5))


def _monitor_warnings(objective: str, seed: int) -> list[str]:
    """Feed one simulated run's per-iteration sampled lengths (split by reward, as the trainer
    logs them) through the trainer's BiasMonitor; its warnings."""
    from drzero.analysis import BiasMonitor
    from drzero.simulate import run_seed

    curves = run_seed(replace(FAST, seeds=1), objective, seed)
    monitor = BiasMonitor()
    out = [monitor.update(step, right, wrong) for step, (right, wrong) in
           enumerate(zip(curves["sampled_correct_length"], curves["sampled_incorrect_length"]), start=1)]
    return [w for w in out if w]


@pytest.mark.parametrize("seed", [0, 1])
def test_bias_monitor_fires_on_simulated_grpo_and_stays_silent_on_dr_grpo(seed):
    """The trainer's bias monitor, on sampled metrics of training runs it did not script (the
    simulator's, trained with drzero.algo's objectives): it warns during GRPO, where wrong
    responses lengthen, and never during Dr. GRPO, at the same settings and seed."""
    torch.set_num_threads(1)
    grpo, dr_grpo = _monitor_warnings("grpo", seed), _monitor_warnings("dr_grpo", seed)
    assert grpo and "length bias" in grpo[0]
    assert dr_grpo == []


# ----------------------------------------------------------------------------- the bias table (issue 32)
TABLE = replace(FAST, seeds=2, iterations=30)


@pytest.fixture(scope="module")
def table():
    from drzero.simulate import bias_table

    torch.set_num_threads(1)
    return bias_table(TABLE)


@pytest.mark.slow
def test_bias_table_has_a_row_per_preset_and_grpo_dr_grpo_equal_the_summary(table):
    """--algo all trains the same runs as drzero simulate: its GRPO and Dr. GRPO rows are the
    summary's numbers exactly (the exact statistics draw no random numbers)."""
    from drzero.algo import PRESETS

    assert list(table["rows"]) == list(PRESETS)
    summary = run_simulate(TABLE)["summary"]
    for name in ("grpo", "dr_grpo"):
        for key in ("incorrect_length", "correct_length"):
            assert table["rows"][name][key] == summary[name][key]


def test_bias_table_decomposition(table):
    """Dr. GRPO: no factor varies; GRPO: length and std; DAPO and CISPO: std only; on-policy
    GSPO is GRPO (its ratio is 1 and its gradient carries 1/|o_i|); the micro-batch padded width
    (micro-batches cut by length, as the trainer does) brings a length factor back."""
    rows = table["rows"]
    parts = {name: row["weight_parts"] for name, row in rows.items()}
    for name in ("dr_grpo", "rloo", "dr_grpo_token_mean"):
        assert sum(parts[name].values()) < 1e-9  # float32 rounding of a constant
    assert parts["grpo"]["length"] > 0 and parts["grpo"]["std"] > 0
    for name in ("dapo", "cispo", "dr_grpo_with_std"):
        assert parts[name]["length"] < 1e-9 < parts[name]["std"]
    assert all(p["ratio"] == 0 for p in parts.values())  # on-policy: the simulator cannot represent the ratio
    assert parts["dr_grpo_padded_width"]["length"] > 0 and parts["dr_grpo_padded_width"]["std"] == 0
    assert rows["gspo"]["incorrect_length"]["end"] == pytest.approx(rows["grpo"]["incorrect_length"]["end"], rel=1e-4)
    assert rows["grpo"]["question_weight_spread"] > 1 and rows["dr_grpo"]["question_weight_spread"] == 1


def test_step_loss_cuts_only_the_microbatch_aggregations():
    from drzero.algo import resolve_objective
    from drzero.simulate import step_loss

    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(8, 10, generator=g, dtype=torch.float64)
    lengths = torch.tensor([1, 3, 10, 2, 7, 7, 4, 9])
    mask = (torch.arange(10)[None, :] < lengths[:, None]).double()
    adv = torch.randn(8, generator=g, dtype=torch.float64)
    for name in ("grpo", "dr_grpo", "dapo"):
        obj = resolve_objective(name, max_new_tokens=10)
        assert step_loss(obj, logp, adv, mask, 3).item() == pytest.approx(policy_loss_of(obj, logp, adv, mask), abs=1e-12)
    obj = resolve_objective("dr_grpo_padded_width")
    order = torch.argsort(lengths, stable=True)
    expected = sum((logp[idx] * 0 - adv[idx][:, None] * mask[idx]).sum().item() / lengths[idx].max().item() * len(idx) / 8
                   for idx in order.split(3))
    assert step_loss(obj, logp, adv, mask, 3).item() == pytest.approx(expected, abs=1e-12)


def policy_loss_of(obj, logp, adv, mask):
    from drzero.algo import policy_loss

    return policy_loss(obj, logp, logp.detach(), adv, mask)[0].item()


def test_algo_all_command_prints_a_row_per_preset(tmp_path, capsys):
    from drzero.algo import PRESETS

    out = tmp_path / "table"
    assert main(["simulate", "--algo", "all", "--iterations", "3", "--seeds", "1", "--questions", "4",
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in PRESETS:
        assert f"  {name} " in printed
    assert set(json.loads((out / "table.json").read_text())["rows"]) == set(PRESETS)
    assert main(["simulate", "--algo", "bogus"]) == 2
