"""`AudioFlamingoHFConfig`: the model directory's config.json as a transformers `PretrainedConfig`.

The file keeps the layout `audioflamingo.config.AudioFlamingoConfig` writes (window, encoder,
transformation, xattn and lm blocks), so one config.json serves both the lean runtime (which never
imports transformers) and the Auto classes. `model_type` is what `AutoConfig` dispatches on.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from audioflamingo.config import MODEL_TYPE, AudioFlamingoConfig

# The blocks of the core dataclass config, copied as plain dicts.
_BLOCKS = ("window", "encoder", "transformation", "xattn")
_SCALARS = ("audio_token", "sep_token", "eoc_token", "preset", "prompt_style")


class AudioFlamingoHFConfig(PretrainedConfig):
    """window/encoder/transformation/xattn: the dataclass blocks of `AudioFlamingoConfig` as dicts;
    lm: the language model's transformers config dict (with its own model_type).
    special_token_ids: ids of <audio>, <SEP>, <EOC>, eos, bos, pad in the tokenizer; written by
    `save_pretrained` so a model can be built from its config alone (older directories lack it: the
    loader reads them from the directory's tokenizer)."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        window: dict | None = None,
        encoder: dict | None = None,
        transformation: dict | None = None,
        xattn: dict | None = None,
        lm: dict | None = None,
        audio_token: str = "<audio>",
        sep_token: str = "<SEP>",
        eoc_token: str = "<EOC>",
        preset: str = "custom",
        prompt_style: str = "paper",
        special_token_ids: dict[str, int | None] | None = None,
        **kwargs,
    ):
        defaults = AudioFlamingoConfig().to_dict()
        self.window = window if window is not None else defaults["window"]
        self.encoder = encoder if encoder is not None else defaults["encoder"]
        self.transformation = transformation if transformation is not None else defaults["transformation"]
        self.xattn = xattn if xattn is not None else defaults["xattn"]
        self.lm = dict(lm or {})
        self.audio_token, self.sep_token, self.eoc_token = audio_token, sep_token, eoc_token
        self.preset, self.prompt_style = preset, prompt_style
        self.special_token_ids = special_token_ids
        super().__init__(**kwargs)

    def to_core(self) -> AudioFlamingoConfig:
        """The dataclass config the model classes are built from."""
        d: dict[str, Any] = {k: getattr(self, k) for k in _BLOCKS + _SCALARS}
        d["lm"] = dict(self.lm)
        return AudioFlamingoConfig.from_dict(d)

    @classmethod
    def from_core(cls, cfg: AudioFlamingoConfig, **kwargs) -> "AudioFlamingoHFConfig":
        d = cfg.to_dict()
        d.pop("model_type", None)
        return cls(**d, **kwargs)
