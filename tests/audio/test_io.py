import numpy as np
import pytest
import soundfile as sf

from audioflamingo.audio.io import load_audio, prepare_waveform
from audioflamingo.errors import AudioInputError


def tone(sr, seconds=1.0, ch=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.25 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x] * ch, axis=1) if ch > 1 else x


@pytest.mark.parametrize("fmt,sr,ch", [("wav", 44100, 2), ("flac", 22050, 1), ("ogg", 48000, 2), ("mp3", 32000, 1)])
def test_formats_rates_channels(tmp_path, fmt, sr, ch):
    p = tmp_path / f"x.{fmt}"
    sf.write(p, tone(sr, 1.0, ch), sr)
    x = load_audio(p, 16000)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 1200  # mp3 adds encoder delay/padding
    assert np.isclose(np.abs(x).max(), 1.0)
    spec = np.abs(np.fft.rfft(x[2000:14000]))
    freq = np.argmax(spec) * 16000 / 12000
    assert abs(freq - 440) < 5  # resampled, not pitch-shifted


def test_resampler_is_high_quality():
    # A 7 kHz tone at 44.1 kHz -> 16 kHz stays a 7 kHz tone with no aliasing energy elsewhere.
    sr = 44100
    t = np.arange(sr) / sr
    y = prepare_waveform(np.sin(2 * np.pi * 7000 * t), sr, 16000)
    spec = np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(len(y) - 2000)))
    peak = np.argmax(spec)
    leak = np.delete(spec, range(peak - 20, peak + 20)).max() / spec[peak]
    assert leak < 1e-3


def test_stereo_is_mixed_down_not_first_channel():
    x = np.zeros((1600, 2), np.float32)
    x[:, 1] = 0.5
    assert np.allclose(prepare_waveform(x, 16000, 16000), 1.0)


@pytest.mark.parametrize(
    "case,needle",
    [
        ("missing", "file not found"),
        ("dir", "directory"),
        ("empty", "empty file"),
        ("text", "not an audio file"),
        ("corrupt", "audio"),
        ("zero", "zero-length"),
        ("nan", "NaN"),
        ("long", "over the limit"),
    ],
)
def test_bad_inputs_one_clear_line(tmp_path, case, needle):
    p = tmp_path / "bad.wav"
    if case == "dir":
        p.mkdir()
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "text":
        p.write_text("this is not audio\n" * 10)
    elif case == "corrupt":
        sf.write(p, tone(16000), 16000)
        p.write_bytes(p.read_bytes()[:30])
    elif case == "zero":
        sf.write(p, np.zeros(0), 16000)
    elif case == "nan":
        x = tone(16000).astype(np.float32)
        x[100] = np.nan
        sf.write(p, x, 16000, subtype="FLOAT")
    elif case == "long":
        sf.write(p, tone(8000, 3.0), 8000)
    with pytest.raises(AudioInputError) as e:
        load_audio(p, 16000, max_seconds=2.0)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and needle in msg, msg


def test_silence_is_not_divided_by_zero():
    assert np.all(prepare_waveform(np.zeros(100), 16000, 16000) == 0)


def test_symlink_loop_and_broken_link_are_named_as_such(tmp_path):
    import os

    os.symlink(tmp_path / "b.wav", tmp_path / "a.wav")
    os.symlink(tmp_path / "a.wav", tmp_path / "b.wav")
    os.symlink(tmp_path / "gone.wav", tmp_path / "dangling.wav")
    for name, needle in (("a.wav", "symlink loop"), ("dangling.wav", "broken symlink")):
        with pytest.raises(AudioInputError) as e:
            load_audio(tmp_path / name, 16000)
        assert str(e.value).startswith(f"{tmp_path / name}: {needle}"), str(e.value)
