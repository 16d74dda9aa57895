"""Named architectures: `tiny` (tests, demos), `af1` and `af2` (the papers' full sizes).

`af1`/`af2` take local Hugging Face directories for the LM (and CLAP tower); without them they
build the full-size architecture from config with random weights (for benchmarks and conversion).
"""

from __future__ import annotations

from pathlib import Path

from audioflamingo.config import AudioFlamingoConfig, EncoderConfig, TransformationConfig, WindowConfig, XAttnConfig

PRESETS = ("tiny", "small", "af1", "af2")


def preset_config(name: str) -> tuple[AudioFlamingoConfig, dict]:
    """The AudioFlamingo config and the default LM config (model_type + kwargs) of a preset."""
    if name == "tiny":
        cfg = AudioFlamingoConfig(
            window=WindowConfig(
                sample_rate=16000, window_seconds=1.0, hop_seconds=0.5, max_windows=8, max_duration_seconds=600.0
            ),
            encoder=EncoderConfig(kind="mel_conv", output="dense", dim=32, tokens_per_window=4, n_mels=32, hidden=32),
            transformation=TransformationConfig(
                dim=32, num_layers=1, num_heads=4, ffn_dim=64, positions="rotary", rotary_dim=8
            ),
            xattn=XAttnConfig(every_n_layers=1, heads=2, dim_head=16, ff_mult=2),
            preset="tiny",
        )
        lm = dict(
            model_type="qwen2",
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        )
        return cfg, lm
    if name == "small":
        # The first default model (v1, shipped until 2026-12-05): trained from scratch on 2 CPU cores (recipes/default.yaml). Window and
        # encoder are replaced by those of the AF-CLAP the recipe trains first.
        cfg = AudioFlamingoConfig(
            window=WindowConfig(
                sample_rate=16000, window_seconds=1.0, hop_seconds=1.0, max_windows=10, max_duration_seconds=600.0
            ),
            encoder=EncoderConfig(kind="mel_conv", output="dense", dim=128, tokens_per_window=4, n_mels=64, hidden=128),
            transformation=TransformationConfig(
                dim=128, num_layers=2, num_heads=4, ffn_dim=256, positions="rotary", rotary_dim=16, rotary_base=4096.0
            ),
            xattn=XAttnConfig(every_n_layers=1, heads=4, dim_head=32, ff_mult=2),
            preset="small",
        )
        lm = dict(
            model_type="qwen2",
            hidden_size=256,
            intermediate_size=704,
            num_hidden_layers=6,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
        )
        return cfg, lm
    if name == "af1":
        clap = dict(
            spec_size=256,
            num_mel_bins=64,
            window_size=8,
            patch_size=4,
            patch_stride=[4, 4],
            patch_embeds_hidden_size=96,
            hidden_size=768,
            depths=[2, 2, 6, 2],
            num_attention_heads=[4, 8, 16, 32],
            projection_dim=1024,
            projection_hidden_size=1024,
            enable_fusion=False,
        )
        fe = dict(
            feature_size=64,
            sampling_rate=44100,
            hop_length=320,
            fft_window_size=1024,
            frequency_min=50,
            frequency_max=14000,
            max_length_s=7,
        )
        cfg = AudioFlamingoConfig(
            window=WindowConfig(sample_rate=44100, window_seconds=7.0, hop_seconds=1.75, max_windows=16),
            encoder=EncoderConfig(
                kind="hf_clap", output="pooled", dim=1024, tokens_per_window=1, hf_config=clap, feature_extractor=fe
            ),
            transformation=TransformationConfig(
                dim=1024, num_layers=3, num_heads=8, ffn_dim=2048, positions="sinusoidal", max_positions=128
            ),
            xattn=XAttnConfig(every_n_layers=1, heads=8, dim_head=64, ff_mult=4),
            preset="af1",
        )
        lm = dict(
            model_type="opt",
            hidden_size=2048,
            ffn_dim=8192,
            num_hidden_layers=24,
            num_attention_heads=32,
            vocab_size=50272,
            max_position_embeddings=2048,
            word_embed_proj_dim=2048,
            do_layer_norm_before=True,
        )
        return cfg, lm
    if name == "af2":
        clap = dict(
            spec_size=256,
            num_mel_bins=64,
            window_size=8,
            patch_size=4,
            patch_stride=[4, 4],
            patch_embeds_hidden_size=256,
            hidden_size=2048,
            depths=[2, 2, 12, 2],
            num_attention_heads=[4, 8, 16, 32],
            projection_dim=1024,
            projection_hidden_size=1024,
            enable_fusion=False,
        )
        fe = dict(
            feature_size=64,
            sampling_rate=16000,
            hop_length=160,
            fft_window_size=512,
            frequency_min=50,
            frequency_max=8000,
            max_length_s=10,
        )
        cfg = AudioFlamingoConfig(
            window=WindowConfig(sample_rate=16000, window_seconds=10.0, hop_seconds=10.0, max_windows=30),
            encoder=EncoderConfig(
                kind="hf_clap", output="dense", dim=2048, tokens_per_window=64, hf_config=clap, feature_extractor=fe
            ),
            transformation=TransformationConfig(
                dim=2048, num_layers=3, num_heads=8, ffn_dim=2048, positions="rotary", rotary_base=4096.0
            ),
            xattn=XAttnConfig(every_n_layers=1, heads=8, dim_head=64, ff_mult=4),
            preset="af2",
        )
        lm = dict(
            model_type="qwen2",
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
            rms_norm_eps=1e-6,
        )
        return cfg, lm
    raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")


