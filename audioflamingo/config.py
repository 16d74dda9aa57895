"""Typed configuration for every part of the model.

One dataclass per concept of the paper; `AudioFlamingoConfig` nests them and is what
`save_pretrained` writes to `config.json`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# What `AutoConfig` dispatches on (audioflamingo/hf registers it); written into every config.json.
MODEL_TYPE = "audioflamingo"


@dataclass
class WindowConfig:
    """How a clip is cut into sliding windows before the audio encoder.

    sample_rate: rate the encoder expects; every input is resampled to it.
    window_seconds: length of one window.
    hop_seconds: distance between window starts (== window_seconds means no overlap).
    max_windows: window budget per clip.
    long_audio: what to do with audio longer than the budget covers:
        "first" keeps the first `max_windows` windows (and warns),
        "spread" places `max_windows` windows evenly over the whole file.
    max_duration_seconds: inputs longer than this are refused outright.
    """

    sample_rate: int = 16000
    window_seconds: float = 10.0
    hop_seconds: float = 10.0
    max_windows: int = 30
    long_audio: Literal["first", "spread"] = "first"
    max_duration_seconds: float = 3600.0

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * self.sample_rate))


@dataclass
class EncoderConfig:
    """The (frozen by default) audio encoder that turns one window into features.

    kind: "mel_conv" (the project's own small encoder) or "hf_clap" (a transformers CLAP audio tower).
        "whisper": Whisper's encoder run on the window length (audio/whisper.py; hf_config holds its
        WhisperConfig keys, its weights come from a base part; tokens_per_window -1 keeps every 20-ms token).
    output: "pooled" gives one vector per window (AF1); "dense" gives the frame tokens of the last
        stage before pooling (AF2).
    dim: feature size of one token.
    tokens_per_window: 1 for pooled output, the number of frame tokens for dense output.
    frozen: keep the encoder out of training.
    hf_config / feature_extractor: the CLAP audio config and feature-extractor settings (hf_clap only),
        stored so that `from_pretrained` rebuilds the tower without the original directory.
    n_mels, hidden: mel_conv settings.
    projection: pooled hf_clap output's projection head: "hf" (transformers' CLAP, LAION layout) or
        "msclap" (MS-CLAP's residual projection, used by AF1's ClapCap).
    """

    kind: Literal["mel_conv", "hf_clap", "whisper"] = "mel_conv"
    output: Literal["pooled", "dense"] = "dense"
    dim: int = 64
    tokens_per_window: int = 4
    frozen: bool = True
    hf_config: dict[str, Any] | None = None
    feature_extractor: dict[str, Any] | None = None
    n_mels: int = 32
    hidden: int = 64
    projection: Literal["hf", "msclap"] = "hf"


@dataclass
class TransformationConfig:
    """Representation transformation layers between the encoder and the LM.

    AF1: post-LN encoder layers, ReLU FFN, sinusoidal positions (a table of `max_positions`),
    input scaled by sqrt(dim). AF2: the same block with rotary positions (base `rotary_base`)
    on the first `rotary_dim` channels of each head. rotary+sinusoidal: both (absolute time in the
    tokens themselves, which rotary alone barely gives; see model/transformation.py).

    padded_windows: how a clip shorter than `window.max_windows` windows is seen.
        "masked" (models trained here, and AF2, whose official code masks them too): only the clip's
        own windows exist; nothing attends to a missing one.
        "official" (set by `convert af1`): as the official AF1 code, the clip is filled up to
        `max_windows` with windows of digital silence, run through the encoder, and the layers
        here attend to them (unmasked); only the LM's cross-attention skips them. AF1's released
        weights were trained that way, so this reproduces their outputs on short clips.
    """

    dim: int = 64
    num_layers: int = 3
    num_heads: int = 8
    ffn_dim: int = 2048
    positions: Literal["sinusoidal", "rotary", "rotary+sinusoidal"] = "rotary"
    max_positions: int = 128
    rotary_base: float = 4096.0
    rotary_dim: int | None = None
    scale_input: bool = True
    eps: float = 1e-6
    padded_windows: Literal["masked", "official"] = "masked"


@dataclass
class XAttnConfig:
    """Gated xattn-dense layers inserted before every `every_n_layers`-th decoder block."""

    every_n_layers: int = 1
    heads: int = 8
    dim_head: int = 64
    ff_mult: int = 4


@dataclass
class AudioFlamingoConfig:
    """Everything needed to rebuild a model; `lm` is the Hugging Face config of the language model."""

    window: WindowConfig = field(default_factory=WindowConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    transformation: TransformationConfig = field(default_factory=TransformationConfig)
    xattn: XAttnConfig = field(default_factory=XAttnConfig)
    lm: dict[str, Any] = field(default_factory=dict)
    audio_token: str = "<audio>"
    sep_token: str = "<SEP>"
    eoc_token: str = "<EOC>"
    preset: str = "custom"
    prompt_style: str = "paper"  # "paper" templates, or "af1": the official AF1 inference prompts
    # Pretrained parts the weights file leaves out, loaded from installed packages (audioflamingo/base_parts):
    # module path inside the model ("lm", "encoder") -> {"name": base part, "sha256": its tensor digest}.
    base_parts: dict[str, dict[str, str]] = field(default_factory=dict)
    # The LM's linear layers on CPU: "float16" decodes with fbgemm fp16 copies of them (half the bytes
    # a step reads; model/fp16_weights.py), set for a model whose outputs were checked that way.
    cpu_lm_weights: Literal["float32", "float16"] = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AudioFlamingoConfig":
        # Top-level keys that are not fields (model_type, and what transformers' config adds:
        # architectures, transformers_version, special_token_ids, ...) describe the file, not the model.
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        return cls(
            window=WindowConfig(**d.pop("window", {})),
            encoder=EncoderConfig(**d.pop("encoder", {})),
            transformation=TransformationConfig(**d.pop("transformation", {})),
            xattn=XAttnConfig(**d.pop("xattn", {})),
            **d,
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "AudioFlamingoConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))
