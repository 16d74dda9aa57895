"""Whisper's encoder from a CTranslate2 `model.bin` (the format faster-whisper uses) to the state
dict and config of transformers' `WhisperEncoder`.

The file is a flat list of named variables (binary version 6: name, rank, dims, dtype id, byte
count, raw bytes) followed by aliases. Only `encoder/...` variables are read. CTranslate2 keeps the
query, key and value projections of self-attention fused (`linear_0`, 3*d rows, in that order; the
key bias, absent from Whisper, is stored as zeros) and names layer norms gamma/beta.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

# DataType order of CTranslate2 (types.h): index -> numpy dtype; bfloat16 is read as raw uint16.
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, "bfloat16")


class CT2FormatError(ValueError):
    pass


def read_ct2_variables(path: str | Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 model.bin whose names start with `prefix` (others are skipped)."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:

        def take(fmt: str):
            size = struct.calcsize("<" + fmt)
            raw = f.read(size)
            if len(raw) != size:
                raise CT2FormatError(f"{path}: truncated CTranslate2 model file")
            return struct.unpack("<" + fmt, raw)

        def text() -> str:
            (n,) = take("H")
            raw = f.read(n)
            if len(raw) != n:
                raise CT2FormatError(f"{path}: truncated CTranslate2 model file")
            return raw[:-1].decode("utf-8", errors="replace")

        (version,) = take("I")
        if version < 5 or version > 6:
            raise CT2FormatError(f"{path}: CTranslate2 binary version {version} (this reader knows 5 and 6)")
        text()  # the model spec's name, e.g. WhisperSpec
        take("I")  # spec revision
        (count,) = take("I")
        for _ in range(count):
            name = text()
            (rank,) = take("B")
            shape = take("I" * rank) if rank else ()
            (dtype_id,) = take("B")
            (nbytes,) = take("I")
            if not name.startswith(prefix):
                f.seek(nbytes, 1)
                continue
            if dtype_id >= len(_CT2_DTYPES):
                raise CT2FormatError(f"{path}: {name}: unknown dtype id {dtype_id}")
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise CT2FormatError(f"{path}: truncated CTranslate2 model file (in {name})")
            dt = _CT2_DTYPES[dtype_id]
            if dt == "bfloat16":
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dt)
            out[name] = arr.reshape(shape).copy()
    return out


def whisper_encoder_from_ct2(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict of transformers' WhisperEncoder in float32, WhisperConfig kwargs) from model.bin."""
    v = read_ct2_variables(path, "encoder/")
    if "encoder/conv1/weight" not in v:
        raise CT2FormatError(f"{path}: no Whisper encoder variables (encoder/conv1/weight)")
    layers = sorted(
        {
            int(k.split("/")[1][len("layer_") :])
            for k in v
            if k.split("/")[1].startswith("layer_") and k.split("/")[1][6:].isdigit()
        }
    )
    if layers != list(range(len(layers))):
        raise CT2FormatError(f"{path}: encoder layers are not numbered 0..n-1: {layers}")
    d_model = v["encoder/conv1/weight"].shape[0]
    heads = int(v["encoder/num_heads"]) if "encoder/num_heads" in v else None

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(v[name].astype(np.float32))

    sd = {
        "conv1.weight": t("encoder/conv1/weight"),
        "conv1.bias": t("encoder/conv1/bias"),
        "conv2.weight": t("encoder/conv2/weight"),
        "conv2.bias": t("encoder/conv2/bias"),
        "embed_positions.weight": t("encoder/position_encodings/encodings"),
        "layer_norm.weight": t("encoder/layer_norm/gamma"),
        "layer_norm.bias": t("encoder/layer_norm/beta"),
    }
    for i in layers:
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = t(f"{src}/self_attention/linear_0/weight"), t(f"{src}/self_attention/linear_0/bias")
        if qkv_w.shape[0] != 3 * d_model:
            raise CT2FormatError(
                f"{path}: {src}/self_attention/linear_0 has {qkv_w.shape[0]} rows, expected {3 * d_model}"
            )
        (qw, kw, vw), (qb, kb, vb) = qkv_w.chunk(3, 0), qkv_b.chunk(3, 0)
        if kb.abs().max() != 0:
            raise CT2FormatError(f"{path}: {src}: non-zero key bias (Whisper's key projection has none)")
        sd.update(
            {
                f"{dst}.self_attn.q_proj.weight": qw,
                f"{dst}.self_attn.q_proj.bias": qb,
                f"{dst}.self_attn.k_proj.weight": kw,
                f"{dst}.self_attn.v_proj.weight": vw,
                f"{dst}.self_attn.v_proj.bias": vb,
                f"{dst}.self_attn.out_proj.weight": t(f"{src}/self_attention/linear_1/weight"),
                f"{dst}.self_attn.out_proj.bias": t(f"{src}/self_attention/linear_1/bias"),
                f"{dst}.self_attn_layer_norm.weight": t(f"{src}/self_attention/layer_norm/gamma"),
                f"{dst}.self_attn_layer_norm.bias": t(f"{src}/self_attention/layer_norm/beta"),
                f"{dst}.fc1.weight": t(f"{src}/ffn/linear_0/weight"),
                f"{dst}.fc1.bias": t(f"{src}/ffn/linear_0/bias"),
                f"{dst}.fc2.weight": t(f"{src}/ffn/linear_1/weight"),
                f"{dst}.fc2.bias": t(f"{src}/ffn/linear_1/bias"),
                f"{dst}.final_layer_norm.weight": t(f"{src}/ffn/layer_norm/gamma"),
                f"{dst}.final_layer_norm.bias": t(f"{src}/ffn/layer_norm/beta"),
            }
        )
    sd = {k: x.contiguous() for k, x in sd.items()}
    ffn = sd["layers.0.fc1.weight"].shape[0]
    if heads is None:
        heads = d_model // 64  # Whisper's head width is 64 in every released size
    config = {
        "d_model": int(d_model),
        "encoder_layers": len(layers),
        "encoder_attention_heads": heads,
        "encoder_ffn_dim": int(ffn),
        "num_mel_bins": int(sd["conv1.weight"].shape[1]),
        "max_source_positions": int(sd["embed_positions.weight"].shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
    }
    return sd, config
