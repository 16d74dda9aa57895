"""Scenes: source recordings and procedural signals placed on a timeline, mixed with known levels.

The timeline is the ground truth every text (captions, answers, dialogues, CLAP negatives) is
derived from; events never overlap, so "first", "last" and "how many" are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audioflamingo.data.synth import channel
from audioflamingo.data.synth.sources import SR, Recording

P_CLIP_TELEPHONE = 0.1  # the whole clip heard through a telephone line
BED_SNR_DB = (12.0, 20.0, 28.0)  # noise beds at several levels below the loudest event


@dataclass
class Event:
    kind: str  # instrument | speech | alert | everyday | beep | noise | chirp | ticking
    label: str  # instrument name, "speech", alert label, or the procedural kind
    start: float
    end: float
    level_db: float  # RMS level in dBFS before the clip's peak normalisation
    source: str  # recording id ("" for procedural signals: generated fresh for each clip)
    attrs: dict = field(default_factory=dict)
    origin: str = ""  # the source it came from: sample set, voice, collection, or "procedural"
    chain: list[str] = field(default_factory=list)  # the recording chain applied (channel.py)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Scene:
    id: str
    split: str
    duration: float
    events: list[Event]
    background: str | None = None  # noise colour of a faint bed under the whole clip
    lead_silence: float = 0.0
    snr_db: float | None = None  # the bed's level below the loudest event
    clip_chain: list[str] = field(default_factory=list)  # a chain applied to the whole mix


def _colour(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size) + 1.0
    spec *= {"white": 1.0, "pink": f**-0.5, "brown": f**-1.0}[colour]
    x = np.fft.irfft(spec, n)
    return (x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def procedural(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A freshly generated signal and its attributes."""
    if kind == "beep":
        length = "short" if rng.random() < 0.5 else "long"
        pitch = "high" if rng.random() < 0.5 else "low"
        dur = rng.uniform(0.25, 0.5) if length == "short" else rng.uniform(1.2, 2.0)
        f0 = rng.uniform(1200, 2000) if pitch == "high" else rng.uniform(180, 320)
        t = np.arange(int(dur * SR)) / SR
        x = np.sin(2 * np.pi * f0 * t) * np.minimum(1, np.minimum(t, t[::-1]) / 0.01)
        return x.astype(np.float32), {"pitch": pitch, "length": length}
    if kind == "noise":
        colour = str(rng.choice(["white", "pink", "brown"]))
        dur = rng.uniform(0.8, 2.0)
        x = _colour(rng, int(dur * SR), colour)
        ramp = np.minimum(1, np.minimum(np.arange(x.size), np.arange(x.size)[::-1]) / (0.02 * SR))
        return (x * ramp).astype(np.float32), {"colour": colour}
    if kind == "chirp":
        direction = "rising" if rng.random() < 0.5 else "falling"
        dur = rng.uniform(0.6, 1.5)
        f0, f1 = sorted([rng.uniform(250, 500), rng.uniform(1500, 3000)])
        if direction == "falling":
            f0, f1 = f1, f0
        t = np.arange(int(dur * SR)) / SR
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur))
        return (np.sin(phase) * np.minimum(1, np.minimum(t, t[::-1]) / 0.01)).astype(np.float32), {
            "direction": direction
        }
    if kind == "ticking":
        tempo = "fast" if rng.random() < 0.5 else "slow"
        rate = rng.uniform(7, 10) if tempo == "fast" else rng.uniform(1.5, 2.5)
        dur = rng.uniform(1.5, 2.5)
        x = np.zeros(int(dur * SR), np.float32)
        click = (rng.standard_normal(int(0.004 * SR)) * np.exp(-np.arange(int(0.004 * SR)) / 12.0)).astype(np.float32)
        for k in range(int(dur * rate) + 1):
            s = int(k / rate * SR)
            seg = x[s : s + click.size]
            seg += click[: seg.size]
        return x, {"tempo": tempo}
    raise ValueError(kind)


