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
        # Laid out for the decode steps that read them: K as (B, heads, dim_head, K) in memory (a
        # transposed view), so q @ K^T streams it; V contiguous per head. Same shapes and values.
        keys = kv[:, :, 0].permute(0, 2, 3, 1).contiguous().transpose(2, 3)
        return keys, kv[:, :, 1].transpose(1, 2).contiguous()

    @staticmethod
    def prepare(mask: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(B, Q, K) visibility -> (attention mask, rows-with-audio factor). The same for all layers
        of a step, so the fusion computes it once per step, not once per layer. On CPU each is None
        when it would change nothing (every query sees every key; every query sees some audio); on
        other devices that check would sync the host (and break CUDA-graph capture), so it is skipped."""
        has_audio = mask.any(dim=-1)  # (B, Q): text with no visible audio gets exactly zero
        safe, keep = (mask | ~has_audio[..., None])[:, None], has_audio[:, None, :, None]
        if mask.device.type == "cpu":
            if bool(mask.all()):
                return None, None
            if bool(has_audio.all()):
                return safe, None
        return safe, keep

    def forward(
        self,
        x: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor,
        prepared: tuple[torch.Tensor | None, torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        b, q_len, _ = x.shape
        q = self.to_q(self.norm(x)).view(b, q_len, self.heads, self.dim_head).transpose(1, 2)
        if k.shape[2] == 0:
            return x.new_zeros(x.shape)
        attn_mask, keep = prepared if prepared is not None else self.prepare(mask)
        k, v = k.to(q.dtype), v.to(q.dtype)
        if q_len == 1 and q.device.type == "cpu":
            # A decode step: two batched GEMVs over the cached K/V beat SDPA's blocked kernel,
            # which is built for many queries (docs/BENCHMARKS.md, issue 21).
            s = (q @ k.transpose(2, 3)) * self.dim_head**-0.5
            if attn_mask is not None:
                s = s.masked_fill(~attn_mask, float("-inf"))
            out = s.softmax(-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        if keep is not None:
            out = out * keep.to(out.dtype)
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

    def pack(self) -> None:
        """Inference layout: the FF's first weight (4d x d, short rows) stored column-major, which
        a batch-1 step streams faster (see `model.lite.pack_columns`); names and values unchanged."""
        from audioflamingo.model.lite import transpose_storage

        with torch.no_grad():
            transpose_storage(self.ff[1].weight)

    def forward(self, x, k, v, mask, prepared=None):
        x = x + self.attn_gate.tanh().to(x.dtype) * self.attn(x, k, v, mask, prepared)
        return x + self.ff_gate.tanh().to(x.dtype) * self.ff(x)
