"""Data parallel on CPU with gloo: 2 processes give the same parameters after one optimizer
step as 1 process on the same global batch (GRPO and Dr. GRPO)."""

import os
import pickle

import pytest
import torch
import torch.distributed as td
import torch.multiprocessing as mp

from drzero import dist
from drzero.algo import group_advantages, resolve_objective
from drzero.models import load_model_and_tokenizer
from drzero.rollout import SamplingParams
from drzero.rollout.hf import HFEngine
from drzero.templates import TEMPLATES
from drzero.toy import load_split
from drzero.train import accumulate_gradients

G = 4


def _one_step(model, gens, indices, preset, pad_id):
    """What the training loop does for one optimizer step on this rank's responses."""
    obj = resolve_objective(preset, max_new_tokens=24)
    rewards = torch.tensor([float(i % 3 == 0) for i in range(len(gens))])
    adv = group_advantages(rewards, G, scale=obj.advantage_scale, baseline=obj.baseline)  # groups stay on one rank
    keep = torch.ones(len(gens), dtype=torch.bool)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    accumulate_gradients(model, None, gens, indices, adv, keep, obj, micro_batch_size=2, temperature=1.0,
                         pad_id=pad_id, device="cpu", dtype=torch.float64)
    dist.sum_gradients(model)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _worker(rank, world, store_path, gens_path, out_path, preset):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    td.init_process_group("gloo", store=td.FileStore(store_path, world), rank=rank, world_size=world)
    model, tok = load_model_and_tokenizer("toy")
    model.to(torch.float64)
    gens = pickle.loads(open(gens_path, "rb").read())
    n_prompts = len(gens) // G
    my_prompts = list(range(n_prompts))[rank::world]  # the loop's sharding: whole groups per rank
    indices = [p * G + j for p in my_prompts for j in range(G)]
    params = _one_step(model, gens, indices, preset, tok.pad_token_id)
    if rank == 0:
        torch.save(params, out_path)
    td.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["grpo", "dr_grpo"])
def test_two_processes_match_one(tmp_path, preset):
    model, tok = load_model_and_tokenizer("toy")
    tpl = TEMPLATES["qwen_math"]
    rows = load_split("train")[:4]
    gens = HFEngine(model, tok).generate([tpl.render(r["problem"]) for r in rows],
                                         SamplingParams(n=G, temperature=1.0, max_new_tokens=24, seed=5))
    gens_path = tmp_path / "gens.pkl"
    gens_path.write_bytes(pickle.dumps(gens))
    model.to(torch.float64)
    single = _one_step(model, gens, list(range(len(gens))), preset, tok.pad_token_id)
    out = tmp_path / "rank0.pt"
    mp.start_processes(_worker, args=(2, str(tmp_path / "store"), str(gens_path), str(out), preset), nprocs=2,
                       join=True, start_method="spawn")
    double = torch.load(out)
    for k in single:
        assert torch.allclose(single[k], double[k], atol=1e-5, rtol=0), k
