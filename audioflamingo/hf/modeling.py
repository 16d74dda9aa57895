"""`AudioFlamingoForConditionalGeneration`: the model as a transformers `PreTrainedModel`.

It is the same network as `audioflamingo.model.flamingo.AudioFlamingo` (the class the CLI and the
Python API run, which must not import transformers): it holds that model's parts under the same
names, so the state dicts, hence the model.safetensors files, are one and the same, and generation
goes through the same audio-state and sampling code (model/fusion.py, model/sampling.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from transformers import PreTrainedModel

from audioflamingo.hf.configuration import AudioFlamingoHFConfig
from audioflamingo.model.flamingo import AudioFlamingo
from audioflamingo.model.fusion import AudioState
from audioflamingo.text.tokenizer import SpecialIds


class AudioFlamingoPreTrainedModel(PreTrainedModel):
    config_class = AudioFlamingoHFConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ("audio", "text")

    def _init_weights(self, module):
        # The parts initialise themselves when built (and the LM as its own transformers class does);
        # a second, generic initialisation here would undo e.g. the xattn gates' zeros.
        pass


class AudioFlamingoForConditionalGeneration(AudioFlamingoPreTrainedModel):
    """Inputs are what `AudioFlamingoProcessor` returns: input_ids/attention_mask (prompts with one
    `<audio>` token per clip), input_features (every clip's windows) and audio_windows (windows per
    clip); clips are matched to `<audio>` tokens in reading order, row by row."""

    def __init__(self, config: AudioFlamingoHFConfig, core: AudioFlamingo | None = None):
        super().__init__(config)
        if core is None:
            core = _build_core(config)
        # Not a registered submodule: its parts are registered here under their own names instead,
        # so this model's state dict is the core's (no prefix) and both read the same files.
        object.__setattr__(self, "core", core)
        for name, child in core.named_children():
            self.add_module(name, child)
        self.post_init()

    # ------------------------------------------------------------------ audio
    def audio_state(
        self, input_ids: torch.Tensor, input_features: torch.Tensor | None, audio_windows: torch.Tensor | None
    ) -> AudioState | None:
        if input_features is None or audio_windows is None:
            return None
        counts = [int(c) for c in audio_windows.reshape(-1).tolist()]
        per_row = (input_ids == self.core.special.audio).sum(dim=1).tolist()
        if sum(per_row) != len(counts):
            raise ValueError(f"{len(counts)} clips in input_features for {sum(per_row)} <audio> tokens in input_ids")
        frames = input_features.to(self.core.device, torch.float32)
        with torch.set_grad_enabled(self.training and any(p.requires_grad for p in self.core.encoder.parameters())):
            feats = (
                torch.cat([self.core.encoder(frames[s : s + 64]) for s in range(0, len(frames), 64)])
                if len(frames)
                else frames.new_zeros(0)
            )
        clips = list(torch.split(feats, counts)) if counts else []
        it = iter(clips)
        return self.core.audio_state([[next(it) for _ in range(n)] for n in per_row])

    # ------------------------------------------------------------------ text
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        audio_windows: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ):
        state = self.audio_state(input_ids, input_features, audio_windows)
        return self.core(input_ids, attention_mask, audio=state, labels=labels, **kwargs)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        audio_windows: torch.Tensor | None = None,
        **kwargs,
    ):
        """Greedy by default; do_sample/temperature/top_k/top_p/seed, num_beams, max_new_tokens as in
        `AudioFlamingo.generate`. Returns the prompt followed by the new tokens (decoder-only)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        state = self.audio_state(input_ids, input_features, audio_windows)
        return self.core.generate(input_ids, attention_mask, state, **kwargs)

    def can_generate(self) -> bool:  # type: ignore[override]
        return True

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, config=None, dtype=None, device_map=None, **kwargs):
        """A model directory (config.json + model.safetensors, from this class, `AudioFlamingo`,
        `audioflamingo init/train/convert`). Loaded strictly by the core loader, so every directory
        that loads there loads here, including ones written before this class existed."""
        device = device_map if isinstance(device_map, (str, torch.device)) and device_map != "auto" else "cpu"
        if isinstance(dtype, str):
            dtype = None if dtype == "auto" else getattr(torch, dtype)
        core = AudioFlamingo.from_pretrained(Path(pretrained_model_name_or_path), device=device, dtype=dtype)
        hf_config = AudioFlamingoHFConfig.from_core(
            core.config, special_token_ids=dataclasses.asdict(core.special), architectures=[cls.__name__]
        )
        return cls(hf_config, core=core)

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:  # type: ignore[override]
        """The core's files, with config.json in transformers' form (a superset: the core reads it)."""
        self.core.save_pretrained(save_directory)
        cfg = AudioFlamingoHFConfig.from_core(
            self.core.config,
            special_token_ids=dataclasses.asdict(self.core.special),
            architectures=[type(self).__name__],
        )
        cfg.save_pretrained(save_directory)
        self.config = cfg

    def train(self, mode: bool = True):
        super().train(mode)
        self.core.training = mode  # the core reads its own flag (encoder caching)
        return self


def _build_core(config: AudioFlamingoHFConfig) -> AudioFlamingo:
    """A randomly initialised model from a config alone (`AutoModel.from_config`)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if not config.special_token_ids:
        raise ValueError(
            "building an audioflamingo model from a config needs config.special_token_ids "
            "(the tokenizer's <audio>, <SEP>, <EOC>, eos, bos, pad ids)"
        )
    lm_cfg = dict(config.lm)
    lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(lm_cfg.pop("model_type"), **lm_cfg))
    ids = config.special_token_ids

    def required(name: str) -> int:
        value = ids.get(name)
        if value is None:
            raise ValueError(f"config.special_token_ids has no {name!r} id")
        return int(value)

    special = SpecialIds(
        audio=required("audio"),
        sep=required("sep"),
        eoc=required("eoc"),
        eos=ids.get("eos"),
        bos=ids.get("bos"),
        pad=required("pad"),
    )
    return AudioFlamingo(config.to_core(), lm, special)
