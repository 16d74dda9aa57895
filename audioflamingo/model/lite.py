"""A lean Qwen2/Llama decoder for fast start-up: the bundled default model answers in ~2 s, not ~7 s.

Importing transformers' modeling and generation stack costs about 3.5 s of CPU time on the 2-core
machines this project targets, far more than the default model's own work (under 0.5 s). This module
reimplements only what inference with such a model needs: the same parameter names as
`Qwen2ForCausalLM` / `LlamaForCausalLM` (so the same safetensors load, strict), a KV cache, and greedy
decoding. Anything more (beams, sampling, streaming, training) goes back to the transformers model
through `AudioFlamingo.use_hf_lm`, which loads these very tensors into it. Parity with transformers is
tested (logits and greedy output) in tests/model/test_lite.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audioflamingo.model.decode_threads import decode_threads, prefill_threads

SUPPORTED = ("qwen2", "llama")


def supports(lm_config: dict) -> bool:
    """Whether `LiteCausalLM` reproduces this transformers config exactly."""
    rope = lm_config.get("rope_parameters") or {"rope_type": "default"}
    return (
        lm_config.get("model_type") in SUPPORTED
        and rope.get("rope_type", "default") == "default"
        and not lm_config.get("use_sliding_window")
        and lm_config.get("hidden_act", "silu") == "silu"
        and not lm_config.get("mlp_bias")
        and lm_config.get("pretraining_tp", 1) == 1
    )


class LiteConfig:
    """The transformers config as a plain dict with attribute access; `to_dict` gives it back unchanged."""

    def __init__(self, d: dict):
        self._d = dict(d)
        self.__dict__.update(self._d)
        self.head_dim = d.get("head_dim") or d["hidden_size"] // d["num_attention_heads"]
        self.rope_theta = float((d.get("rope_parameters") or {}).get("rope_theta", d.get("rope_theta", 10000.0)))

    def to_dict(self) -> dict:
        return dict(self._d)


class KVCache:
    """Per-layer keys and values; `k[i]`/`v[i]` are the filled part (B, kv_heads, T, hd) of a buffer
    allocated with room to grow, so a decode step writes one slot instead of copying the whole cache
    (`torch.cat` per step and layer). `reserve`: slots to allocate beyond the first fill (generate
    passes max_new_tokens); past it the buffer doubles."""

    def __init__(self, n_layers: int, reserve: int = 0):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self._kb: list[torch.Tensor | None] = [None] * n_layers
        self._vb: list[torch.Tensor | None] = [None] * n_layers
        self.reserve = reserve

    def get_seq_length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def update(self, k, v, i: int):
        old = self.k[i]
        n0 = 0 if old is None else old.shape[2]
        n = n0 + k.shape[2]
        kb, vb = self._kb[i], self._vb[i]
        if kb is None or vb is None or kb.shape[2] < n or kb.shape[:2] != k.shape[:2] or kb.dtype != k.dtype:
            cap = max(n + self.reserve, 2 * n0)
            kb, vb = k.new_empty(*k.shape[:2], cap, k.shape[3]), v.new_empty(*v.shape[:2], cap, v.shape[3])
            if old is not None:
                kb[:, :, :n0], vb[:, :, :n0] = old, self.v[i]
            self._kb[i], self._vb[i] = kb, vb
        kb[:, :, n0:n], vb[:, :, n0:n] = k, v
        self.k[i], self.v[i] = kb[:, :, :n], vb[:, :, :n]
        return self.k[i], self.v[i]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def pack_columns(weights: list[torch.Tensor]) -> torch.Tensor:
    """Store (out_i, in) weights as the column blocks of one contiguous (in, sum out_i) matrix and
    make each a transposed view of its block: names, shapes and values stay, and `x @ packed` is
    one GEMV that streams the weights in order. On the 2-core EPYC of docs/BENCHMARKS.md a batch-1
    product with a short-row (896-wide) weight streams ~1.7x faster from this layout than from
    nn.Linear's (out, in) one, which MKL reads row by row."""
    packed = torch.cat([w.detach().t() for w in weights], dim=1).contiguous()
    o = 0
    for w in weights:
        w.data = packed[:, o : o + w.shape[0]].t()
        o += w.shape[0]
    return packed


def transpose_storage(w: torch.Tensor) -> None:
    """Same tensor, stored column-major: `F.linear` then runs as `x @ w.t()` on contiguous memory."""
    w.data = w.detach().t().contiguous().t()


