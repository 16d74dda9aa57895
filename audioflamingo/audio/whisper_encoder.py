"""Whisper's encoder as plain torch modules, with transformers' `WhisperEncoder` state-dict names.

Why not transformers' class: importing `transformers.models.whisper` costs about 2 s of a cold
start on 2 cores, more than the rest of `audioflamingo demo` with the v2 model (docs/BENCHMARKS.md),
and inference needs none of its options. tests/audio/test_whisper_encoder.py checks the outputs
against transformers' class on the same weights; training uses this module too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": F.gelu, "relu": F.relu}


class WhisperAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim, bias=False)  # Whisper's keys have no bias
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def split(y):
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)))
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class WhisperEncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, activation: str):
        super().__init__()
        self.self_attn = WhisperAttention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.act = ACTIVATIONS[activation]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.self_attn(self.self_attn_layer_norm(h))
        return h + self.fc2(self.act(self.fc1(self.final_layer_norm(h))))


class WhisperEncoder(nn.Module):
    """(N, n_mels, frames) log-mel -> (N, frames / 2, d_model). `hf`: the WhisperConfig keys of the
    base part; `positions`: rows of the positional table kept (frames / 2 of the model's window)."""

    def __init__(self, hf: dict, positions: int):
        super().__init__()
        d = int(hf["d_model"])
        activation = str(hf.get("activation_function", "gelu"))
        if activation not in ACTIVATIONS:
            raise ValueError(f"whisper encoder: activation_function {activation!r} is not one of {sorted(ACTIVATIONS)}")
        self.conv1 = nn.Conv1d(int(hf.get("num_mel_bins", 80)), d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(positions, d)
        self.embed_positions.requires_grad_(False)  # a fixed sinusoid table in Whisper
        self.layers = nn.ModuleList(
            WhisperEncoderLayer(d, int(hf["encoder_attention_heads"]), int(hf["encoder_ffn_dim"]), activation)
            for _ in range(int(hf["encoder_layers"]))
        )
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv2(F.gelu(self.conv1(input_features)))).transpose(1, 2)
        h = h + self.embed_positions.weight[: h.shape[1]]
        for layer in self.layers:
            h = layer(h)
        return self.layer_norm(h)
