from audioflamingo.audio.io import load_audio, prepare_waveform
from audioflamingo.audio.windows import Windows, make_windows, window_starts

__all__ = ["load_audio", "prepare_waveform", "Windows", "make_windows", "window_starts"]
