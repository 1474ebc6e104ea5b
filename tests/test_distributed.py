"""Multi-process training on CPU with gloo: 2 processes give the same gradients and the same
parameters after one optimizer step as 1 process on the same global batch, for GRPO and
Dr. GRPO, with data parallel (whole model per rank) and with FSDP2 sharding; the trainer
state is saved one shard per rank and a resumed FSDP run equals the uninterrupted one.

The step is plain SGD: one Adam step (or a clipped one) is nearly sign(g) and would hide a
gradient that is off by a constant factor, e.g. averaged instead of summed over ranks."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as td
import torch.multiprocessing as mp
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from drzero import dist
from drzero.algo import group_advantages, resolve_objective
from drzero.models import load_model_and_tokenizer
from drzero.grader import Grader
from drzero.rollout import SamplingParams, generate_and_grade
from drzero.rollout.hf import HFEngine
from drzero.templates import TEMPLATES
from drzero.data import load_toy_split as load_split
from drzero.train import accumulate_gradients
from resume_equal import assert_same_metrics, assert_same_weights

G = 4


def _one_step(model, batch, indices, preset, pad_id):
    """What the training loop does for one optimizer step on this rank's responses.
    Returns the global gradient norm and the whole parameters after the step."""
    obj = resolve_objective(preset, max_new_tokens=24)
    batch.rewards = torch.tensor([float(i % 3 == 0) for i in range(len(batch))])
    batch.advantages = group_advantages(batch.rewards, G, scale=obj.advantage_scale,
                                        baseline=obj.baseline)  # groups stay on one rank
    batch.keep = torch.ones(len(batch), dtype=torch.bool)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    accumulate_gradients(model, batch.select(indices), obj, micro_batch_size=2, temperature=1.0, pad_id=pad_id,
                         device="cpu", dtype=torch.float64)
    dist.sum_gradients(model)
    norm = dist.grad_norm(model, 0.0)  # no clipping: the step is lr * gradient
    opt.step()
    return norm, {k: v.clone() for k, v in dist.full_state_dict(model).items()}


def _worker(rank, world, store_path, batch_path, out_path, preset, sharding):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    td.init_process_group("gloo", store=td.FileStore(store_path, world), rank=rank, world_size=world)
    model, tok = load_model_and_tokenizer("toy")
    model.to(torch.float64)
    if sharding == "fsdp":
        dist.shard(model)
    batch = pickle.loads(open(batch_path, "rb").read())
    n_prompts = len(batch) // G
    my_prompts = list(range(n_prompts))[rank::world]  # the loop's sharding: whole groups per rank
    indices = [p * G + j for p in my_prompts for j in range(G)]
    result = _one_step(model, batch, indices, preset, tok.pad_token_id)
    if rank == 0:
        torch.save(result, out_path)
    td.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["none", "fsdp"])
@pytest.mark.parametrize("preset", ["grpo", "dr_grpo"])
def test_two_processes_match_one(tmp_path, preset, sharding):
    model, tok = load_model_and_tokenizer("toy")
    tpl = TEMPLATES["qwen_math"]
    rows = load_split("train")[:4]
    batch = generate_and_grade(HFEngine(model, tok), rows, tpl, SamplingParams(n=G, temperature=1.0, max_new_tokens=24, seed=5),
                              Grader(workers=1))
    batch_path = tmp_path / "batch.pkl"
    batch_path.write_bytes(pickle.dumps(batch))
    model.to(torch.float64)
    norm1, single = _one_step(model, batch, list(range(len(batch))), preset, tok.pad_token_id)
    assert norm1 > 1e-3  # a real gradient, not an empty step
    out = tmp_path / "rank0.pt"
    mp.start_processes(_worker, args=(2, str(tmp_path / "store"), str(batch_path), str(out), preset, sharding), nprocs=2,
                       join=True, start_method="spawn")
    norm2, double = torch.load(out)
    assert abs(norm2 - norm1) <= 1e-6 * norm1, (norm1, norm2)  # summed over ranks, not averaged
    assert set(single) == set(double)
    for k in single:
        assert torch.allclose(single[k], double[k], atol=1e-5, rtol=0), k


def _torchrun(out_dir, *flags):
    """`drzero train` in 2 gloo processes: 2 policy iterations with rewards in both (seed 2)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "drzero.cli", "train", "--output-dir", str(out_dir), "--template", "qwen_math", "--prompts-per-step", "8",
           "--group-size", "4", "--max-new-tokens", "64", "--micro-batch-size", "8", "--eval-limit", "8",
           "--eval-every", "0", "--save-every", "1", "--lr", "1e-4", "--seed", "2", "--no-progress", *flags]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def _weights(run_dir, step):
    return load_file(str(Path(run_dir) / "checkpoints" / f"step-{step:06d}" / "model.safetensors"))


