import warnings

import numpy as np
import pytest

from audioflamingo.audio.windows import make_windows, window_starts
from audioflamingo.config import WindowConfig
from audioflamingo.presets import preset_config

AF1 = preset_config("af1")[0].window
AF2 = preset_config("af2")[0].window


def test_af1_geometry():
    assert (AF1.window_seconds, AF1.hop_seconds, AF1.max_windows) == (7.0, 1.75, 16)
    sr = AF1.sample_rate
    assert window_starts(5 * sr, AF1) == ([0], False)
    starts, trunc = window_starts(int(10 * sr), AF1)  # 7 s + 2 hops cover 10.5 s
    assert starts == [0, AF1.hop_samples, 2 * AF1.hop_samples] and not trunc
    starts, trunc = window_starts(int(33.25 * sr), AF1)  # exactly the budget
    assert len(starts) == 16 and not trunc


def test_af2_geometry():
    sr = AF2.sample_rate
    assert window_starts(int(25 * sr), AF2)[0] == [0, 10 * sr, 20 * sr]
    starts, trunc = window_starts(int(300 * sr), AF2)
    assert len(starts) == 30 and not trunc
    assert window_starts(int(301 * sr), AF2)[1]


def test_long_audio_first_warns_and_spread_covers_whole_file():
    cfg = WindowConfig(sample_rate=100, window_seconds=1, hop_seconds=1, max_windows=4)
    wave = np.arange(1000, dtype=np.float32)
    with pytest.warns(UserWarning, match="first"):
        w = make_windows(wave, cfg)
    assert w.starts == [0, 100, 200, 300] and w.truncated
    cfg.long_audio = "spread"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = make_windows(wave, cfg)
    assert w.starts[0] == 0 and w.starts[-1] == 900 and len(w.starts) == 4
    assert w.frames[-1, -1] == 999  # the file's end is covered


def test_last_window_zero_padded_and_deterministic():
    cfg = WindowConfig(sample_rate=100, window_seconds=1, hop_seconds=0.5, max_windows=8)
    wave = np.random.default_rng(0).standard_normal(170).astype(np.float32)
    a, b = make_windows(wave, cfg), make_windows(wave, cfg)
    assert np.array_equal(a.frames, b.frames)
    assert a.starts == [0, 50, 100]
    assert np.all(a.frames[2, 70:] == 0) and np.array_equal(a.frames[2, :70], wave[100:])
