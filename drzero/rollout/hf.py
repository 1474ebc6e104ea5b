"""Hugging Face ``transformers`` generation engine: batched sampling with a KV cache.

A hand-written decode loop rather than ``model.generate`` because it needs, per step:
sampled-token log-probabilities, stop strings cut per sequence, and savings that matter
on small hardware:
- each prompt is prefilled once; its keys/values are kept once, not copied ``n`` times,
  and the ``n`` samples' queries read them together (``SharedPrefixKV``);
- each sample's own keys/values go into a preallocated buffer that grows by doubling
  (no concatenation per token), and GQA heads are not repeated;
- finished sequences are dropped from the batch at once (only their own keys/values move).
The decode attention is registered with transformers as ``drzero_decode`` and switched on
for the decode steps of the architectures listed in ``FAST_DECODE``; any other model runs
the plain loop (a ``DynamicCache`` repeated ``n`` times). CPU and GPU, same code.

Stops as the vLLM engine does (``drzero.rollout.stop_rule``): at the model's EOS ids, at
special-token stops given as token ids, at plain stop strings matched on the text; special
tokens are left out of the text, and a stop string that ended a response is kept in it.
"""

from __future__ import annotations

import math
import os
import sys

import torch
from transformers import AttentionInterface, DynamicCache

from drzero import dist
from drzero.rollout import Generation, SamplingParams, model_eos_ids, special_token_ids, stop_rule

FAST_DECODE = ("qwen2", "llama")  # decoders whose attention calls transformers' attention interface