def _is_view_of(w: torch.Tensor, packed: torch.Tensor | None) -> bool:
    return packed is not None and w.data_ptr() == packed.data_ptr() and w.dtype == packed.dtype


def _rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Attention(nn.Module):
    def __init__(self, c: LiteConfig, idx: int):
        super().__init__()
        self.idx, self.hd = idx, c.head_dim
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        bias = c.model_type == "qwen2" or bool(getattr(c, "attention_bias", False))
        self.q_proj = nn.Linear(c.hidden_size, self.heads * self.hd, bias=bias)
        self.k_proj = nn.Linear(c.hidden_size, self.kv_heads * self.hd, bias=bias)
        self.v_proj = nn.Linear(c.hidden_size, self.kv_heads * self.hd, bias=bias)
        self.o_proj = nn.Linear(
            self.heads * self.hd,
            c.hidden_size,
            bias=c.model_type == "llama" and bool(getattr(c, "attention_bias", False)),
        )
        self._qkv: torch.Tensor | None = None
        self._qkv_bias: torch.Tensor | None = None
        self.fp16: tuple | None = None  # (q/k/v, output) as fp16_weights.Fp16Linear, when in use

    def pack(self) -> None:
        """q/k/v weights (and biases) as views of one (d, q+k+v) matrix: one GEMV per step."""
        projs = (self.q_proj, self.k_proj, self.v_proj)
        self._qkv = pack_columns([p.weight for p in projs])
        self._qkv_bias = None
        if self.q_proj.bias is not None:
            bias = torch.cat([p.bias.detach() for p in projs])  # type: ignore[union-attr]
            o = 0
            for p in projs:
                p.bias.data = bias[o : o + p.bias.shape[0]]  # type: ignore[union-attr]
                o += p.bias.shape[0]  # type: ignore[union-attr]
            self._qkv_bias = bias

    def project(self, x, cos, sin):
        """(B, T, d) -> rotated q (B, heads, T, hd) and k, v (B, kv_heads, T, hd)."""
        b, t, _ = x.shape
        if self.fp16 is not None:
            nq, nk = self.heads * self.hd, self.kv_heads * self.hd
            q, k, v = self.fp16[0](x).split((nq, nk, nk), dim=-1)
        elif _is_view_of(self.q_proj.weight, self._qkv):
            y = x @ self._qkv  # type: ignore[operator]
            if self._qkv_bias is not None:
                y = y + self._qkv_bias
            nq, nk = self.heads * self.hd, self.kv_heads * self.hd
            q, k, v = y.split((nq, nk, nk), dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.view(b, t, -1, self.hd).transpose(1, 2)
        k = k.view(b, t, -1, self.hd).transpose(1, 2)
        v = v.view(b, t, -1, self.hd).transpose(1, 2)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin, v

    def attend(self, q, k, v, mask):
        """Grouped-query attention of q over k, v (the whole cache) -> (B, T, d)."""
        b, _, t, _ = q.shape
        rep = self.heads // self.kv_heads
        if rep > 1 and t == 1 and (mask is None or mask.shape[-3:-1] == (1, 1)):
            # One query per head: the `rep` heads sharing a KV head become `rep` query rows of it,
            # so the cache is read in place instead of copied `rep` times.
            y = F.scaled_dot_product_attention(
                q.view(b, self.kv_heads, rep, self.hd), k, v, attn_mask=mask, scale=self.hd**-0.5
            )
            return self.out(y.reshape(b, 1, -1))
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.hd**-0.5)
        return self.out(y.transpose(1, 2).reshape(b, t, -1))

    def out(self, y):
        return self.fp16[1](y) if self.fp16 is not None else self.o_proj(y)

    def forward(self, x, cos, sin, mask, cache: KVCache | None):
        q, k, v = self.project(x, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.idx)
        return self.attend(q, k, v, mask)


