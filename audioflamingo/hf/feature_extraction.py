"""`AudioFlamingoFeatureExtractor`: audio in, the model's sliding windows out.

The model's encoder computes its own spectrogram from each window (audio/encoders.py), so the
"features" here are the windows themselves: mono, resampled, peak-normalised samples cut exactly as
`audio.windows.make_windows` cuts them (the same code the CLI and the Python API use).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from audioflamingo.audio.windows import make_windows
from audioflamingo.config import WindowConfig

FEATURE_NAME = "preprocessor_config.json"


class AudioFlamingoFeatureExtractor(FeatureExtractionMixin):
    """Settings are those of `WindowConfig` (window_seconds, hop_seconds, max_windows, long_audio:
    "first" or "spread", max_duration_seconds) plus the encoder's `sampling_rate`.

    Returns `input_features` (all windows of all clips, (N, window samples)) and `audio_windows`
    (windows per clip, in order; the model splits the features by it)."""

    model_input_names = ["input_features", "audio_windows"]

    def __init__(
        self,
        sampling_rate: int = 16000,
        window_seconds: float = 10.0,
        hop_seconds: float = 10.0,
        max_windows: int = 30,
        long_audio: str = "first",
        max_duration_seconds: float = 3600.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sampling_rate, self.window_seconds, self.hop_seconds = sampling_rate, window_seconds, hop_seconds
        self.max_windows, self.long_audio, self.max_duration_seconds = max_windows, long_audio, max_duration_seconds

    @property
    def window(self) -> WindowConfig:
        return WindowConfig(
            sample_rate=self.sampling_rate,
            window_seconds=self.window_seconds,
            hop_seconds=self.hop_seconds,
            max_windows=self.max_windows,
            long_audio=self.long_audio,  # type: ignore[arg-type]  # "first" or "spread", as saved
            max_duration_seconds=self.max_duration_seconds,
        )

    @classmethod
    def from_window(cls, w: WindowConfig) -> "AudioFlamingoFeatureExtractor":
        return cls(
            sampling_rate=w.sample_rate,
            window_seconds=w.window_seconds,
            hop_seconds=w.hop_seconds,
            max_windows=w.max_windows,
            long_audio=w.long_audio,
            max_duration_seconds=w.max_duration_seconds,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """A model directory written before processors existed has no preprocessor_config.json:
        its config.json's window block says the same."""
        d = Path(pretrained_model_name_or_path)
        if d.is_dir() and not (d / FEATURE_NAME).is_file() and (d / "config.json").is_file():
            window = json.loads((d / "config.json").read_text()).get("window", {})
            return cls.from_window(WindowConfig(**window))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def __call__(
        self, audio: Any, sampling_rate: int | None = None, return_tensors: str | None = "pt", **kwargs
    ) -> BatchFeature:
        """audio: a path, a 1-D/2-D array (frames[, channels]) at `sampling_rate` (default: the
        encoder's rate), an {"array", "sampling_rate"} dict, or a list of these."""
        from audioflamingo.audio.inputs import as_clip_list, load_clip

        w = self.window
        waves = [load_clip(a, w.sample_rate, w.max_duration_seconds, sampling_rate) for a in as_clip_list(audio)]
        windows = [make_windows(x, w, name).frames for x, name in waves]
        counts = [len(f) for f in windows]
        feats = np.concatenate(windows) if windows else np.zeros((0, w.window_samples), np.float32)
        data = {"input_features": feats, "audio_windows": np.asarray(counts, dtype=np.int64)}
        if return_tensors == "pt":
            return BatchFeature({k: torch.from_numpy(v) for k, v in data.items()})
        return BatchFeature(data, tensor_type=return_tensors)
