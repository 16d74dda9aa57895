"""Sliding windows over a clip, exactly as the config says and with no randomness.

AF1: 7 s windows every 1.75 s, at most 16 (33.25 s). AF2: 10 s windows, no overlap, up to 30.
The last window is zero-padded to full length (as the official code does); windows that do not
exist for a short clip are never created here: they are masked later when clips are batched.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from audioflamingo.config import WindowConfig


@dataclass
class Windows:
    frames: np.ndarray  # (num_windows, window_samples) float32
    starts: list[int]  # start sample of each window
    truncated: bool  # True when the clip was longer than the window budget covers


def window_starts(num_samples: int, cfg: WindowConfig) -> tuple[list[int], bool]:
    """Start sample of each window and whether the clip exceeded the window budget."""
    win, hop = cfg.window_samples, cfg.hop_samples
    if num_samples <= win:
        return [0], False
    needed = 1 + math.ceil((num_samples - win) / hop)
    if needed <= cfg.max_windows:
        return [i * hop for i in range(needed)], False
    if cfg.long_audio == "spread":
        last = num_samples - win
        if cfg.max_windows == 1:
            return [0], True
        starts = [int(round(i * last / (cfg.max_windows - 1))) for i in range(cfg.max_windows)]
        return starts, True
    if cfg.long_audio != "first":
        raise ValueError(f"unknown long_audio policy {cfg.long_audio!r} (use 'first' or 'spread')")
    return [i * hop for i in range(cfg.max_windows)], True


def make_windows(wave: np.ndarray, cfg: WindowConfig, name: str = "<audio>") -> Windows:
    starts, truncated = window_starts(len(wave), cfg)
    if truncated and cfg.long_audio == "first":
        covered = (starts[-1] + cfg.window_samples) / cfg.sample_rate
        warnings.warn(
            f"{name}: {len(wave) / cfg.sample_rate:.1f} s is longer than the {cfg.max_windows}-window budget; "
            f"only the first {covered:.2f} s are used (set long_audio='spread' to cover the whole file)",
            stacklevel=2,
        )
    win = cfg.window_samples
    frames = np.zeros((len(starts), win), dtype=np.float32)
    for i, s in enumerate(starts):
        chunk = wave[s : s + win]
        frames[i, : len(chunk)] = chunk
    return Windows(frames=frames, starts=starts, truncated=truncated)