def build(
    preset: str = "tiny",
    lm_dir: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    clap_dir: str | Path | None = None,
    lm_overrides: dict | None = None,
    seed: int = 0,
    afclap_dir: str | Path | None = None,
):
    """Build a model and tokenizer from a preset; returns (model, tokenizer).

    clap_dir: a Hugging Face CLAP directory whose audio tower becomes the encoder; afclap_dir: an
    AF-CLAP directory (`audioflamingo clap train`) whose audio tower and windows are used instead."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from audioflamingo.audio.encoders import HFClapEncoder
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer

    cfg, lm_kwargs = preset_config(preset)
    lm_kwargs.update(lm_overrides or {})
    torch.manual_seed(seed)
    tok_src = tokenizer_dir or lm_dir
    tokenizer = AutoTokenizer.from_pretrained(str(tok_src)) if tok_src else byte_level_tokenizer()
    special = add_special_tokens(tokenizer, cfg.audio_token, cfg.sep_token, cfg.eoc_token)
    if lm_dir:
        lm = AutoModelForCausalLM.from_pretrained(str(lm_dir), dtype=torch.float32)
    else:
        kw = dict(lm_kwargs)
        kw.setdefault("vocab_size", len(tokenizer))
        kw["vocab_size"] = max(kw["vocab_size"], len(tokenizer))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            kw[name] = getattr(tokenizer, name)
        lm = AutoModelForCausalLM.from_config(AutoConfig.for_model(kw.pop("model_type"), **kw))
    if lm.get_input_embeddings().num_embeddings < len(tokenizer):
        lm.resize_token_embeddings(len(tokenizer))
    if clap_dir:
        cfg.encoder = HFClapEncoder.config_from_directory(clap_dir, cfg.encoder.output)
    audio_state = None
    if afclap_dir:
        cfg.window, cfg.encoder, audio_state = _afclap_audio(afclap_dir)
    model = AudioFlamingo(cfg, lm, special)
    if clap_dir:
        model.encoder.load_directory_weights(clap_dir)
    if audio_state is not None:
        model.encoder.load_state_dict(audio_state, strict=True)
    model.eval()
    return model, tokenizer


def _afclap_audio(directory: str | Path):
    """(window, encoder config, encoder weights) of an AF-CLAP directory, without its text tower."""
    import json

    from safetensors import safe_open

    from audioflamingo.clap.model import ClapConfig
    from audioflamingo.errors import ModelLoadError

    d = Path(directory)
    try:
        raw = json.loads((d / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{d / 'config.json'}: cannot read AF-CLAP config ({err})") from None
    if raw.get("kind") != "afclap":
        raise ModelLoadError(f"{d}: not an AF-CLAP model directory")
    cfg = ClapConfig.from_dict(raw)
    cfg.encoder.frozen = True
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        state = {k[len("audio.") :]: f.get_tensor(k) for k in f.keys() if k.startswith("audio.")}
    return cfg.window, cfg.encoder, state
