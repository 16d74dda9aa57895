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
    def __init__(self, n_layers: int):
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers

    def get_seq_length(self) -> int:
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def update(self, k, v, i: int):
        if self.k[i] is not None:
            k, v = torch.cat([self.k[i], k], dim=2), torch.cat([self.v[i], v], dim=2)
        self.k[i], self.v[i] = k, v
        return k, v


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


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

    def project(self, x, cos, sin):
        """(B, T, d) -> rotated q (B, heads, T, hd) and k, v (B, kv_heads, T, hd)."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, -1, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, -1, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, -1, self.hd).transpose(1, 2)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin, v

    def attend(self, q, k, v, mask):
        """Grouped-query attention of q over k, v (the whole cache) -> (B, T, d)."""
        b, _, t, _ = q.shape
        rep = self.heads // self.kv_heads
        if rep > 1:
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.hd**-0.5)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))

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

    def forward(self, x):
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

    def forward(
        self,
        input_ids,
        attention_mask=None,
        position_ids=None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
        labels=None,
        **unused,
    ) -> LiteOutput:
        if labels is not None:
            raise ValueError("LiteCausalLM is for inference; train the transformers model")
        b, t = input_ids.shape
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        if attention_mask is None:
            attention_mask = torch.ones(b, past + t, dtype=torch.long, device=input_ids.device)
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, past:]
        cache = (
            past_key_values if past_key_values is not None else (KVCache(len(self.model.layers)) if use_cache else None)
        )
        h = self.model.embed_tokens(input_ids)
        cos, sin = self.model.rope(position_ids, h.dtype)
        # Causal and padding mask; a query may always see itself, so left-padding rows never softmax
        # over nothing (their outputs are never read).
        q_pos = torch.arange(past, past + t, device=h.device)
        k_pos = torch.arange(past + t, device=h.device)
        mask = (k_pos[None, :] <= q_pos[:, None])[None] & attention_mask.bool()[:, None, :]
        mask = (mask | (k_pos[None, :] == q_pos[:, None])[None])[:, None]
        for layer in self.model.layers:
            h = layer(h, cos, sin, mask, cache)
        return LiteOutput(self.lm_head(self.model.norm(h)), cache if use_cache else None)

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
        out = self(input_ids=seq, attention_mask=mask, use_cache=True)
        cache = out.past_key_values
        for _ in range(max_new_tokens):
            scores = out.logits[:, -1].float()
            for proc in logits_processor or []:
                scores = proc(seq, scores)
            nxt = scores.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done = done | torch.isin(nxt, eos)
            if bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones(len(seq), 1)], dim=1)
            pos = (mask.cumsum(-1) - 1)[:, -1:]
            out = self(
                input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True
            )
        return seq
