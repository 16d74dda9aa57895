"""Decoding with a preallocated KV cache and fixed shapes, so one step can be one CUDA graph replay.

A decode step on a GPU at batch 1 is dominated by launch overhead, not by the kernels: a 36-block LM
with xattn-dense before every block issues about a thousand small kernels per token. A static cache
(every tensor of the step allocated once, at its final shape) lets the whole step be captured once as
a CUDA graph and replayed per token with one launch.

What makes the audio part static: `<audio>` is banned from generation (`AudioFlamingo.generate`), so
every generated token belongs to the sample it starts in and its cross-attention mask (B, 1, K) is
the same at every step; the audio K/V are computed once per generation anyway. What changes per step
(the token, its rope position, the cache slot it writes) lives in small tensors updated in place
outside the graph, and the step reads them, never Python numbers.

The prompt is prefilled by the lean LM's ordinary forward (variable length, run once); only the
decode steps use the static path. Greedy output equals `LiteCausalLM.generate`'s (tested on CPU,
where the same step runs eagerly; `graph=True` needs CUDA).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from audioflamingo.model.mask import cross_attention_mask, sample_index


class StaticDecodeStep:
    """The buffers of one generation and the step that reads them: fixed shapes, in-place updates."""

    def __init__(self, model, prompt_len: int, batch: int, max_new_tokens: int, prefill_cache, state, attention_mask):
        lm = model.lm
        self.lm, self.fusion = lm, model.fusion
        self.layers = list(lm.model.layers)
        dev = attention_mask.device
        dtype = lm.model.embed_tokens.weight.dtype
        self.max_len = prompt_len + max_new_tokens
        att = self.layers[0].self_attn
        shape = (batch, att.kv_heads, self.max_len, att.hd)
        self.k = [torch.zeros(shape, device=dev, dtype=dtype) for _ in self.layers]
        self.v = [torch.zeros(shape, device=dev, dtype=dtype) for _ in self.layers]
        for i in range(len(self.layers)):
            self.k[i][:, :, :prompt_len] = prefill_cache.k[i]
            self.v[i][:, :, :prompt_len] = prefill_cache.v[i]
        # Keys a query may see: the prompt's non-padding tokens, then each generated slot as it is written.
        self.visible = torch.zeros(batch, self.max_len, dtype=torch.bool, device=dev)
        self.visible[:, :prompt_len] = attention_mask.bool()
        self.token = torch.zeros(batch, 1, dtype=torch.long, device=dev)
        self.position = (attention_mask.long().sum(-1, keepdim=True) - 1).clamp_min(0)
        self.slot = torch.full((1,), prompt_len - 1, dtype=torch.long, device=dev)
        self.audio: dict[int, tuple] = {}
        if state is not None:
            xmask = cross_attention_mask(sample_index(state.last_count)[:, None], state.key_audio, state.key_valid)
            for i in model.fusion.layer_ids:
                block = model.fusion.xattn[str(i)]
                k, v = model.fusion._kv(i, block, state)
                self.audio[i] = (block, k, v, xmask)
        self.logits = torch.zeros(batch, lm.config.vocab_size, device=dev, dtype=torch.float32)
        self.compile_backend: str | None = None

    def advance(self, token: torch.Tensor) -> None:
        """Feed `token` (B,) as the next step's input: the only writes between two steps."""
        self.token.copy_(token[:, None])
        self.position.add_(1)
        self.slot.add_(1)

    @torch.no_grad()
    def __call__(self) -> torch.Tensor:
        """One decode step on the buffers; leaves the next-token logits in `self.logits`."""
        fn = _compiled(self.compile_backend) if self.compile_backend else decode_step
        blocks = [self.audio.get(i) for i in range(len(self.layers))]
        return fn(self.lm, blocks, self.token, self.position, self.slot, self.visible, self.k, self.v, self.logits)


