"""Hugging Face ``transformers`` generation engine: batched sampling with a KV cache.

A hand-written decode loop rather than ``model.generate`` because it needs, per step:
sampled-token log-probabilities, stop strings cut per sequence, and two savings that
matter on small hardware:
- each prompt is prefilled once and its cache repeated ``n`` times (``n`` samples);
- finished sequences are dropped from the batch and its cache as soon as they stop.
Works on CPU and GPU with the same code.

Stops as the vLLM engine does (``drzero.rollout.stop_rule``): at the model's EOS ids, at
special-token stops given as token ids, at plain stop strings matched on the text; special
tokens are left out of the text.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from drzero import dist
from drzero.rollout import Generation, SamplingParams, model_eos_ids, special_token_ids, stop_rule


class HFEngine:
    def __init__(self, model, tokenizer, *, batch_size: int = 256, stop_token_ids: list[int] | None = None,
                 dtype: torch.dtype | None = None):
        self.model = model
        self.dtype = dtype  # compute dtype under autocast (e.g. bfloat16 with float32 weights); None: the weights
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # the model's end tokens (tokenizer EOS + generation config EOS, as vLLM), plus any given
        self.stop_token_ids = sorted(model_eos_ids(tokenizer, model.generation_config) | set(stop_token_ids or []))
        self.special = special_token_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_token_ids[0]

    @property
    def device(self):
        return next(self.model.parameters()).device

    def sync(self, model) -> None:
        """The new policy generates next. When the engine generates with the learner's own
        module there is nothing to copy; when it holds a replica (the learner is sharded),
        the whole weights are gathered into it one tensor at a time (a collective)."""
        if model is self.model:
            return
        own = self.model.state_dict()
        seen = set()
        with torch.no_grad():
            for name, value in dist.iter_full_weights(model, self.dtype):
                own[name].copy_(value)
                seen.add(name)
        if missing := set(own) - seen:
            raise RuntimeError(f"sync: no value for {sorted(missing)[:3]}")

    def sleep(self) -> None:
        """Nothing to free: the engine shares the learner's memory."""

    def wake_up(self) -> None:
        """Nothing to retake."""

    @torch.no_grad()
    def generate(self, prompts: list[str], params: SamplingParams) -> list[Generation]:
        encoded = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        per_chunk = max(1, self.batch_size // params.n)
        gen = torch.Generator(device="cpu")
        if params.seed is not None:
            gen.manual_seed(params.seed)
        else:
            gen.seed()
        out: list[Generation] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(encoded), per_chunk):
                chunk = encoded[start : start + per_chunk]
                with dist.autocast(self.device, self.dtype):
                    out.extend(self._generate_chunk(chunk, start, params, gen))
        finally:
            self.model.train(was_training)
        return out

    def _generate_chunk(self, prompt_ids: list[list[int]], offset: int, params: SamplingParams, gen) -> list[Generation]:
        device = self.device
        B, n = len(prompt_ids), params.n
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((B, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((B, width), dtype=torch.long)
        for i, p in enumerate(prompt_ids):  # left padding
            input_ids[i, width - len(p) :] = torch.tensor(p)
            attn[i, width - len(p) :] = 1
        input_ids, attn = input_ids.to(device), attn.to(device)
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self.model(input_ids=input_ids, attention_mask=attn, position_ids=positions,
                            past_key_values=cache, use_cache=True).logits[:, -1, :]  # [B, V]
        # one prefill per prompt, then n copies of its cache: N = B*n rows
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
            attn = attn.repeat_interleave(n, dim=0)
        N = B * n
        next_pos = attn.sum(-1)  # [N]
        active = torch.arange(N, device=device)  # rows of the original N still generating
        tokens: list[list[int]] = [[] for _ in range(N)]
        logps: list[list[float]] = [[] for _ in range(N)]
        finish = ["length"] * N
        stop_strings, stop_ids = stop_rule(params, set(self.stop_token_ids), self.special)  # the rule vLLM applies too
        stop_ids = set(stop_ids)
        tail = max((len(s) for s in stop_strings), default=0)
        for step in range(params.max_new_tokens):
            token, logp = self._sample(logits.float(), params, gen)
            token_list, logp_list = token.tolist(), logp.tolist()
            done_rows = []
            for j, row in enumerate(active.tolist()):
                tokens[row].append(token_list[j])
                logps[row].append(logp_list[j])
                if token_list[j] in stop_ids:
                    finish[row] = "stop"
                    done_rows.append(j)
                elif tail and self._hit_stop(tokens[row], stop_strings, tail):
                    finish[row] = "stop"
                    done_rows.append(j)
            if step == params.max_new_tokens - 1:
                break
            keep = None
            if done_rows:
                done = set(done_rows)
                keep = torch.tensor([j for j in range(len(active)) if j not in done], device=device, dtype=torch.long)
                if keep.numel() == 0:
                    break
                active, token, attn, next_pos = active[keep], token[keep], attn[keep], next_pos[keep]
                cache.batch_select_indices(keep)
            attn = torch.cat([attn, torch.ones((len(active), 1), dtype=attn.dtype, device=device)], dim=1)
            logits = self.model(input_ids=token[:, None], attention_mask=attn, position_ids=next_pos[:, None],
                                past_key_values=cache, use_cache=True).logits[:, -1, :]
            next_pos = next_pos + 1
        results = []
        for row in range(N):
            p = row // n
            ids = tokens[row]
            # special tokens (EOS included) are left out of the text, as vLLM does by default
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            if finish[row] == "stop":  # end the text right after the stop string (vLLM's include_stop_str_in_output)
                ends = [text.find(s) + len(s) for s in stop_strings if s in text]
                text = text[: min(ends)] if ends else text
            results.append(Generation(offset + p, prompt_ids[p], ids, text, finish[row], logps[row]))
        return results

    def _hit_stop(self, ids: list[int], stops: tuple[str, ...], tail: int) -> bool:
        text = self.tokenizer.decode(ids[-(tail + 2) :], skip_special_tokens=True)
        return any(s in text for s in stops)

    @staticmethod
    def _sample(logits: torch.Tensor, params: SamplingParams, gen) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled token ``[N]`` and its log-probability under the sampling distribution
        (temperature applied; with top-p, renormalised over the nucleus, as vLLM's processed
        log-probs)."""
        if params.temperature <= 0:
            logp_all = torch.log_softmax(logits, dim=-1)
            token = logits.argmax(dim=-1)
            return token, logp_all.gather(-1, token[:, None]).squeeze(-1)
        logits = logits / params.temperature
        logp_all = torch.log_softmax(logits, dim=-1)
        probs = logp_all.exp()
        if params.top_p < 1.0:
            sorted_p, idx = probs.sort(dim=-1, descending=True)
            cum = sorted_p.cumsum(-1)
            sorted_p[(cum - sorted_p) > params.top_p] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
        token = torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)
        logp = logp_all.gather(-1, token[:, None]).squeeze(-1)
        if params.top_p < 1.0:
            logp = logp - probs.sum(-1).log()  # the nucleus's own normalisation
        return token, logp