class HFEngine:
    def __init__(self, model, tokenizer, *, batch_size: int = 256, stop_token_ids: list[int] | None = None,
                 dtype: torch.dtype | None = None, decode_threads: int | None = None):
        self.model = model
        # CPU threads while generating; None: one on a machine with few cores, else torch's (``DecodeThreads``)
        self.decode_threads = decode_threads
        self.dtype = dtype  # compute dtype under autocast (e.g. bfloat16 with float32 weights); None: the weights
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # the model's end tokens (tokenizer EOS + generation config EOS, as vLLM), plus any given
        self.stop_token_ids = sorted(model_eos_ids(tokenizer, model.generation_config) | set(stop_token_ids or []))
        self.special = special_token_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_token_ids[0]
        self._stop_enders_cache: dict[tuple[str, ...], set[int]] = {}

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
    def generate(self, prompts: list[str], params: SamplingParams, on_finished=None) -> list[Generation]:
        """``len(prompts) * params.n`` generations, prompt-major. ``on_finished(list[Generation])``,
        when given, is called with responses as soon as they stop (the rest still decoding),
        so the caller can grade them meanwhile."""
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
                    out.extend(self._generate_chunk(chunk, start, params, gen, on_finished))
        finally:
            self.model.train(was_training)
        return out

    def _generate_chunk(self, prompt_ids: list[list[int]], offset: int, params: SamplingParams, gen,
                        on_finished=None) -> list[Generation]:
        device = self.device
        B = len(prompt_ids)
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((B, width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((B, width), dtype=torch.long)
        for i, p in enumerate(prompt_ids):  # left padding
            input_ids[i, width - len(p) :] = torch.tensor(p)
            attn[i, width - len(p) :] = 1
        input_ids, attn = input_ids.to(device), attn.to(device)
        positions = (attn.cumsum(-1) - 1).clamp(min=0)
        with DecodeThreads(self, device):
            return self._decode(prompt_ids, input_ids, attn, positions, offset, params, gen, on_finished)

    def _decode(self, prompt_ids, input_ids, attn, positions, offset, params, gen, on_finished):
        """Prefill, then sample until every row stops (``_generate_chunk``'s body)."""
        device = self.device
        B, n = len(prompt_ids), params.n
        cache = DynamicCache()
        logits = self.model(input_ids=input_ids, attention_mask=attn, position_ids=positions, past_key_values=cache,
                            use_cache=True, logits_to_keep=1).logits[:, -1, :]  # [B, V]
        # one prefill per prompt; its n samples start from the same logits: N = B*n rows
        logits = logits.repeat_interleave(n, dim=0)  # [N, V]
        N = B * n
        next_pos = attn.sum(-1).repeat_interleave(n)  # [N]
        state = (RowKV if n == 1 else SharedPrefixKV) if fast_decode(self.model) else RepeatedCache
        kv = state(self.model, cache, attn, n, params.max_new_tokens)
        active = torch.arange(N, device=device)  # rows of the original N still generating
        tokens: list[list[int]] = [[] for _ in range(N)]
        logps: list[list[float]] = [[] for _ in range(N)]
        finish = ["length"] * N
        results: list[Generation | None] = [None] * N
        stop_strings, stop_ids = stop_rule(params, set(self.stop_token_ids), self.special)  # the rule vLLM applies too
        stop_ids = set(stop_ids)

        def finished(rows: list[int]) -> None:
            for row in rows:
                p = row // n
                ids = tokens[row]
                # special tokens (EOS included) are left out of the text, as vLLM does by default
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                if finish[row] == "stop":  # end the text right after the stop string (vLLM's include_stop_str_in_output)
                    ends = [text.find(s) + len(s) for s in stop_strings if s in text]
                    text = text[: min(ends)] if ends else text
                results[row] = Generation(offset + p, prompt_ids[p], ids, text, finish[row], logps[row])
            if on_finished is not None and rows:
                on_finished([results[row] for row in rows])

        tail = max((len(s) for s in stop_strings), default=0)
        may_end_stop = self._stop_enders(stop_strings) if tail else set()
        with kv:
            for step in range(params.max_new_tokens):
                token, logp = self._sample(logits.float(), params, gen)
                token_list, logp_list = token.tolist(), logp.tolist()
                done_rows = []
                active_list = active.tolist()
                for j, row in enumerate(active_list):
                    t = token_list[j]
                    tokens[row].append(t)
                    logps[row].append(logp_list[j])
                    if t in stop_ids or (t in may_end_stop and self._hit_stop(tokens[row], stop_strings, tail)):
                        finish[row] = "stop"
                        done_rows.append(j)
                if step == params.max_new_tokens - 1:
                    break
                if done_rows:
                    finished([active_list[j] for j in done_rows])
                    if len(done_rows) == len(active):
                        break
                    keep = torch.tensor(_fill_holes(len(active), done_rows), device=device, dtype=torch.long)
                    active, token, next_pos = active[keep], token[keep], next_pos[keep]
                    kv.keep(keep)
                logits = kv.step(token, next_pos)  # [N_active, V]
                next_pos = next_pos + 1
        finished([row for row in range(N) if results[row] is None])  # the budget's end (or all stopped at once)
        return results  # type: ignore[return-value]

    def _stop_enders(self, stops: tuple[str, ...]) -> set[int]:
        """Token ids after which a stop string can have just appeared: their own text holds a
        stop string's last character (or a partial UTF-8 sequence, or nothing: special tokens,
        left out of the text). Only after these is the tail decoded and searched."""
        if stops not in self._stop_enders_cache:
            last = {s[-1] for s in stops if s}
            ids = set()
            for i in range(len(self.tokenizer)):
                text = self.tokenizer.decode([i], skip_special_tokens=True)
                if not text or "\ufffd" in text or any(c in text for c in last):
                    ids.add(i)
            self._stop_enders_cache[stops] = ids
        return self._stop_enders_cache[stops]

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
        # inverse-CDF sampling: one uniform number per row (multinomial draws one per vocabulary entry)
        cdf = probs.cumsum(dim=-1)  # [N, V]
        u = torch.rand(len(probs), 1, generator=gen).to(probs.device) * cdf[:, -1:]  # [N, 1]
        token = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)
        logp = logp_all.gather(-1, token[:, None]).squeeze(-1)
        if params.top_p < 1.0:
            logp = logp - probs.sum(-1).log()  # the nucleus's own normalisation
        return token, logp


class DecodeThreads:
    """CPU threads while a chunk is generated. A decode step is many small ops; an OpenMP
    team waits for its slowest thread at every op, so on a machine with few cores that
    anything else also uses, one thread is several times faster than all of them (the
    2-core development machine, toy model, load ~8: 2,200 vs 230 tokens/s). So on a CPU
    with at most ``FEW_CORES`` cores, generation runs on one thread; elsewhere on torch's
    setting. The engine's ``decode_threads`` overrides both. The rule is fixed, not timed:
    logits differ in the last bits between thread counts, and a run must repeat exactly
    under its seed. torch's setting is restored afterwards. Nothing changes on GPU."""

    FEW_CORES = 4

    def __init__(self, engine, device):
        self.default = torch.get_num_threads()
        self.threads = None
        if torch.device(device).type == "cpu":
            few = (os.cpu_count() or 1) <= self.FEW_CORES
            self.threads = engine.decode_threads or (1 if few else self.default)

    def __enter__(self):
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        if self.threads is not None:
            torch.set_num_threads(self.default)
        return False


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity set, capped by a cgroup v2 CPU quota
    (``cpu.max``, as a container sets it); ``os.cpu_count()`` counts the host's."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def idle_cpus(interval: float = 0.25) -> float | None:
    """How many of the machine's CPUs sat idle over the next ``interval`` seconds (from
    ``/proc/stat``), or None where that cannot be read (not Linux) or would not describe
    this process's CPUs (an affinity set or a container quota smaller than the machine)."""
    import time

    if usable_cpus() != (os.cpu_count() or 1):
        return None

    def sample():
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])  # idle + iowait, all (guest time is already in user)

    try:
        idle0, total0 = sample()
        time.sleep(interval)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return max(0.0, (os.cpu_count() or 1) * (idle1 - idle0) / (total1 - total0))  # iowait can go down


