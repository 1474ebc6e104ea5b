"""What "a resumed run equals the uninterrupted one" means in the resume tests.

Exactly the same steps, keys, rewards, lengths, counts and texts; floating-point values
(losses, grad norms, entropies, log-prob gaps, weights) equal to 1e-6 relative. Not
bitwise: on CPU, oneDNN/MKL kernels may take another code path for a differently aligned
buffer, and a fresh process allocates differently from one that has already run steps.
Observed after the shared-prompt update landed: 1 run in 4 under load differed at step 3
by 1e-8 relative in train/entropy and train/grad_norm (and rollout/logprob_gap, itself
rounding noise: 1.93e-7 vs 2.01e-7), everything else identical.
A real resume bug (a lost optimizer state, a replayed or skipped step, another seed)
moves these values by far more than 1e-6."""

import math

import torch

REL = 1e-6
# metrics that are themselves rounding noise (the engine's and the learner's log-probs of the
# same tokens differ by ~1e-7): compared to an absolute tolerance
NOISE = {"rollout/logprob_gap": 1e-6}


def assert_same_metrics(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        assert x.keys() == y.keys(), (x.get("step"), set(x) ^ set(y))
        for k in x:
            u, v = x[k], y[k]
            if isinstance(u, float) and isinstance(v, float):
                close = math.isclose(u, v, rel_tol=REL, abs_tol=NOISE.get(k, 1e-12))
                assert close or (math.isnan(u) and math.isnan(v)), (x["step"], k, u, v)
            else:
                assert u == v, (x.get("step"), k, u, v)


def assert_same_weights(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.allclose(a[k].float(), b[k].float(), rtol=REL, atol=1e-9), (k, (a[k].float() - b[k].float()).abs().max().item())
