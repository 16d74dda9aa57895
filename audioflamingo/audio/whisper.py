"""Whisper's encoder on the model's own windows, not on 30 s of padding.

Whisper was trained on 30-s inputs (3000 mel frames -> 1500 tokens, one per 20 ms). Padding every
10-s window to 30 s triples the encoder's cost and hands the model 1000 tokens of silence per
window. Here the encoder is built for the window length: the mel spectrogram is computed on the
window alone (n_fft 400, hop 160, Whisper's Slaney mel bank and log/clamp/scale), the positional
table is cut to the first `frames / 2` rows, and the output is every token of the window (dense,
AF2), optionally average-pooled to `tokens_per_window`.

This is not the same function as "pad to 30 s, then keep the first tokens": in the 30-s computation
every token attends to the padding too. How far apart the two are on real weights is measured in
docs/BENCHMARKS.md (bench/whisper_window.py); the parts before attention (mel, convolutions,
positions) are equal, which tests/audio/test_whisper_window.py checks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audioflamingo.audio.encoders import AudioEncoder
from audioflamingo.config import EncoderConfig, WindowConfig

SAMPLE_RATE, N_FFT, HOP = 16000, 400, 160


def whisper_log_mel(windows: torch.Tensor, mel_filters: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """(N, samples) -> (N, n_mels, samples // 160): Whisper's log-mel, the last STFT frame dropped,
    the 8-decade floor taken per window."""
    spec = torch.stft(windows.float(), N_FFT, HOP, window=window, center=True, return_complex=True)
    power = spec[..., :-1].abs() ** 2
    mel = torch.einsum("mf,nft->nmt", mel_filters, power)
    logmel = torch.log10(mel.clamp_min(1e-10))
    logmel = torch.maximum(logmel, logmel.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (logmel + 4.0) / 4.0


def whisper_mel_filters(n_mels: int) -> torch.Tensor:
    """(n_mels, 201): Whisper's Slaney bank over 0-8 kHz (equal to WhisperFeatureExtractor's, without
    importing its module; tests/audio/test_whisper_window.py compares the spectrograms)."""
    from audioflamingo.audio.mel import slaney_mel_filters

    return torch.tensor(slaney_mel_filters(N_FFT // 2 + 1, n_mels, SAMPLE_RATE), dtype=torch.float32).T


class WhisperWindowEncoder(AudioEncoder):
    """Whisper's encoder (audio/whisper_encoder.py, transformers' names) sized to one window. cfg.hf_config: the encoder's WhisperConfig
    keys (d_model, encoder_layers, ..., max_source_positions of the pretrained table)."""

    def __init__(self, cfg: EncoderConfig, window: WindowConfig):
        super().__init__()
        from audioflamingo.audio.whisper_encoder import WhisperEncoder

        if cfg.hf_config is None:
            raise ValueError(
                "whisper encoder needs hf_config (the base part's config: "
                "audioflamingo.audio.whisper.whisper_encoder_config)"
            )
        if window.sample_rate != SAMPLE_RATE:
            raise ValueError(
                f"whisper encoder reads 16 kHz audio: set window.sample_rate=16000, not {window.sample_rate}"
            )
        hf = dict(cfg.hf_config)
        self.pretrained_positions = int(hf.get("max_source_positions", 1500))
        frames = window.window_samples // HOP
        if window.window_samples % (2 * HOP):
            raise ValueError(
                f"whisper encoder: window of {window.window_samples} samples is not a multiple of "
                f"{2 * HOP} (20 ms, one output token)"
            )
        natural = frames // 2
        if natural > self.pretrained_positions:
            raise ValueError(
                f"whisper encoder: a {window.window_seconds:g}-s window needs {natural} positions, "
                f"the pretrained table has {self.pretrained_positions} (30 s)"
            )
        self.model = WhisperEncoder(hf, natural)
        self.natural_tokens = natural
        tokens = natural if cfg.tokens_per_window in (-1, 0) else cfg.tokens_per_window
        if natural % tokens:
            raise ValueError(
                f"whisper encoder: tokens_per_window {tokens} does not divide the window's "
                f"{natural} tokens (average pooling by a whole factor)"
            )
        self.pool = natural // tokens
        self.sample_rate, self.dim, self.tokens_per_window = SAMPLE_RATE, int(hf["d_model"]), tokens
        if cfg.dim != self.dim:
            raise ValueError(f"whisper encoder: encoder.dim is {cfg.dim}, the config's d_model is {self.dim}")
        n_mels = int(hf.get("num_mel_bins", 80))
        # Derived, not saved: the weights file holds the encoder's tensors only.
        self.register_buffer("mel_filters", whisper_mel_filters(n_mels), persistent=False)
        self.register_buffer("stft_window", torch.hann_window(N_FFT), persistent=False)

    def adapt_base_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A pretrained encoder state dict (30-s table) as this module's: `model.` prefix, the
        positional table cut to the window's first rows."""
        out = {f"model.{k}": v for k, v in state.items()}
        pos = out.get("model.embed_positions.weight")
        if pos is not None and pos.shape[0] >= self.natural_tokens:
            out["model.embed_positions.weight"] = pos[: self.natural_tokens].clone()
        return out

    def log_mel(self, windows: torch.Tensor) -> torch.Tensor:
        return whisper_log_mel(windows, self.mel_filters, self.stft_window)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        feats = self.log_mel(windows).to(self.model.conv1.weight.dtype)
        hidden = self.model(feats)  # (N, natural, d)
        if self.pool > 1:
            hidden = F.avg_pool1d(hidden.transpose(1, 2), self.pool).transpose(1, 2)
        return hidden


def whisper_encoder_config(
    part: str = "whisper-tiny.en-encoder", tokens_per_window: int = -1, frozen: bool = True
) -> EncoderConfig:
    """An EncoderConfig for a Whisper base part (converted at first use)."""
    from audioflamingo.base_parts import part_config

    hf = part_config(part)
    return EncoderConfig(
        kind="whisper",
        output="dense",
        dim=int(hf["d_model"]),
        tokens_per_window=tokens_per_window,
        frozen=frozen,
        hf_config=hf,
        n_mels=int(hf.get("num_mel_bins", 80)),
    )