PROCEDURAL = ("beep", "noise", "chirp", "ticking")


def sample_scene(
    rng: np.random.Generator,
    pool: dict[str, list[Recording]],
    split: str,
    sid: str,
    max_seconds: float = 10.0,
    kinds: tuple[str, ...] | None = None,
    n_events: int | None = None,
    augment: bool = True,
) -> tuple[Scene, np.ndarray]:
    """Draw a scene from `pool` (recordings of this split grouped by kind) and mix it. augment: each
    event goes through its own random recording chain (channel.py; noise events keep their
    spectrum, which is their label), some clips through a telephone line."""
    kinds = kinds or ("instrument", "instrument", "instrument", "speech", "speech", "alert", "everyday") + PROCEDURAL
    kinds = tuple(k for k in kinds if k in PROCEDURAL or pool.get(k))  # a split may lack a kind
    n = n_events or int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
    lead = float(rng.choice([0.0, rng.uniform(0.1, 0.5), rng.uniform(1.2, 2.0)], p=[0.35, 0.35, 0.3]))
    t, events, pieces = lead, [], []
    for _ in range(n):
        kind = str(rng.choice(kinds))
        if kind in PROCEDURAL:
            x, attrs = procedural(kind, rng)
            label, source, origin = kind, "", "procedural"
        else:
            rec = pool[kind][int(rng.integers(len(pool[kind])))]
            x, attrs, label, source, origin = rec.wave, dict(rec.attrs), rec.label, rec.id, rec.origin
        if kind == "instrument" and any(e.kind == "instrument" and e.label == label for e in events):
            continue  # one phrase per instrument per clip keeps "the violin" unambiguous
        if t + x.size / SR > max_seconds - 0.2:
            break
        level = float(rng.uniform(-30, -14))
        steps: list[str] = []
        if augment:
            x, steps = channel.chain(x, rng, spectral=kind != "noise")
        events.append(
            Event(kind, label, round(t, 3), round(t + x.size / SR, 3), round(level, 1), source, attrs, origin, steps)
        )
        pieces.append((t, x, level))
        t += x.size / SR + rng.uniform(0.3, 1.0)
    if not events:  # the drawn piece did not fit: take a short procedural one instead
        x, attrs = procedural("beep", rng)
        events.append(
            Event("beep", "beep", round(lead, 3), round(lead + x.size / SR, 3), -20.0, "", attrs, "procedural")
        )
        pieces.append((lead, x, -20.0))
    duration = min(max_seconds, max(events[-1].end + rng.uniform(0.3, 1.0), 1.0))
    mix = np.zeros(int(duration * SR), np.float32)
    for start, x, level in pieces:
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)
        s = int(start * SR)
        seg = mix[s : s + x.size]
        seg += (x[: seg.size] * (10 ** (level / 20) / rms)).astype(np.float32)
    background, snr = None, None
    if rng.random() < 0.25:
        background = str(rng.choice(["white", "pink", "brown"] if augment else ["pink", "brown"]))
        snr = float(rng.choice(BED_SNR_DB) + rng.uniform(-2.5, 2.5)) if augment else float(rng.uniform(22, 30))
        bed = _colour(rng, mix.size, background)
        loudest = max(e.level_db for e in events)
        bed *= 10 ** ((loudest - snr) / 20) / (np.sqrt(np.mean(bed**2)) + 1e-9)
        mix += bed
    clip_chain = []
    if augment and rng.random() < P_CLIP_TELEPHONE:
        mix, clip_chain = channel.telephone(mix), ["telephone"]
    mix /= max(1.0, float(np.abs(mix).max()) / 0.9)
    if augment:
        mix *= 10 ** (rng.uniform(-10, 0) / 20)  # the clip's overall gain
    return Scene(
        sid,
        split,
        round(duration, 3),
        events,
        background,
        round(lead, 3),
        None if snr is None else round(snr, 1),
        clip_chain,
    ), mix
