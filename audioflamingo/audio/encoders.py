"""Audio encoders: one window of samples in, `tokens_per_window` feature vectors out.

`AudioEncoder` is the interface the model needs. Two implementations:
- `HFClapEncoder` wraps a transformers CLAP audio tower loaded from a local directory
  (pooled: one vector per window, AF1; dense: the frame tokens of the last Swin stage, AF2).
- `MelConvEncoder` is the project's own small encoder (log-mel + strided convolutions), used by the
  `tiny` preset and as the starting point for the default model.
Both are deterministic: no random crops, no random fusion chunks.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audioflamingo.config import EncoderConfig, WindowConfig


class AudioEncoder(nn.Module):
    """Maps windows (N, window_samples) at `sample_rate` to features (N, tokens_per_window, dim)."""

    sample_rate: int
    dim: int
    tokens_per_window: int

    def forward(self, windows: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class MelConvEncoder(AudioEncoder):
    def __init__(self, cfg: EncoderConfig, window: WindowConfig):
        super().__init__()
        from audioflamingo.audio.mel import slaney_mel_filters

        self.sample_rate = window.sample_rate
        self.dim, self.tokens_per_window = cfg.dim, cfg.tokens_per_window
        if cfg.output == "pooled" and cfg.tokens_per_window != 1:
            raise ValueError("pooled output gives one token per window: set tokens_per_window=1")
        self.output = cfg.output
        sr = window.sample_rate
        self.win_length = int(round(0.025 * sr))
        self.hop = int(round(0.010 * sr))
        self.n_fft = 1 << (self.win_length - 1).bit_length()
        fb = slaney_mel_filters(self.n_fft // 2 + 1, cfg.n_mels, sr)
        # Derived from the config, so not saved: weights files stay encoder-agnostic.
        self.register_buffer("mel_fb", torch.tensor(fb, dtype=torch.float32), persistent=False)
        self.register_buffer("stft_window", torch.hann_window(self.win_length), persistent=False)
        h = cfg.hidden
        self.conv1 = nn.Conv1d(cfg.n_mels, h, 3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(h, h, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(h, h, 3, stride=2, padding=1)
        self.proj = nn.Linear(h, cfg.dim)

    def log_mel(self, windows: torch.Tensor) -> torch.Tensor:
        spec = (
            torch.stft(
                windows.float(),
                self.n_fft,
                self.hop,
                self.win_length,
                self.stft_window.float(),
                center=True,
                return_complex=True,
            )
            .abs()
            .pow(2)
        )
        # The front end stays float32 when the model is cast to half precision (--dtype): the
        # buffers are cast with it, and the log of a half-precision power spectrum loses the quiet parts.
        mel = torch.einsum("nft,fm->nmt", spec, self.mel_fb.float())
        logmel = torch.log10(mel.clamp_min(1e-10))
        # Whisper-style dynamic-range clamp keeps silence from dominating the scale.
        logmel = torch.maximum(logmel, logmel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (logmel + 4.0) / 4.0

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        x = self.log_mel(windows).to(self.conv1.weight.dtype)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = F.gelu(self.conv3(x))
        tokens = 1 if self.output == "pooled" else self.tokens_per_window
        x = F.adaptive_avg_pool1d(x, tokens).transpose(1, 2)
        return self.proj(x)


class HFClapEncoder(AudioEncoder):
    """A transformers CLAP audio tower (HTS-AT) with its feature extractor."""

    def __init__(self, cfg: EncoderConfig, window: WindowConfig):
        super().__init__()
        from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapFeatureExtractor

        if cfg.hf_config is None or cfg.feature_extractor is None:
            raise ValueError(
                "hf_clap encoder needs hf_config and feature_extractor (use HFClapEncoder.config_from_directory)"
            )
        self.model = ClapAudioModelWithProjection(ClapAudioConfig(**cfg.hf_config))
        if cfg.output == "dense":  # frame tokens come before the projection: no unused weights to carry
            self.model.audio_projection = nn.Identity()
        elif cfg.projection == "msclap":
            from audioflamingo.convert.htsat import MsclapProjection

            c = self.model.config
            self.model.audio_projection = MsclapProjection(c.hidden_size, c.projection_dim)
        fe = dict(cfg.feature_extractor)
        # MS-CLAP's HTS-AT computes its mel matrix for 32 kHz whatever the input rate: kept as is.
        mel_rate = fe.pop("mel_sample_rate", None)
        fe["sampling_rate"] = mel_rate or window.sample_rate
        # Window length == the extractor's max length, so it never crops (randomly or not) or pads.
        fe["max_length_s"] = window.window_seconds
        self.feature_extractor = ClapFeatureExtractor(**fe)
        self.feature_extractor.nb_max_samples = window.window_samples
        self.sample_rate, self.output = window.sample_rate, cfg.output
        self.dim, self.tokens_per_window = cfg.dim, cfg.tokens_per_window

    @staticmethod
    def config_from_directory(path: str | Path, output: str) -> EncoderConfig:
        """Read a local ClapModel / ClapAudioModel directory's configs into an EncoderConfig."""
        from transformers import ClapAudioConfig, ClapFeatureExtractor

        audio_cfg = ClapAudioConfig.from_pretrained(str(path))
        fe = ClapFeatureExtractor.from_pretrained(str(path)).to_dict()
        keep = (
            "feature_size",
            "sampling_rate",
            "hop_length",
            "fft_window_size",
            "frequency_min",
            "frequency_max",
            "padding_value",
            "max_length_s",
        )
        fe = {k: fe[k] for k in keep if k in fe}
        if output == "pooled":
            dim, tokens = audio_cfg.projection_dim, 1
        else:
            dim = int(audio_cfg.patch_embeds_hidden_size * 2 ** (len(audio_cfg.depths) - 1))
            tokens = -1  # measured on first use by `probe_tokens`
        return EncoderConfig(
            kind="hf_clap",
            output=output,
            dim=dim,
            tokens_per_window=tokens,
            hf_config=audio_cfg.to_dict(),
            feature_extractor=fe,
        )

    def load_directory_weights(self, path: str | Path) -> None:
        """Load the audio tower of a local ClapModel, ClapAudioModelWithProjection or ClapAudioModel
        directory, strictly: every tensor of the tower must be there (text-tower tensors are dropped)."""
        from audioflamingo.errors import ModelLoadError

        state = read_weight_files(path)
        mapped = {}
        for k, v in state.items():
            if k.startswith(("text_model.", "text_projection.", "logit_scale")):
                continue
            if k.startswith("audio_encoder."):  # a bare ClapAudioModel
                k = "audio_model." + k
            mapped[k] = v
        own = self.model.state_dict()
        if self.output == "dense":  # the projection is not used for frame tokens
            mapped = {k: v for k, v in mapped.items() if not k.startswith("audio_projection.")}
        missing = sorted(set(own) - set(mapped))
        if any(k.startswith("audio_projection.") for k in missing):
            raise ModelLoadError(
                f"{path}: no audio projection weights: pooled output needs a ClapModel or "
                "ClapAudioModelWithProjection checkpoint (or use output='dense')"
            )
        unexpected = sorted(set(mapped) - set(own))
        if missing or unexpected:
            raise ModelLoadError(
                f"{path}: CLAP weights do not match the config: missing {missing[:8]}, unexpected {unexpected[:8]}"
            )
        for k, v in mapped.items():
            if own[k].shape != v.shape:
                raise ModelLoadError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
        self.model.load_state_dict(mapped, strict=False)  # strictness checked above, projection may be absent

    def features(self, windows: torch.Tensor) -> torch.Tensor:
        arrays = [w.detach().cpu().float().numpy() for w in windows]
        # Fusion towers (AF2's AF-CLAP) read the 4-channel "mel_fusion" input on the HTK mel scale, as
        # LAION-CLAP's torchaudio front end; windows are exactly max length, so nothing is cropped or padded.
        fusion = bool(self.model.config.enable_fusion)
        feats = self.feature_extractor(
            arrays,
            sampling_rate=self.feature_extractor.sampling_rate,
            return_tensors="pt",
            truncation="fusion" if fusion else "rand_trunc",
            padding="repeatpad" if fusion else "pad",
        )
        return feats["input_features"].to(windows.device)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        feats = self.features(windows).to(next(self.model.parameters()).dtype)
        out = self.model(
            input_features=feats, is_longer=torch.zeros(len(windows), 1, dtype=torch.bool, device=feats.device)
        )
        if self.output == "pooled":
            return out.audio_embeds[:, None, :]
        hidden = out.last_hidden_state  # (N, C, freq, time) after the final norm, before pooling
        return hidden.flatten(2).transpose(1, 2)


