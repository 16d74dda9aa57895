"""Gated xattn-dense: the Flamingo block inserted before LM decoder layers.

    x = x + tanh(attn_gate) * XAttn(LN(x), audio)
    x = x + tanh(ff_gate)   * FF(x),   FF = LN -> Linear(d, 4d) -> GELU -> Linear(4d, d)

Both gates start at 0, so a freshly wrapped LM computes exactly what it computed before.
Projections are bias-free, as in the official layers (parameter names match them too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audioflamingo.config import XAttnConfig


class MaskedCrossAttention(nn.Module):
    def __init__(self, dim: int, dim_audio: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_audio, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def keys_values(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, dim_audio) -> K and V of shape (B, heads, K, dim_head); computed once per generate call."""
        b, k, _ = audio.shape
        kv = self.to_kv(audio).view(b, k, 2, self.heads, self.dim_head)
        return kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, q_len, _ = x.shape
        q = self.to_q(self.norm(x)).view(b, q_len, self.heads, self.dim_head).transpose(1, 2)
        if k.shape[2] == 0:
            return x.new_zeros(x.shape)
        has_audio = mask.any(dim=-1)  # (B, Q): text with no visible audio gets exactly zero
        safe = (mask | ~has_audio[..., None])[:, None]
        out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=safe)
        out = out * has_audio[:, None, :, None].to(out.dtype)
        return self.to_out(out.transpose(1, 2).reshape(b, q_len, -1))


class GatedXAttnDense(nn.Module):
    def __init__(self, dim: int, dim_audio: int, cfg: XAttnConfig):
        super().__init__()
        self.attn = MaskedCrossAttention(dim, dim_audio, cfg.heads, cfg.dim_head)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, cfg.ff_mult * dim, bias=False),
            nn.GELU(),
            nn.Linear(cfg.ff_mult * dim, dim, bias=False),
        )
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, x, k, v, mask):
        x = x + self.attn_gate.tanh().to(x.dtype) * self.attn(x, k, v, mask)
        return x + self.ff_gate.tanh().to(x.dtype) * self.ff(x)
