"""The audio input forms every entry point accepts, and how one of them becomes a waveform.

One clip is: a path (str or Path), an array of samples (frames,) or (frames, channels) (numpy or
torch), an `(array, sampling_rate)` tuple, or a `{"array": ..., "sampling_rate": ...}` dict (the
form of `datasets`' Audio column and of transformers' pipelines; "path" alone also works). Many clips
are a list of these. A bare string is always one path, never a sequence of characters.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np

from audioflamingo.audio.io import load_audio, prepare_waveform
from audioflamingo.errors import AudioInputError


def is_single_clip(audio: Any) -> bool:
    """A list is many clips; a tuple is one only as (array, rate); anything else is one clip."""
    if isinstance(audio, list):
        return False
    if isinstance(audio, tuple):
        return len(audio) == 2 and isinstance(audio[1], numbers.Number) and not isinstance(audio[0], (str, Path, dict))
    return True


def as_clip_list(audio: Any) -> list:
    """`audio` as a list of single clips (see the module docstring)."""
    if is_single_clip(audio):
        return [audio]
    return list(audio)


def load_clip(
    audio: Any, target_rate: int, max_seconds: float | None = None, default_rate: int | None = None
) -> tuple[np.ndarray, str]:
    """(mono float32 waveform at `target_rate`, a name for messages) of one clip. A bare array is
    taken to be at `default_rate` (default: `target_rate`, the model's own rate)."""
    if isinstance(audio, (str, Path)):
        return load_audio(audio, target_rate, max_seconds), str(audio)
    if isinstance(audio, dict):
        if "array" in audio:
            rate = audio.get("sampling_rate", default_rate or target_rate)
            name = str(audio.get("path") or "<array>")
            return _array(audio["array"], int(rate), target_rate, max_seconds, name), name
        if audio.get("path"):
            return load_audio(audio["path"], target_rate, max_seconds), str(audio["path"])
        raise AudioInputError(
            "<dict>", f"an audio dict needs 'array' (with 'sampling_rate') or 'path'; got keys {sorted(audio)}"
        )
    if isinstance(audio, tuple) and len(audio) == 2:
        return _array(audio[0], int(audio[1]), target_rate, max_seconds, "<array>"), "<array>"
    return _array(audio, default_rate or target_rate, target_rate, max_seconds, "<array>"), "<array>"


def _array(x: Any, rate: int, target_rate: int, max_seconds: float | None, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return prepare_waveform(np.asarray(x), rate, target_rate, name=name, max_seconds=max_seconds)
