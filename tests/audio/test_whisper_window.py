"""Whisper's encoder on the model's window length (audio/whisper.py), on a tiny random encoder."""

import numpy as np
import pytest
import torch

from audioflamingo.audio.encoders import build_encoder
from audioflamingo.audio.whisper import whisper_log_mel, whisper_mel_filters
from audioflamingo.config import EncoderConfig, WindowConfig
from tests.conftest import noise
from tests.whisper_ct2 import TINY, tiny_whisper_encoder


def _encoder(seconds, tokens=-1, ref=None):
    cfg = EncoderConfig(kind="whisper", dim=TINY["d_model"], tokens_per_window=tokens, hf_config=dict(TINY))
    enc = build_encoder(cfg, WindowConfig(sample_rate=16000, window_seconds=seconds, hop_seconds=seconds))
    ref = ref if ref is not None else tiny_whisper_encoder()
    enc.load_state_dict(enc.adapt_base_state(ref.state_dict()), strict=True)
    return enc.eval(), cfg, ref


def test_mel_equals_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor

    wave = noise(30.0)
    ref = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, return_tensors="np")["input_features"]
    ours = whisper_log_mel(torch.from_numpy(wave)[None], whisper_mel_filters(80), torch.hann_window(400)).numpy()
    assert ours.shape == ref.shape == (1, 80, 3000)
    assert np.abs(ours - ref).max() < 1e-4


def test_a_30_s_window_is_the_whisper_encoder_itself():
    from transformers import WhisperFeatureExtractor

    enc, cfg, ref = _encoder(30.0)
    assert cfg.tokens_per_window == 1500
    wave = noise(30.0, seed=1)
    feats = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, return_tensors="pt")["input_features"]
    with torch.no_grad():
        want = ref(feats).last_hidden_state
        got = enc(torch.from_numpy(wave)[None])
    assert got.shape == (1, 1500, TINY["d_model"])
    assert (got - want).abs().max() < 1e-3


def test_short_window_runs_on_its_own_length_and_its_front_end_equals_the_30_s_one():
    """Tokens, positions and convolutions of a 2-s window equal the first 100 of the 30-s padded
    computation (the last token sees the window's edge: reflect vs zero padding); attention then
    differs by design, since the padded computation attends to 28 s of silence."""
    enc, cfg, ref = _encoder(2.0)
    assert cfg.tokens_per_window == 100 and enc.model.embed_positions.weight.shape == (100, TINY["d_model"])
    assert torch.equal(enc.model.embed_positions.weight, ref.embed_positions.weight[:100])
    wave = torch.from_numpy(noise(2.0, seed=2))[None]
    padded = torch.nn.functional.pad(wave, (0, 16000 * 28))
    mel_f, win = whisper_mel_filters(80), torch.hann_window(400)

    def front(e, w):
        x = whisper_log_mel(w, mel_f, win)
        x = torch.nn.functional.gelu(e.conv1(x))
        x = torch.nn.functional.gelu(e.conv2(x)).transpose(1, 2)
        return x + e.embed_positions.weight[: x.shape[1]]

    with torch.no_grad():
        short, full = front(enc.model, wave), front(ref, padded)[:, :100]
        assert (short[:, :-1] - full[:, :-1]).abs().max() < 1e-4
        out = enc(wave)
        assert out.shape == (1, 100, TINY["d_model"])
        whole = ref(whisper_log_mel(padded, mel_f, win)).last_hidden_state[:, :100]
    assert not torch.allclose(out, whole, atol=1e-3)  # documented: not the same function


def test_tokens_per_window_average_pools():
    enc, cfg, ref = _encoder(1.0, tokens=10)
    full, _, _ = _encoder(1.0, ref=ref)
    wave = torch.from_numpy(noise(1.0, seed=3))[None]
    with torch.no_grad():
        pooled, dense = enc(wave), full(wave)
    assert pooled.shape == (1, 10, TINY["d_model"]) and dense.shape == (1, 50, TINY["d_model"])
    assert torch.allclose(pooled, dense.reshape(1, 10, 5, -1).mean(2), atol=1e-6)


@pytest.mark.parametrize(
    "window,tokens,match",
    [
        (WindowConfig(sample_rate=32000, window_seconds=1.0, hop_seconds=1.0), -1, "16 kHz"),
        (WindowConfig(sample_rate=16000, window_seconds=1.01, hop_seconds=1.0), -1, "not a multiple"),
        (WindowConfig(sample_rate=16000, window_seconds=31.0, hop_seconds=1.0), -1, "30 s"),
        (WindowConfig(sample_rate=16000, window_seconds=1.0, hop_seconds=1.0), 7, "does not divide"),
    ],
)
def test_bad_settings_are_one_line(window, tokens, match):
    cfg = EncoderConfig(kind="whisper", dim=TINY["d_model"], tokens_per_window=tokens, hf_config=dict(TINY))
    with pytest.raises(ValueError, match=match):
        build_encoder(cfg, window)


def test_lean_encoder_equals_transformers_whisper_encoder_on_a_window():
    """audio/whisper_encoder.py replaces transformers' WhisperEncoder (start-up): same names, same
    outputs on the same weights, at the 1-s window the v2 model uses."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    enc, _, ref = _encoder(1.0)
    hf = WhisperEncoder(WhisperConfig(**{**TINY, "max_source_positions": 50})).eval()
    hf.load_state_dict({k.removeprefix("model."): v for k, v in enc.state_dict().items()}, strict=True)
    x = whisper_log_mel(torch.from_numpy(noise(1.0, seed=5))[None], whisper_mel_filters(80), torch.hann_window(400))
    with torch.no_grad():
        want = hf(input_features=x).last_hidden_state
        got = enc.model(x)
    assert got.shape == want.shape == (1, 50, TINY["d_model"])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