def decode_step(lm, blocks, token, position, slot, visible, ks, vs, logits):
    """The step as a function of tensors and modules only, so `torch.compile` reuses one compiled
    graph for every generation of the same shapes (a bound method would be guarded on its object)."""
    visible.index_fill_(1, slot, True)
    mask = visible[:, None, None, :]
    h = lm.model.embed_tokens(token)
    cos, sin = lm.model.rope(position, h.dtype)
    for i, layer in enumerate(lm.model.layers):
        if blocks[i] is not None:
            block, k, v, xmask = blocks[i]
            h = block(h, k, v, xmask)
        attn = layer.self_attn
        q, k_new, v_new = attn.project(layer.input_layernorm(h), cos, sin)
        ks[i].index_copy_(2, slot, k_new)
        vs[i].index_copy_(2, slot, v_new)
        h = h + attn.attend(q, ks[i], vs[i], mask)
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    logits.copy_(lm.lm_head(lm.model.norm(h))[:, -1].float())
    return logits


_COMPILED: dict[str, Callable] = {}


def _compiled(backend: str) -> Callable:
    if backend not in _COMPILED:
        _COMPILED[backend] = torch.compile(decode_step, backend=backend, dynamic=False)
    return _COMPILED[backend]


def capture(step: Callable[[], torch.Tensor], warmup: int = 2) -> Callable[[], torch.Tensor]:
    """`step` recorded once as a CUDA graph; the returned callable replays it (same output tensor).

    The warm-up runs on a side stream, as graph capture requires; they also write the cache slot
    the first real step writes again, so they change nothing that step reads."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


@torch.no_grad()
def generate_static(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    state,
    max_new_tokens: int = 64,
    eos_token_id: Sequence[int] | int | None = None,
    pad_token_id: int = 0,
    logits_processor: Sequence | None = None,
    graph: bool | None = None,
    compile_step: bool | str = False,
) -> torch.Tensor:
    """Greedy decoding of a lean-runtime AudioFlamingo on a static cache (`generate(...,
    cache_implementation="static")`); `graph` (default: on CUDA) replays each step as a CUDA graph.
    `compile_step` runs the step through `torch.compile` first (True, or a backend name), so the
    graph replays fused kernels: at batch 1 a step is about a thousand tiny kernels otherwise."""
    from audioflamingo.model.lite import LiteCausalLM, greedy_pick

    if not isinstance(model.lm, LiteCausalLM):
        raise ValueError("the static-cache decoder runs on the lean runtime (Qwen2/Llama LMs)")
    graph = (input_ids.device.type == "cuda") if graph is None else graph
    if graph and input_ids.device.type != "cuda":
        raise ValueError("CUDA graphs need the model on a CUDA device")
    eos_list = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
    eos = torch.tensor(eos_list, device=input_ids.device, dtype=torch.long)
    b, t = input_ids.shape
    with model.conditioned(state):
        out = model.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=True)
    step = StaticDecodeStep(model, t, b, max_new_tokens, out.past_key_values, state, attention_mask)
    # The lean runtime lays its weights out on first use (the LM in its forward, the xattn layers at
    # the LM's next call); settle both now, or a compiled step would be traced on the old strides.
    model.fusion.follow_layout(model.lm)
    if compile_step:
        step.compile_backend = compile_step if isinstance(compile_step, str) else "inductor"
    run: Callable[[], torch.Tensor] = step
    seq = input_ids
    done = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
    scores = out.logits[:, -1].float()
    for n in range(max_new_tokens):
        nxt, seq, done = greedy_pick(scores, seq, done, logits_processor, eos, pad_token_id)
        if n == max_new_tokens - 1 or bool(done.all()):
            break
        step.advance(nxt)
        if graph and run is step:
            run = capture(step)
            # capture() ran the step (warm-ups and the recording): the cache slot it wrote holds
            # this step's K/V, so replaying once more gives the same logits.
        scores = run().clone()
    return seq
