"""Slaney mel filters (the librosa/Whisper convention), for the project's own mel_conv encoder.

Hand-written because the only other source here, transformers.audio_utils, costs about a second of
start-up to import; tests/audio/test_mel.py checks these filters equal transformers' to 1e-6.
"""

from __future__ import annotations

import numpy as np

_F_BREAK, _MEL_BREAK = 1000.0, 15.0  # linear below 1 kHz (3 mels per 200 Hz), logarithmic above
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    log_part = _MEL_BREAK + np.log(np.maximum(f, _F_BREAK) / _F_BREAK) / _LOG_STEP
    return np.where(f >= _F_BREAK, log_part, 3.0 * f / 200.0)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    log_part = _F_BREAK * np.exp(_LOG_STEP * (np.maximum(m, _MEL_BREAK) - _MEL_BREAK))
    return np.where(m >= _MEL_BREAK, log_part, 200.0 * m / 3.0)


def slaney_mel_filters(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """(n_freqs, n_mels) triangular filters, area-normalised, over FFT bins 0..sample_rate//2."""
    f_max = sample_rate / 2 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.linspace(0, sample_rate // 2, n_freqs)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lo) / (mid - lo)
    falling = (hi - bins[:, None]) / (hi - mid)
    tri = np.clip(np.minimum(rising, falling), 0.0, None)
    return (tri * (2.0 / (hi - lo))).astype(np.float64)
