"""Test helper: a tiny random Whisper encoder written as a CTranslate2 model.bin (binary version 6),
so the reader and the base-part machinery are tested without the real package."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

TINY = {
    "d_model": 64,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 128,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "activation_function": "gelu",
    "scale_embedding": False,
}


def tiny_whisper_encoder(seed: int = 0):
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(seed)
    enc = WhisperEncoder(WhisperConfig(**TINY)).eval()
    with torch.no_grad():  # random norms and biases too, so a swapped name shows
        for p in enc.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return enc


def write_ct2_whisper(path: Path, enc, dtype=np.float32) -> None:
    sd = {k: v.detach().numpy() for k, v in enc.state_dict().items()}
    d = sd["conv1.weight"].shape[0]
    var = {
        "encoder/conv1/weight": sd["conv1.weight"],
        "encoder/conv1/bias": sd["conv1.bias"],
        "encoder/conv2/weight": sd["conv2.weight"],
        "encoder/conv2/bias": sd["conv2.bias"],
        "encoder/position_encodings/encodings": sd["embed_positions.weight"],
        "encoder/layer_norm/gamma": sd["layer_norm.weight"],
        "encoder/layer_norm/beta": sd["layer_norm.bias"],
    }
    for i in range(TINY["encoder_layers"]):
        s, o = f"layers.{i}.", f"encoder/layer_{i}/"
        var[o + "self_attention/linear_0/weight"] = np.concatenate(
            [sd[s + "self_attn.q_proj.weight"], sd[s + "self_attn.k_proj.weight"], sd[s + "self_attn.v_proj.weight"]]
        )
        var[o + "self_attention/linear_0/bias"] = np.concatenate(
            [sd[s + "self_attn.q_proj.bias"], np.zeros(d, np.float32), sd[s + "self_attn.v_proj.bias"]]
        )
        var[o + "self_attention/linear_1/weight"] = sd[s + "self_attn.out_proj.weight"]
        var[o + "self_attention/linear_1/bias"] = sd[s + "self_attn.out_proj.bias"]
        var[o + "self_attention/layer_norm/gamma"] = sd[s + "self_attn_layer_norm.weight"]
        var[o + "self_attention/layer_norm/beta"] = sd[s + "self_attn_layer_norm.bias"]
        var[o + "ffn/linear_0/weight"], var[o + "ffn/linear_0/bias"] = sd[s + "fc1.weight"], sd[s + "fc1.bias"]
        var[o + "ffn/linear_1/weight"], var[o + "ffn/linear_1/bias"] = sd[s + "fc2.weight"], sd[s + "fc2.bias"]
        var[o + "ffn/layer_norm/gamma"] = sd[s + "final_layer_norm.weight"]
        var[o + "ffn/layer_norm/beta"] = sd[s + "final_layer_norm.bias"]
    var = {k: v.astype(dtype) for k, v in var.items()}
    var["encoder/num_heads"] = np.array(TINY["encoder_attention_heads"], np.int16)
    var["decoder/embeddings/weight"] = np.zeros((4, d), dtype)  # skipped by the reader
    ids = {np.dtype(np.float32): 0, np.dtype(np.int16): 2, np.dtype(np.float16): 4}

    def s(x: str) -> bytes:
        return struct.pack("<H", len(x) + 1) + x.encode() + b"\0"

    out = struct.pack("<I", 6) + s("WhisperSpec") + struct.pack("<II", 3, len(var))
    for name, v in var.items():
        raw = np.ascontiguousarray(v).tobytes()
        out += s(name) + struct.pack("<B", v.ndim) + struct.pack(f"<{v.ndim}I", *v.shape)
        out += struct.pack("<BI", ids[v.dtype], len(raw)) + raw
    out += struct.pack("<I", 1) + s("decoder/projection/weight") + s("decoder/embeddings/weight")
    Path(path).write_bytes(out)