@pytest.mark.slow
def test_fsdp_training_run_matches_data_parallel_and_resumes(tmp_path):
    """The whole loop under FSDP2 (sharded update, gathered weights synced into the
    generation replica, rank-0 eval, gathered checkpoints) equals the data-parallel loop
    with the same rank split; an FSDP run stopped after step 1 and resumed (with gradient
    checkpointing) equals it too."""
    dp = _torchrun(tmp_path / "dp", "--sharding", "none", "--max-steps", "2")
    fs = _torchrun(tmp_path / "fsdp", "--sharding", "fsdp", "--max-steps", "2")
    for a, b in zip(dp[1:], fs[1:]):
        assert a["rollout/reward_mean"] == b["rollout/reward_mean"] > 0  # same rollouts, with a learning signal
        assert abs(a["train/grad_norm"] - b["train/grad_norm"]) <= 1e-5 * a["train/grad_norm"]
    assert dp[-1]["eval/toy:test/accuracy"] == fs[-1]["eval/toy:test/accuracy"]  # rank 0 evaluates the synced replica
    w_dp, w_fs = _weights(tmp_path / "dp", 2), _weights(tmp_path / "fsdp", 2)
    assert set(w_dp) == set(w_fs)
    for k in w_dp:
        assert torch.allclose(w_dp[k], w_fs[k], atol=1e-5, rtol=0), k
    assert (w_fs["model.embed_tokens.weight"] != _weights(tmp_path / "fsdp", 1)["model.embed_tokens.weight"]).any()

    # the trainer state is sharded: one torch.distributed.checkpoint file per rank, each about half
    # of the whole (FSDP: each rank's shard; data parallel: the replicas' tensors split between ranks)
    for run in ("fsdp", "dp"):
        trainer = tmp_path / run / "checkpoints" / "step-000002" / "trainer"
        sizes = [(trainer / f"__{r}_0.distcp").stat().st_size for r in range(2)]
        assert all(0.4 < size / sum(sizes) < 0.6 for size in sizes), (run, sizes)
        assert sum(sizes) > 3 * 4 * 1_700_000  # float32 masters + two AdamW moments of the 1.7M parameters

    # stopped after step 1 and resumed from the sharded state: the same run (the stopped-and-resumed
    # run also recomputes activations: gradient checkpointing changes nothing)
    _torchrun(tmp_path / "resumed", "--sharding", "fsdp", "--max-steps", "1", "--gradient-checkpointing")
    resumed = _torchrun(tmp_path / "resumed", "--sharding", "fsdp", "--max-steps", "2", "--gradient-checkpointing",
                        "--resume", str(tmp_path / "resumed"))
    assert [m["step"] for m in resumed] == [m["step"] for m in fs] == [0, 1, 2]
    # (the stopped run also evaluated at step 1, its last)
    assert_same_metrics([{k: v for k, v in a.items() if not k.startswith("time/")} for a in fs],
                        [{k: b[k] for k in a if not k.startswith("time/")} for a, b in zip(fs, resumed)])
    w_re = _weights(tmp_path / "resumed", 2)
    assert_same_weights({k: w_fs[k] for k in w_fs}, {k: w_re[k] for k in w_fs})
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "fsdp" / "checkpoints" / "step-000002")  # HF format
    assert torch.equal(model.lm_head.weight, w_fs["model.embed_tokens.weight"])  # tied weights stay tied
