"""Decoding a client's base64 clip with bounded memory and time.

Before any sample is decoded, the header's frames, rate and channels are checked: duration against
`max_seconds` and decoded samples (frames x channels) against `max_samples`, so a small compressed
file cannot expand into gigabytes (a 0.5 MB FLAC of 8 channels at 192 kHz for 290 s is 445 M samples).
Decoding then runs block by block, each block down-mixed and fed to a streaming resampler, so memory
holds the 16 kHz mono result and one block, whatever the input's rate or channel count.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np

from audioflamingo.serve.errors import ApiError

BLOCK_FRAMES = 1 << 16
B64_CHUNK = 1 << 20  # characters, a multiple of 4: each piece decodes on its own


def _b64decode(text: str) -> bytes:
    """base64 in 1 MB pieces: one call on 25 MB holds the GIL for a quarter of a second (measured),
    stalling the event loop as if it ran there; pieces let it in between."""
    return b"".join(base64.b64decode(text[i : i + B64_CHUNK], validate=True) for i in range(0, len(text), B64_CHUNK))


def decode_clip(
    b64: str, fmt: str | None, target_rate: int, max_seconds: float, max_samples: int, param: str = "input_audio.data"
) -> np.ndarray:
    """base64 audio -> mono float32 at `target_rate`, peak-normalised (as `prepare_waveform`)."""
    import soundfile as sf
    import soxr

    from audioflamingo.audio.io import prepare_waveform
    from audioflamingo.errors import AudioInputError

    try:
        raw = _b64decode(b64)
    except (binascii.Error, ValueError):
        raise ApiError(400, "input_audio.data is not valid base64", param) from None
    if not raw:
        raise ApiError(400, "input_audio.data is empty", param)
    try:
        f = sf.SoundFile(io.BytesIO(raw))
    except Exception:  # libsndfile says only "format not recognised" in its own words
        raise ApiError(400, f"input_audio is not readable audio (format {fmt or 'unknown'})", param) from None
    with f:
        frames, rate, channels = f.frames, f.samplerate, f.channels
        if rate <= 0 or channels <= 0:
            raise ApiError(400, "input_audio has an invalid header (no sample rate or channels)", param)
        if frames / rate > max_seconds:
            raise ApiError(413, f"audio is {frames / rate:.1f} s long, over the limit of {max_seconds:g} s", param)
        if frames * channels > max_samples:
            raise ApiError(
                413,
                f"audio is {frames * channels:,} samples ({channels} channels x {rate} Hz x "
                f"{frames / rate:.1f} s), over the limit of {max_samples:,} decoded samples",
                param,
            )
        resampler = (
            soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ") if rate != target_rate else None
        )
        # One output array sized from the header (resampling gives ceil(frames x ratio) samples):
        # no list of pieces to concatenate, which would hold the clip twice.
        out = np.empty(int(np.ceil(frames * target_rate / rate)) + 64, np.float32)
        n = 0

        def put(piece):
            nonlocal out, n
            if n + len(piece) > len(out):
                out = np.resize(out, n + len(piece))
            out[n : n + len(piece)] = piece
            n += len(piece)

        try:
            # sf.blocks yields at most `frames` frames however long the data really is: the header
            # bound holds even for a file whose header lies about its length.
            for block in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True, frames=frames):
                mono = block.mean(axis=1) if channels > 1 else block[:, 0]
                put(resampler.resample_chunk(mono) if resampler else mono)
            if resampler is not None:
                put(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        except Exception:
            raise ApiError(400, f"input_audio could not be decoded (format {fmt or 'unknown'})", param) from None
    samples = out[:n]
    try:
        return prepare_waveform(samples, target_rate, target_rate, name="input_audio")
    except AudioInputError as err:
        raise ApiError(400, f"input_audio: {err.problem}", param) from None