class MLP(nn.Module):
    def __init__(self, c: LiteConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)
        self._gate_up: torch.Tensor | None = None
        self.fp16: tuple | None = None  # (gate/up, down) as fp16_weights.Fp16Linear, when in use

    def pack(self) -> None:
        """gate and up weights as views of one (d, 2 x ffn) matrix: one GEMV for both per step."""
        self._gate_up = pack_columns([self.gate_proj.weight, self.up_proj.weight])

    def forward(self, x):
        if self.fp16 is not None:
            g, u = self.fp16[0](x).chunk(2, dim=-1)
            return self.fp16[1](F.silu(g) * u)
        if _is_view_of(self.gate_proj.weight, self._gate_up):
            g, u = (x @ self._gate_up).chunk(2, dim=-1)  # type: ignore[operator]
            return self.down_proj(F.silu(g) * u)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: LiteConfig, idx: int):
        super().__init__()
        self.self_attn = Attention(c, idx)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, hidden_states, cos, sin, mask, cache):
        h = hidden_states + self.self_attn(self.input_layernorm(hidden_states), cos, sin, mask, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class Backbone(nn.Module):
    def __init__(self, c: LiteConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(c, i) for i in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        inv = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float) / c.head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)

    def rope(self, position_ids: torch.Tensor, dtype: torch.dtype):
        """(B, T) positions -> cos, sin of shape (B, 1, T, head_dim) for `Attention.project`."""
        freqs = position_ids[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)[:, None]
        return emb.cos().to(dtype), emb.sin().to(dtype)


@dataclass
class LiteOutput:
    logits: torch.Tensor
    past_key_values: KVCache | None = None


def greedy_pick(scores, seq, done, processors, eos: torch.Tensor, pad_token_id: int):
    """One greedy token per row after the processors; finished rows get `pad_token_id`, as in
    transformers. Returns the tokens, the grown sequences and the rows finished so far."""
    for proc in processors or []:
        scores = proc(seq, scores)
    nxt = scores.argmax(-1)
    nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
    return nxt, torch.cat([seq, nxt[:, None]], dim=1), done | torch.isin(nxt, eos)