def probe_tokens(encoder: AudioEncoder, window: WindowConfig) -> int:
    with torch.no_grad():
        return int(encoder(torch.zeros(1, window.window_samples)).shape[1])


def build_encoder(cfg: EncoderConfig, window: WindowConfig) -> AudioEncoder:
    if cfg.kind == "mel_conv":
        enc: AudioEncoder = MelConvEncoder(cfg, window)
    elif cfg.kind == "hf_clap":
        enc = HFClapEncoder(cfg, window)
        if cfg.tokens_per_window < 0:
            cfg.tokens_per_window = enc.tokens_per_window = probe_tokens(enc, window)
    elif cfg.kind == "whisper":  # Whisper's encoder on the window length (audio/whisper.py)
        from audioflamingo.audio.whisper import WhisperWindowEncoder

        enc = WhisperWindowEncoder(cfg, window)
        cfg.tokens_per_window = enc.tokens_per_window
    else:
        raise ValueError(f"unknown encoder kind {cfg.kind!r} (use 'mel_conv', 'hf_clap' or 'whisper')")
    if cfg.frozen:
        enc.requires_grad_(False)
        enc.eval()
    return enc


def read_weight_files(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a local HF model directory: safetensors shards, or pickles read with weights_only."""
    from safetensors.torch import load_file

    from audioflamingo.errors import ModelLoadError
    from audioflamingo.files import check_safetensors, torch_load

    d = Path(path)
    files = sorted(d.glob("*.safetensors"))
    if files:
        out: dict[str, torch.Tensor] = {}
        for f in files:
            check_safetensors(f)  # a truncated or foreign file is named in one line
            out.update(load_file(str(f)))
        return out
    files = sorted(d.glob("pytorch_model*.bin"))
    if files:
        out = {}
        for f in files:
            state = torch_load(f)  # weights only: a pickle of anything else is refused, never run
            if not isinstance(state, dict):
                raise ModelLoadError(f"{f}: not a state dict")
            out.update(state)
        return out
    raise ModelLoadError(f"{d}: no *.safetensors or pytorch_model*.bin weight files")
