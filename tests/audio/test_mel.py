import numpy as np
import pytest

from audioflamingo.audio.mel import slaney_mel_filters


@pytest.mark.parametrize("n_fft,n_mels,sr", [(512, 64, 16000), (1024, 128, 44100), (400, 80, 16000), (64, 8, 8000)])
def test_slaney_filters_equal_transformers(n_fft, n_mels, sr):
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=sr / 2,
        sampling_rate=sr,
        norm="slaney",
        mel_scale="slaney",
    )
    ours = slaney_mel_filters(n_fft // 2 + 1, n_mels, sr)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)
