"""Reading audio files: anything libsndfile reads, to mono float32 at the encoder's rate.

Every failure is an `AudioInputError` whose message is one line naming the file and the problem.
Nothing is written anywhere, so a bad file in a batch never leaves half a result behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audioflamingo.errors import AudioInputError
from audioflamingo.files import missing_reason


def _describe(err: Exception) -> str:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    low = msg.lower()
    if "format not recognised" in low or "unknown format" in low or "not recognised" in low:
        return "not an audio file (libsndfile does not recognise its format)"
    return f"unreadable or corrupt audio ({msg})"


def prepare_waveform(
    samples: np.ndarray,
    sample_rate: int,
    target_rate: int,
    *,
    name: str = "<array>",
    max_seconds: float | None = None,
) -> np.ndarray:
    """Down-mix, check, resample (soxr HQ) and peak-normalise an in-memory signal.

    `samples` is (frames,) or (frames, channels). Channels are averaged rather than taking the
    first one (the official code's choice), so a stereo clip with content on one side is not lost.
    """
    x = np.asarray(samples)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise AudioInputError(name, f"expected 1-D or 2-D samples, got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if x.size == 0:
        raise AudioInputError(name, "zero-length audio (no samples)")
    if not np.isfinite(x).all():
        raise AudioInputError(name, "audio contains NaN or infinite samples")
    if max_seconds is not None and x.size / sample_rate > max_seconds:
        raise AudioInputError(name, f"audio is {x.size / sample_rate:.1f} s long, over the limit of {max_seconds:g} s")
    if sample_rate != target_rate:
        x = soxr.resample(x, sample_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0:
        x = x / peak
    return np.ascontiguousarray(x, dtype=np.float32)


def load_audio(
    path: str | os.PathLike,
    target_rate: int,
    max_seconds: float | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Read `path` (or the segment [offset, offset + duration) s of it) as mono float32 samples at
    `target_rate`, peak-normalised to 1."""
    p = Path(path)
    if not p.exists():  # missing, or a symlink loop / broken link, said as such
        raise AudioInputError(str(path), missing_reason(p) or "file not found")
    if p.is_dir():
        raise AudioInputError(str(path), "is a directory, not an audio file")
    if not os.access(p, os.R_OK):
        raise AudioInputError(str(path), "permission denied")
    if p.stat().st_size == 0:
        raise AudioInputError(str(path), "empty file (0 bytes)")
    try:
        info = sf.info(str(p))
    except Exception as err:  # libsndfile reports every parse failure the same way
        raise AudioInputError(str(path), _describe(err)) from None
    if info.frames == 0:
        raise AudioInputError(str(path), "zero-length audio (no samples)")
    start = int(round(offset * info.samplerate))
    if start >= info.frames:
        raise AudioInputError(str(path), f"offset {offset:g} s is past the end ({info.frames / info.samplerate:.2f} s)")
    frames = (
        info.frames - start if duration is None else min(int(round(duration * info.samplerate)), info.frames - start)
    )
    # Check the limit from the header so a 10-hour file is refused before it is read.
    if max_seconds is not None and frames / info.samplerate > max_seconds:
        raise AudioInputError(
            str(path), f"audio is {frames / info.samplerate:.1f} s long, over the limit of {max_seconds:g} s"
        )
    try:
        data, sr = sf.read(str(p), start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioInputError(str(path), _describe(err)) from None
    return prepare_waveform(data, sr, target_rate, name=str(path), max_seconds=max_seconds)
