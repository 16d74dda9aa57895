"""Channel and room augmentation: a random recording chain per event, so that how a source was
recorded (an 8 kHz telephone prompt, a dry studio sample, a band-limited sound effect) does not
tell its label. Every draw comes from the caller's rng, so a corpus stays a function of its seed.

A chain is some of, in this order: resampling through a lower rate (8, 11.025 or 22.05 kHz), a
telephone channel (300-3400 Hz band at 8 kHz, mu-law companded), an equaliser (low and high
shelves and one peak, +-9 dB), a room (an exponentially decaying noise impulse response, RT60
0.15-0.9 s, mixed 10-50% wet). The output has the input's length: event times stay exact. The
event's level, noise beds (white, pink or brown at about 12, 20 or 28 dB below the loudest event),
a telephone line for the whole clip and the clip's gain are drawn by scenes.py.
"""

from __future__ import annotations

import numpy as np

SR = 16000
P_RESAMPLE, P_TELEPHONE, P_EQ, P_ROOM = 0.25, 0.2, 0.5, 0.35


def _resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, sr_from, sr_to, quality="HQ").astype(np.float32)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if y.size >= n else np.pad(y, (0, n - y.size))


def through_rate(x: np.ndarray, rate: int) -> np.ndarray:
    """Down to `rate` and back: everything above rate/2 is gone."""
    return _fit(_resample(_resample(x, SR, rate), rate, SR), x.size)


def _fft_filter(x: np.ndarray, gain_of_hz) -> np.ndarray:
    n = int(2 ** np.ceil(np.log2(max(x.size, 2))))
    spec = np.fft.rfft(x, n)
    spec *= gain_of_hz(np.fft.rfftfreq(n, 1 / SR))
    return np.fft.irfft(spec, n)[: x.size].astype(np.float32)


def telephone(x: np.ndarray) -> np.ndarray:
    """A narrowband telephone channel: 8 kHz, 300-3400 Hz, mu-law (8 bits)."""
    y = _resample(x, SR, 8000)
    n = int(2 ** np.ceil(np.log2(max(y.size, 2))))
    spec = np.fft.rfft(y, n)
    f = np.fft.rfftfreq(n, 1 / 8000)
    spec *= 1 / np.sqrt(1 + (300 / np.maximum(f, 1)) ** 8) / np.sqrt(1 + (f / 3400) ** 16)
    y = np.fft.irfft(spec, n)[: y.size]
    peak = float(np.abs(y).max()) + 1e-9
    mu = 255.0
    q = np.sign(y / peak) * np.log1p(mu * np.abs(y / peak)) / np.log1p(mu)
    q = np.round(q * 127) / 127
    y = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * peak
    return _fit(_resample(y.astype(np.float32), 8000, SR), x.size)


def equalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo_f, lo_g = rng.uniform(100, 400), rng.uniform(-9, 9)
    hi_f, hi_g = rng.uniform(2000, 6000), rng.uniform(-9, 9)
    pk_f, pk_g, pk_q = rng.uniform(300, 4000), rng.uniform(-9, 9), rng.uniform(0.5, 2.0)

    def gain(f):
        f = np.maximum(f, 1.0)
        db = lo_g / (1 + (f / lo_f) ** 2) + hi_g / (1 + (hi_f / f) ** 2)
        db += pk_g / (1 + (pk_q * (f / pk_f - pk_f / f)) ** 2)
        return 10 ** (db / 20)

    return _fft_filter(x, gain)


def room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60, wet = rng.uniform(0.15, 0.9), rng.uniform(0.1, 0.5)
    n = int(min(rt60, 0.6) * SR)
    t = np.arange(n) / SR
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[: int(0.002 * SR)] = 0  # the first reflection after the direct sound
    ir /= np.sqrt(np.sum(ir**2)) + 1e-9
    m = int(2 ** np.ceil(np.log2(x.size + n)))
    tail = np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(ir, m), m)[: x.size]
    dry_rms, wet_rms = np.sqrt(np.mean(x**2)) + 1e-9, np.sqrt(np.mean(tail**2)) + 1e-9
    y = (1 - wet) * x + wet * tail * dry_rms / wet_rms
    fade = min(int(0.02 * SR), y.size)  # the tail is cut at the event's end: fade it out
    if fade:
        y[-fade:] *= np.linspace(1, 0, fade)
    return y.astype(np.float32)


def chain(x: np.ndarray, rng: np.random.Generator, spectral: bool = True) -> tuple[np.ndarray, list[str]]:
    """A random chain applied to one event's signal; returns the signal and the steps taken.
    spectral=False: a room only (for sounds whose spectrum is their label). Draws the same number
    of values whatever is chosen, so one event's chain does not shift the next event's draws."""
    u = rng.random(4)
    rate = int(rng.choice([8000, 11025, 22050]))
    eq_rng, room_rng = (np.random.default_rng(int(s)) for s in rng.integers(2**32, size=2))
    steps, y = [], x.astype(np.float32)
    if not spectral:
        u[:3] = 1.0
    if u[0] < P_RESAMPLE and rate < SR:
        y, _ = through_rate(y, rate), steps.append(f"resample-{rate}")
    if u[1] < P_TELEPHONE:
        y, _ = telephone(y), steps.append("telephone")
    if u[2] < P_EQ:
        y, _ = equalise(y, eq_rng), steps.append("eq")
    if u[3] < P_ROOM:
        y, _ = room(y, room_rng), steps.append("room")
    return y.astype(np.float32), steps
