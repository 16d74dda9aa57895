"""Representation transformation layers: self-attention over one clip's window features.

Post-LN encoder blocks (attention -> residual -> LayerNorm; ReLU FFN -> residual -> LayerNorm),
input scaled by sqrt(d), then positions, then a LayerNorm, as AF1/AF2 do. Unlike the official AF1
code, padded windows are masked as keys, and their outputs are zeroed so they can never leak;
`padded_windows="official"` (imported AF1 weights) lets the caller pass silence windows that are
attended, as the official code did (see TransformationConfig).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audioflamingo.config import TransformationConfig
from audioflamingo.model.positions import RotaryTime, SinusoidalPositions, default_rotary_dim


def _safe_key_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, K) bool -> (B, 1, 1, K); rows with no valid key attend everywhere (output is zeroed later)."""
    empty = ~valid.any(dim=-1, keepdim=True)
    return (valid | empty)[:, None, None, :]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.w_qs = nn.Linear(dim, dim, bias=False)
        self.w_ks = nn.Linear(dim, dim, bias=False)
        self.w_vs = nn.Linear(dim, dim, bias=False)
        self.fc = nn.Linear(dim, dim, bias=False)
        self.layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x, key_mask, rotary: RotaryTime | None, angles):
        b, n, d = x.shape
        q, k, v = (
            w(x).view(b, n, self.heads, d // self.heads).transpose(1, 2) for w in (self.w_qs, self.w_ks, self.w_vs)
        )
        if rotary is not None:
            q, k = rotary.apply(q, angles), rotary.apply(k, angles)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        out = self.fc(out.transpose(1, 2).reshape(b, n, d))
        return self.layer_norm(out + x)


class FeedForwardPostLN(nn.Module):
    def __init__(self, dim: int, hidden: int, eps: float):
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.w_2 = nn.Linear(hidden, dim)
        self.layer_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x):
        return self.layer_norm(self.w_2(F.relu(self.w_1(x))) + x)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformationConfig):
        super().__init__()
        self.slf_attn = SelfAttention(cfg.dim, cfg.num_heads, cfg.eps)
        self.pos_ffn = FeedForwardPostLN(cfg.dim, cfg.ffn_dim, cfg.eps)

    def forward(self, x, key_mask, rotary, angles):
        return self.pos_ffn(self.slf_attn(x, key_mask, rotary, angles))


# rotary (AF2) only moves attention scores, so its outputs carry little absolute time (a linear
# probe finds a token's window index 27% of the time, majority class 19%) and the LM cannot tell
# when a sound happens; rotary+sinusoidal adds AF1's table to the input as well (66% after 400
# fine-tuning steps of the default model, though its answers did not use it yet: docs/MODEL_CARD.md).
POSITIONS = ("sinusoidal", "rotary", "rotary+sinusoidal")


class RepresentationTransformation(nn.Module):
    """(B, L, dim) features of one clip each, with a (B, L) validity mask -> (B, L, dim)."""

    def __init__(self, cfg: TransformationConfig):
        super().__init__()
        if cfg.dim % cfg.num_heads:
            raise ValueError(f"transformation dim {cfg.dim} is not divisible by {cfg.num_heads} heads")
        self.cfg = cfg
        self.position_enc: nn.Module | None = None
        self.rotary: RotaryTime | None = None
        if cfg.padded_windows not in ("masked", "official"):
            raise ValueError(f"unknown padded_windows {cfg.padded_windows!r} (use 'masked' or 'official')")
        if cfg.positions not in POSITIONS:
            raise ValueError(f"unknown positions {cfg.positions!r} (use one of {', '.join(POSITIONS)})")
        if "sinusoidal" in cfg.positions:
            self.position_enc = SinusoidalPositions(cfg.dim, cfg.max_positions)
        if "rotary" in cfg.positions:
            rd = cfg.rotary_dim or default_rotary_dim(cfg.dim, cfg.num_heads)
            self.rotary = RotaryTime(min(rd, cfg.dim // cfg.num_heads), cfg.rotary_base)
        self.layer_norm = nn.LayerNorm(cfg.dim, eps=cfg.eps)
        self.layer_stack = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))

    def forward(self, x: torch.Tensor, valid: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        """attend: (B, L) keys the layers may attend to (default `valid`); outputs outside `valid` are zero."""
        if self.cfg.scale_input:
            x = x * self.cfg.dim**0.5
        if self.position_enc is not None:
            x = self.position_enc(x)
        x = self.layer_norm(x)
        angles = self.rotary.angles(x.shape[1], x.device) if self.rotary is not None else None
        key_mask = _safe_key_mask(valid if attend is None else attend)
        for layer in self.layer_stack:
            x = layer(x, key_mask, self.rotary, angles)
        return x * valid[..., None].to(x.dtype)
