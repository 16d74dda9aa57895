"""HTS-AT audio towers of the official CLAPs -> the transformers `ClapAudioModel` layout.

Both official encoders are HTS-AT (Swin transformer on a log-mel image). transformers ships the same
network as `ClapAudioModel` (ported from LAION-CLAP), so we load the official tensors into it
instead of carrying a copy of HTS-AT:

- AF1 ClapCap (`clapcap_weights_2023.pth`, MS-CLAP 2023): `clap.base.htsat.*` + an MS-CLAP
  projection (`clap.projection.{linear1,linear2,layer_norm}`: residual GELU MLP + LayerNorm, which
  `MsclapProjection` reproduces). The rest of that file is ClapCap's caption decoder: not used.
- AF2 AF-CLAP (`clap_ckpt/epoch_16.pt` or `clap.*` inside the checkpoint): LAION-CLAP's HTS-AT
  (`audio_branch.*`), feature fusion included.

The two codebases name the Swin parts the same way (qkv fused, norm1/norm2, mlp.fc1/fc2); only
their front end differs (tensors we check and drop: the STFT kernels and mel matrix are constants).
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from audioflamingo.errors import ModelLoadError

_BLOCK = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
    "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
    "attn.relative_position_index": "attention.self.relative_position_index",
}
_TOP = {
    "patch_embed.proj": "patch_embed.proj",
    "patch_embed.norm": "patch_embed.norm",
    "bn0": "batch_norm",
    "norm": "norm",
    "patch_embed.mel_conv2d": "patch_embed.mel_conv2d",
    "patch_embed.fusion_model.local_att.0": "patch_embed.fusion_model.local_att.0",
    "patch_embed.fusion_model.local_att.1": "patch_embed.fusion_model.local_att.1",
    "patch_embed.fusion_model.local_att.3": "patch_embed.fusion_model.local_att.3",
    "patch_embed.fusion_model.local_att.4": "patch_embed.fusion_model.local_att.4",
    "patch_embed.fusion_model.global_att.1": "patch_embed.fusion_model.global_att.1",
    "patch_embed.fusion_model.global_att.2": "patch_embed.fusion_model.global_att.2",
    "patch_embed.fusion_model.global_att.4": "patch_embed.fusion_model.global_att.4",
    "patch_embed.fusion_model.global_att.5": "patch_embed.fusion_model.global_att.5",
}
FRONT_END = ("spectrogram_extractor.", "logmel_extractor.")  # constants of torchlibrosa's front end
CLASSIFIER = ("tscam_conv.", "head.")  # AudioSet tagging head: not part of the embedding
DERIVED_SUFFIXES = ("attn_mask",)  # shifted-window masks, recomputed by transformers


class MsclapProjection(nn.Module):
    """MS-CLAP's projection: LayerNorm(h + Linear(GELU(h))), h = Linear(x); bias-free linears."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x)
        return self.layer_norm(h + self.linear2(F.gelu(h)))


def htsat_to_hf(state: dict[str, torch.Tensor], prefix: str = "audio_model.audio_encoder.") -> tuple[dict, dict]:
    """Official HTS-AT tensors (keys relative to the HTS-AT module) -> (HF tensors, dropped key -> why).

    Raises ModelLoadError listing any key that is neither mapped nor a known constant/unused part."""
    out: dict[str, torch.Tensor] = {}
    dropped: dict[str, str] = {}
    unknown = []
    for k, v in state.items():
        if k.startswith(FRONT_END):
            dropped[k] = "front-end constant (checked against the feature extractor)"
            continue
        if k.startswith(CLASSIFIER):
            dropped[k] = "AudioSet classifier head, unused by the embedding"
            continue
        if k.endswith(DERIVED_SUFFIXES):
            dropped[k] = "recomputed buffer"
            continue
        m = re.match(r"^layers\.(\d+)\.blocks\.(\d+)\.(.+)$", k)
        if m:
            i, j, rest = m.groups()
            base = f"{prefix}layers.{i}.blocks.{j}."
            if rest in ("attn.qkv.weight", "attn.qkv.bias"):
                leaf = rest.rsplit(".", 1)[1]
                for name, t in zip(("query", "key", "value"), v.chunk(3, dim=0)):
                    out[f"{base}attention.self.{name}.{leaf}"] = t.clone()
            elif rest in _BLOCK:  # tables stored directly on the attention module
                out[base + _BLOCK[rest]] = v
            elif rest.rpartition(".")[0] in _BLOCK:
                module, _, leaf = rest.rpartition(".")
                out[f"{base}{_BLOCK[module]}.{leaf}"] = v
            else:
                unknown.append(k)
            continue
        m = re.match(r"^layers\.(\d+)\.downsample\.(reduction|norm)\.(weight|bias)$", k)
        if m:
            out[f"{prefix}layers.{m.group(1)}.downsample.{m.group(2)}.{m.group(3)}"] = v
            continue
        head, _, leaf = k.rpartition(".")
        if head in _TOP:
            out[f"{prefix}{_TOP[head]}.{leaf}"] = v
            continue
        unknown.append(k)
    if unknown:
        raise ModelLoadError(
            f"{len(unknown)} HTS-AT tensor(s) with no counterpart in transformers' ClapAudioModel: "
            f"{sorted(unknown)[:12]}"
        )
    return out, dropped


def check_front_end(state: dict[str, torch.Tensor], feature_extractor) -> None:
    """The official mel matrix must equal the one our feature extractor uses (else outputs would differ)."""
    mel = state.get("logmel_extractor.melW")
    if mel is None:
        return
    ours = torch.as_tensor(feature_extractor.mel_filters_slaney, dtype=torch.float32)
    if ours.shape != mel.shape or not torch.allclose(ours, mel.float(), atol=1e-5):
        raise ModelLoadError(
            "the checkpoint's mel filterbank differs from the feature extractor's "
            f"(shape {tuple(mel.shape)} vs {tuple(ours.shape)}): wrong sample rate or mel settings"
        )
