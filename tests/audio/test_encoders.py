"""The Hugging Face CLAP audio tower, loaded from a local directory the test writes."""

import pytest
import torch

from audioflamingo.audio.encoders import HFClapEncoder, build_encoder
from audioflamingo.config import WindowConfig
from tests.conftest import noise


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapFeatureExtractor

    d = tmp_path_factory.mktemp("clap")
    torch.manual_seed(0)
    cfg = ClapAudioConfig(
        spec_size=64,
        num_mel_bins=16,
        window_size=4,
        patch_size=2,
        patch_stride=2,
        patch_embeds_hidden_size=8,
        hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        projection_dim=24,
        projection_hidden_size=24,
        enable_fusion=False,
    )
    ClapAudioModelWithProjection(cfg).save_pretrained(d)
    ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=16000,
        hop_length=160,
        fft_window_size=400,
        max_length_s=1,
        frequency_min=50,
        frequency_max=8000,
    ).save_pretrained(d)
    return d


WIN = WindowConfig(sample_rate=16000, window_seconds=1.0, hop_seconds=1.0, max_windows=4)


def test_pooled_one_vector_per_window(clap_dir):
    enc = build_encoder(HFClapEncoder.config_from_directory(clap_dir, "pooled"), WIN)
    enc.load_directory_weights(clap_dir)
    x = torch.from_numpy(noise(3.0)).view(3, 16000)
    y = enc(x)
    assert y.shape == (3, 1, 24)
    assert not any(p.requires_grad for p in enc.parameters())  # frozen by default
    torch.testing.assert_close(enc(x[1:2]), y[1:2], atol=1e-5, rtol=0)  # batch-independent
    assert torch.equal(enc(x), y)  # deterministic: no random crop or fusion chunk


def test_dense_frame_tokens(clap_dir):
    cfg = HFClapEncoder.config_from_directory(clap_dir, "dense")
    enc = build_encoder(cfg, WIN)
    y = enc(torch.from_numpy(noise(2.0)).view(2, 16000))
    assert y.shape == (2, cfg.tokens_per_window, cfg.dim) and cfg.dim == 16 and cfg.tokens_per_window > 1


def test_model_with_clap_encoder_roundtrip(clap_dir, tmp_path):
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.presets import build

    model, tok = build("tiny", clap_dir=clap_dir)
    assert model.config.encoder.kind == "hf_clap" and model.audio_proj is not None
    model.save_pretrained(tmp_path, tok)
    loaded = AudioFlamingo.from_pretrained(tmp_path)
    w = noise(1.5)
    torch.testing.assert_close(loaded.encode_clips([w])[0], model.encode_clips([w])[0], atol=1e-6, rtol=0)


def _tiny_audio_cfg():
    return dict(
        spec_size=64,
        num_mel_bins=16,
        window_size=4,
        patch_size=2,
        patch_stride=2,
        patch_embeds_hidden_size=8,
        hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        projection_dim=24,
        projection_hidden_size=24,
        enable_fusion=False,
    )


def _fe():
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(
        feature_size=16, sampling_rate=16000, hop_length=160, fft_window_size=400, max_length_s=1
    )


def test_full_clapmodel_directory_loads_audio_tower(tmp_path):
    from transformers import ClapConfig, ClapModel

    torch.manual_seed(1)
    text = dict(
        vocab_size=99,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        projection_dim=24,
        projection_hidden_size=24,
    )
    full = ClapModel(ClapConfig(text_config=text, audio_config=_tiny_audio_cfg(), projection_dim=24)).eval()
    full.save_pretrained(tmp_path)
    _fe().save_pretrained(tmp_path)
    enc = build_encoder(HFClapEncoder.config_from_directory(tmp_path, "pooled"), WIN)
    enc.load_directory_weights(tmp_path)
    x = torch.from_numpy(noise(1.0)).view(1, 16000)
    feats = enc.features(x)
    with torch.no_grad():
        pooled = full.audio_model(input_features=feats, is_longer=torch.zeros(1, 1, dtype=torch.bool)).pooler_output
        ref = full.audio_projection(pooled)
    torch.testing.assert_close(enc(x)[:, 0], ref, atol=1e-5, rtol=0)


def test_bare_clap_audio_model_directory(tmp_path):
    from transformers import ClapAudioConfig, ClapAudioModel

    from audioflamingo.errors import ModelLoadError

    torch.manual_seed(2)
    bare = ClapAudioModel(ClapAudioConfig(**_tiny_audio_cfg())).eval()
    bare.save_pretrained(tmp_path)
    _fe().save_pretrained(tmp_path)
    enc = build_encoder(HFClapEncoder.config_from_directory(tmp_path, "dense"), WIN)
    enc.load_directory_weights(tmp_path)  # really loaded, not silently re-initialised
    assert torch.equal(
        enc.model.audio_model.audio_encoder.patch_embed.proj.weight, bare.audio_encoder.patch_embed.proj.weight
    )
    with pytest.raises(ModelLoadError, match="projection"):
        build_encoder(HFClapEncoder.config_from_directory(tmp_path, "pooled"), WIN).load_directory_weights(tmp_path)
