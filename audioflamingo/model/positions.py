"""Position encodings of the representation transformation layers."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """The (1, n_position, dim) sin/cos table of 'Attention is all you need' (AF1's `pos_table`)."""
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    i = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / dim)
    table = torch.where(i.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()[None]


class SinusoidalPositions(nn.Module):
    def __init__(self, dim: int, n_position: int):
        super().__init__()
        # Persistent, so official checkpoints' `pos_table` loads and is checked like any weight.
        self.register_buffer("pos_table", sinusoid_table(n_position, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pos_table.shape[1]:
            raise ValueError(f"{x.shape[1]} audio tokens exceed the sinusoid table of {self.pos_table.shape[1]}")
        return x + self.pos_table[:, : x.shape[1]].to(x.dtype)


class RotaryTime(nn.Module):
    """Rotary positions over audio time steps (AF2: base 4096, rotate-half layout, partial rotary)."""

    def __init__(self, rotary_dim: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float32) / rotary_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.rotary_dim = rotary_dim

    def angles(self, seq_len: int, device: torch.device) -> torch.Tensor:
        t = torch.arange(seq_len, device=device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq.to(device))
        return torch.cat((freqs, freqs), dim=-1)  # (seq, rotary_dim)

    @staticmethod
    def apply(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """x: (B, heads, seq, head_dim); only the first rotary_dim channels rotate."""
        rd = angles.shape[-1]
        xr, xp = x[..., :rd].float(), x[..., rd:]
        x1, x2 = xr.chunk(2, dim=-1)
        rotated = torch.cat((-x2, x1), dim=-1)
        out = xr * angles.cos() + rotated * angles.sin()
        return torch.cat((out.to(x.dtype), xp), dim=-1)


def default_rotary_dim(dim: int, heads: int) -> int:
    # The official AF2 choice: half the head size, but never below 32 channels.
    return max((dim // heads) // 2, 32)


__all__ = ["SinusoidalPositions", "RotaryTime", "sinusoid_table", "default_rotary_dim", "math"]