class LiteCausalLM(nn.Module):
    """`Qwen2ForCausalLM`/`LlamaForCausalLM` for inference: same state-dict names, same outputs."""

    def __init__(self, config: dict | LiteConfig):
        super().__init__()
        self.config = config if isinstance(config, LiteConfig) else LiteConfig(config)
        if not supports(self.config.to_dict()):
            raise ValueError(
                f"LiteCausalLM cannot run model_type {self.config.to_dict().get('model_type')!r} "
                "with these settings; use the transformers model"
            )
        self.model = Backbone(self.config)
        self.lm_head = nn.Linear(self.config.hidden_size, self.config.vocab_size, bias=False)
        if getattr(self.config, "tie_word_embeddings", True):
            self.lm_head.weight = self.model.embed_tokens.weight
        self._register_state_dict_hook(contiguous_state)
        # Packed on the first forward, not here: a checkpoint loads (and `state_dict()` is read)
        # without copying every weight first.
        self.packed = False
        self.fp16_head = None  # the output head as fp16_weights.Fp16Linear, when in use
        self._fp16_source = 0  # data_ptr of the head weight the fp16 copies were made from
        self.register_load_state_dict_post_hook(self._fp16_follow)

    def pack(self) -> "LiteCausalLM":
        """Lay the weights out for batch-1 decoding (same names, shapes and values): q/k/v and
        gate/up each one column-major matrix, the output head column-major. `state_dict()` gives
        contiguous copies, so saving and `AudioFlamingo.use_hf_lm` see the ordinary layout; the
        layout survives `.to()` (re-packed)."""
        with torch.no_grad():
            for layer in self.model.layers:
                if layer.mlp.fp16 is None:  # with fp16 copies the fp32 layout is never read
                    layer.self_attn.pack()
                    layer.mlp.pack()
            if self.fp16_head is None:
                transpose_storage(self.lm_head.weight)
        self.packed = True
        return self

    def use_fp16_weights(self, on: bool = True) -> bool:
        """Decode with fp16 copies of the linear layers (model.fp16_weights); returns whether they
        are in use (fp32 weights on CPU only). Kept in step with `.to()` and `load_state_dict`."""
        from audioflamingo.model import fp16_weights

        return fp16_weights.attach(self, on)

    def _fp16_follow(self, *unused) -> None:
        if self.fp16_head is not None:
            self.use_fp16_weights(True)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        if getattr(self, "fp16_head", None) is not None and self.lm_head.weight.data_ptr() != self._fp16_source:
            self.use_fp16_weights(True)  # rebuilt from the moved weights, or dropped off CPU / fp32
        mlp = self.model.layers[0].mlp if len(self.model.layers) else None
        if (
            self.packed
            and mlp is not None
            and mlp._gate_up is not None
            and not _is_view_of(mlp.gate_proj.weight, mlp._gate_up)
        ):
            self.pack()  # a conversion rebuilt each tensor on its own: share storage again
        return out

    def forward(
        self,
        input_ids,
        attention_mask=None,
        position_ids=None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        labels=None,
        logits_to_keep: int = 0,
        **unused,
    ) -> LiteOutput:
        """`logits_to_keep`: the head runs on the last n positions only (0: all), as in transformers;
        generation needs one, and the head is the largest matrix."""
        if labels is not None:
            raise ValueError("LiteCausalLM is for inference; train the transformers model")
        if not self.packed:
            self.pack()
        b, t = input_ids.shape
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        cache = (
            past_key_values if past_key_values is not None else (KVCache(len(self.model.layers)) if use_cache else None)
        )
        h = self.model.embed_tokens(input_ids)
        if position_ids is None:
            if attention_mask is None:
                position_ids = torch.arange(past, past + t, device=h.device)[None].expand(b, -1)
            else:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, past:]
        cos, sin = self.model.rope(position_ids, h.dtype)
        mask = _attention_mask(attention_mask, past, t, h.device)
        for layer in self.model.layers:
            h = layer(h, cos, sin, mask, cache)
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        head = self.fp16_head if self.fp16_head is not None else self.lm_head
        return LiteOutput(head(self.model.norm(h)), cache if use_cache else None)

    @torch.no_grad()
    def generate(
        self,
        input_ids,
        attention_mask,
        max_new_tokens: int = 64,
        eos_token_id=None,
        pad_token_id: int = 0,
        logits_processor=None,
        **unused,
    ):
        """Greedy decoding with a KV cache; finished rows get `pad_token_id`, as in transformers."""
        eos = torch.tensor(
            eos_token_id
            if isinstance(eos_token_id, (list, tuple))
            else ([] if eos_token_id is None else [eos_token_id]),
            device=input_ids.device,
        )
        seq, mask = input_ids, attention_mask.long()
        done = torch.zeros(len(seq), dtype=torch.bool, device=seq.device)
        cache = KVCache(len(self.model.layers), reserve=max_new_tokens)
        with prefill_threads(seq.device):
            out = self(input_ids=seq, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
        pos = mask.sum(-1, keepdim=True) - 1
        with decode_threads(len(seq), seq.device):
            for step in range(max_new_tokens):
                nxt, seq, done = greedy_pick(out.logits[:, -1].float(), seq, done, logits_processor, eos, pad_token_id)
                if step + 1 == max_new_tokens or bool(done.all()):  # no forward whose logits go unread
                    break
                mask = torch.cat([mask, mask.new_ones(len(seq), 1)], dim=1)
                pos = pos + 1
                out = self(
                    input_ids=nxt[:, None],
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
        return seq


def _attention_mask(attention_mask, past: int, t: int, device) -> torch.Tensor | None:
    """(B, 1, T, past + T) bool: causal and padding. None where every query sees every key (one new
    token, no padding): SDPA's unmasked path, and no mask to build per step."""
    if t == 1:
        if attention_mask is None or bool(attention_mask.all()):
            return None
        return attention_mask.bool()[:, None, None, :]
    if attention_mask is None:
        attention_mask = torch.ones(1, past + t, dtype=torch.bool, device=device)
    # A query may always see itself, so left-padding rows never softmax over nothing (their outputs
    # are never read).
    q_pos = torch.arange(past, past + t, device=device)
    k_pos = torch.arange(past + t, device=device)
    mask = (k_pos[None, :] <= q_pos[:, None])[None] & attention_mask.bool()[:, None, :]
    return (mask | (k_pos[None, :] == q_pos[:, None])[None])[:, None]


def contiguous_state(module, state: dict, prefix: str, local_metadata) -> dict:
    """State-dict hook for modules with packed or re-laid-out weights: hand out contiguous tensors
    that own their storage (savers such as safetensors refuse strided or partial views); weights
    that are one tensor (tied ones) stay one tensor."""
    seen: dict[tuple, torch.Tensor] = {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            continue
        if t.is_contiguous() and t.untyped_storage().nbytes() == t.numel() * t.element_size():
            continue
        key = (t.data_ptr(), t.shape, t.stride(), t.dtype)
        if key not in seen:
            seen[key] = t.contiguous().clone() if t.is_contiguous() else t.contiguous()
        state[name] = seen[key]
    return state