def eval_decode_threads(requested: int | None, device: str, *, greedy: bool = True) -> int | None:
    """``drzero eval``'s decode threads: ``requested`` when given; else, for a greedy eval
    on a CPU with at most ``DecodeThreads.FEW_CORES`` cores, all of them if they are idle
    as the eval starts (2 cores, toy eval: ~1.3x one thread), and ``DecodeThreads``'
    one-thread rule if anything else is using them (an OpenMP decode whose cores are taken
    runs ~10x slower). Sampled evals (pass@k) and training keep the fixed rule: logits
    differ in the last bits between thread counts, and a seeded sample must repeat exactly;
    greedy decoding gave the same tokens on 1 and 2 threads (bench/eval_speed.py)."""
    if requested is not None or not greedy or torch.device(device).type != "cpu":
        return requested
    cores = os.cpu_count() or 1
    if cores == 1 or cores > DecodeThreads.FEW_CORES:
        return None
    idle = idle_cpus()
    return cores if idle is not None and idle >= cores - 0.5 else None


# ----------------------------------------------------------------------------- keys/values during decoding
class RepeatedCache:
    """The plain decode state: transformers' ``DynamicCache`` with each prompt's keys/values
    repeated for its ``n`` samples (any model)."""

    def __init__(self, model, cache: DynamicCache, attn: torch.Tensor, n: int, max_new_tokens: int):
        self.model, self.cache = model, cache
        cache.batch_repeat_interleave(n)
        self.attn = attn.repeat_interleave(n, dim=0)  # [N, P + tokens so far]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.attn = self.attn[rows]

    def step(self, token: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        ones = torch.ones((len(token), 1), dtype=self.attn.dtype, device=self.attn.device)
        self.attn = torch.cat([self.attn, ones], dim=1)
        return self.model(input_ids=token[:, None], attention_mask=self.attn, position_ids=positions[:, None],
                          past_key_values=self.cache, use_cache=True).logits[:, -1, :]


class SharedPrefixKV:
    """The fast decode state. Per layer: each prompt's keys/values once, ``[B, H_kv, P, D]``
    (left-padded), and every live sample's own keys/values in a buffer ``[N, H_kv, cap, D]``
    that doubles when full. A decode step's attention (``attend``, called by transformers
    through the ``drzero_decode`` attention function) scores the samples' queries against
    their prompt's keys in one batched product per prompt, against their own keys in another,
    and takes one softmax over both. GQA: the ``H/H_kv`` query heads of a key head are read
    together, never copied."""

    def __init__(self, model, cache: DynamicCache, attn: torch.Tensor, n: int, max_new_tokens: int):
        self.model, self.n, self.max_new_tokens = model, n, max_new_tokens
        self.prefix = [(layer.keys, layer.values) for layer in cache.layers]  # [B, H_kv, P, D] each
        B = attn.shape[0]
        bias = torch.zeros(attn.shape, dtype=self.prefix[0][0].dtype, device=attn.device)
        self.prefix_bias = bias.masked_fill(attn == 0, float("-inf"))[:, None, None, :]  # [B, 1, 1, P]
        rows = torch.arange(B * n, device=attn.device)
        self.owner, self.sample = rows // n, rows % n  # [N]: each live row's prompt and sample slot
        self.own: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer: [N, H_kv, cap, D] keys, values
        self.length = 0  # tokens of its own each live row has in the buffer
        self.lean = lean_decode(model)  # decode steps through ``lean_step``

    def __enter__(self):
        config = self.model.config
        self.saved_impl = config._attn_implementation
        config._attn_implementation = "drzero_decode"
        return self

    def __exit__(self, *exc):
        self.model.config._attn_implementation = self.saved_impl
        return False

    def keep(self, rows: torch.Tensor) -> None:
        """Only ``rows`` (indices into the live rows) go on; only the keys/values of rows that
        change place move (``_fill_holes`` moves few)."""
        self.owner, self.sample = self.owner[rows], self.sample[rows]
        self._move_rows(rows, self.length)

    def _move_rows(self, rows: torch.Tensor, end: int) -> None:
        """Each buffer's first ``end`` positions of the rows that change place, to their new place."""
        dst = (rows != torch.arange(len(rows), device=rows.device)).nonzero().squeeze(-1)
        if len(dst):
            src = rows[dst]
            for k, v in self.own:
                k[dst, :, :end] = k[src, :, :end]
                v[dst, :, :end] = v[src, :, :end]

    def _grow(self, layer: int, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer``'s key and value buffers, ``extra`` positions longer (zeros)."""
        k, v = self.own[layer]
        k = torch.cat([k, k.new_zeros(k.shape[0], k.shape[1], extra, k.shape[3])], dim=2)
        v = torch.cat([v, v.new_zeros(v.shape[0], v.shape[1], extra, v.shape[3])], dim=2)
        self.own[layer] = (k, v)
        return k, v

    def step(self, token: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if self.lean:
            logits = lean_step(self.model, token, positions, self)
        else:
            logits = self.model(input_ids=token[:, None], position_ids=positions[:, None], use_cache=False,
                                drzero_decode=self).logits[:, -1, :]
        self.length += 1
        return logits

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None):
        """One decode step of layer ``layer``: ``query [N, H, 1, D]``, this token's ``key`` and
        ``value [N, H_kv, 1, D]``. Returns ``[N, 1, H, D]`` (what transformers' attention
        functions return)."""
        N, H, _, D = query.shape
        Hkv = key.shape[1]
        g = H // Hkv  # query heads per key head (head h reads key head h // g, as transformers' repeat_kv)
        t = self.length
        if layer == len(self.own):  # first step: allocate this layer's buffer
            cap = min(self.max_new_tokens, 64)
            self.own.append((key.new_zeros(N, Hkv, cap, D), value.new_zeros(N, Hkv, cap, D)))
        k_own, v_own = self.own[layer]
        if t == k_own.shape[2]:  # full: double it
            k_own, v_own = self._grow(layer, min(2 * t, self.max_new_tokens) - t)
        k_own[:N, :, t] = key[:, :, 0]
        v_own[:N, :, t] = value[:, :, 0]
        k_pre, v_pre = self.prefix[layer]
        B, _, P, _ = k_pre.shape
        n, owner, sample = self.n, self.owner, self.sample
        scale = scaling if scaling is not None else 1.0 / math.sqrt(D)
        q = query.view(N, Hkv, g, D)
        # against the prompt: the live samples' queries laid out per prompt, [B, H_kv, n*g, D]
        grid = q.new_zeros(B, n, Hkv, g, D)
        grid[owner, sample] = q
        grid = grid.permute(0, 2, 1, 3, 4).reshape(B, Hkv, n * g, D)
        s_pre = (grid @ k_pre.transpose(-1, -2)).view(B, Hkv, n, g, P)[owner, :, sample]  # [N, H_kv, g, P]
        s_pre = s_pre * scale + self.prefix_bias[owner]
        s_own = (q @ k_own[:N, :, : t + 1].transpose(-1, -2)) * scale  # [N, H_kv, g, t+1]
        w = torch.softmax(torch.cat([s_pre, s_own], dim=-1).float(), dim=-1).to(q.dtype)
        w_pre, w_own = w.split([P, t + 1], dim=-1)
        w_grid = w_pre.new_zeros(B, Hkv, n, g, P)
        w_grid[owner, :, sample] = w_pre
        out = (w_grid.view(B, Hkv, n * g, P) @ v_pre).view(B, Hkv, n, g, D)[owner, :, sample]  # [N, H_kv, g, D]
        out = out + w_own @ v_own[:N, :, : t + 1]
        return out.reshape(N, 1, H, D)


class RowKV(SharedPrefixKV):
    """The decode state for one sample per prompt (greedy evaluation, probing): per layer,
    each live row's prompt keys/values (left-padded) and its own in one buffer
    ``[N, H_kv, P + cap, D]`` that doubles its own part when full. A decode step's attention
    is one product, one softmax and one product, with nothing gathered or scattered per
    step (``SharedPrefixKV`` lays queries out per prompt for its G samples, which with one
    sample is pure overhead). Rows that stop leave as there: few move."""

    def __init__(self, model, cache: DynamicCache, attn: torch.Tensor, n: int, max_new_tokens: int):
        if n != 1:
            raise ValueError(f"RowKV holds one sample per prompt, not {n}")
        super().__init__(model, cache, attn, n, max_new_tokens)
        self.bias = self.prefix_bias[:, 0, 0, :]  # [N, P]: -inf on the prompt's left padding

    def keep(self, rows: torch.Tensor) -> None:
        self.bias = self.bias[rows]
        self._move_rows(rows, self.bias.shape[1] + self.length)

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None):
        N, H, _, D = query.shape
        Hkv = key.shape[1]
        P, t = self.bias.shape[1], self.length
        if layer == len(self.own):  # first step: this layer's buffer, the prompt's keys/values at its front
            k_pre, v_pre = self.prefix[layer]
            cap = P + min(self.max_new_tokens, 64)
            k_buf, v_buf = key.new_zeros(N, Hkv, cap, D), value.new_zeros(N, Hkv, cap, D)
            k_buf[:, :, :P], v_buf[:, :, :P] = k_pre, v_pre
            self.own.append((k_buf, v_buf))
            self.prefix[layer] = None  # now held in the buffer
        k_buf, v_buf = self.own[layer]
        if P + t == k_buf.shape[2]:  # full: double its own part
            k_buf, v_buf = self._grow(layer, min(2 * t, self.max_new_tokens) - t)
        k_buf[:N, :, P + t] = key[:, :, 0]
        v_buf[:N, :, P + t] = value[:, :, 0]
        scale = scaling if scaling is not None else 1.0 / math.sqrt(D)
        q = query.view(N, Hkv, H // Hkv, D)  # head h reads key head h // g, as transformers' repeat_kv
        s = (q @ k_buf[:N, :, : P + t + 1].transpose(-1, -2)) * scale  # [N, H_kv, g, P+t+1]
        s[..., :P] += self.bias[:, None, None, :]
        w = torch.softmax(s.float(), dim=-1).to(q.dtype)
        return (w @ v_buf[:N, :, : P + t + 1]).reshape(N, 1, H, D)


LEAN_DECODE = ("Qwen2ForCausalLM", "LlamaForCausalLM")  # plain modules whose decode step ``lean_step`` runs


def lean_decode(model) -> bool:
    """Whether ``lean_step`` can run this model's decode steps: an unwrapped Qwen2 or Llama
    causal LM (a LoRA-wrapped or hooked model runs through its own ``forward``)."""
    return (type(model).__name__ in LEAN_DECODE and not getattr(model, "_hf_hook", None)
            and not model._forward_hooks and not model._forward_pre_hooks)


def lean_step(model, token: torch.Tensor, positions: torch.Tensor, kv) -> torch.Tensor:
    """One decode step of a Qwen2/Llama model, ``token [N]`` at ``positions [N]`` -> logits
    ``[N, V]``: the same modules, in the same order, as the model's ``forward`` (bit-identical
    logits, tested), without the per-step work a one-token step does not need (mask
    construction, the attention-interface lookup, output records, and the logits of nothing
    but this token). The attention is ``kv.attend``."""
    inner = model.model
    rotate = sys.modules[type(inner.layers[0].self_attn).__module__].apply_rotary_pos_emb
    h = inner.embed_tokens(token[:, None])  # [N, 1, C]
    N = h.shape[0]
    cos, sin = inner.rotary_emb(h, positions[:, None])
    for i, layer in enumerate(inner.layers[: model.config.num_hidden_layers]):
        attn = layer.self_attn
        x = layer.input_layernorm(h)
        q = attn.q_proj(x).view(N, 1, -1, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(N, 1, -1, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(N, 1, -1, attn.head_dim).transpose(1, 2)
        q, k = rotate(q, k, cos, sin)
        h = h + attn.o_proj(kv.attend(i, q, k, v, attn.scaling).reshape(N, 1, -1).contiguous())
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    return model.lm_head(inner.norm(h))[:, -1, :]


def _fill_holes(n: int, done: list[int]) -> list[int]:
    """The live rows' new order when rows ``done`` (of ``n``) stop: survivors from the end fill
    the holes, everyone else stays where it is (so little key/value memory moves)."""
    dead = set(done)
    live = n - len(dead)
    order = list(range(live))
    tail = [j for j in range(live, n) if j not in dead]
    for hole, src in zip((j for j in range(live) if j in dead), tail):
        order[hole] = src
    return order


def fast_decode(model) -> bool:
    """Whether ``SharedPrefixKV`` can run this model's decode steps."""
    config = getattr(model, "config", None)
    return (config is not None and getattr(config, "model_type", None) in FAST_DECODE
            and not getattr(config, "use_sliding_window", False) and hasattr(config, "_attn_implementation")
            and set(getattr(config, "layer_types", None) or ["full_attention"]) == {"full_attention"})


def _decode_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, drzero_decode=None,
                      **kwargs):
    """transformers attention function: ``SharedPrefixKV.attend`` during drzero's decode
    steps, scaled-dot-product attention otherwise."""
    if drzero_decode is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    return drzero_decode.attend(module.layer_idx, query, key, value, scaling), None


AttentionInterface.register("drzero_decode", _decode_attention)
