import json

import pytest
import torch

from audioflamingo.errors import ModelLoadError
from audioflamingo.model.flamingo import AudioFlamingo
from audioflamingo.presets import build, preset_config
from audioflamingo.text.lite_tokenizer import load_tokenizer
from tests.conftest import noise


def test_save_load_roundtrip(tmp_path):
    model, tok = build("tiny", seed=3)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("_gate"):
                p.fill_(0.5)
    model.save_pretrained(tmp_path, tok)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.tmp"))
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["preset"] == "tiny" and cfg["lm"]["model_type"] == "qwen2"
    loaded = AudioFlamingo.from_pretrained(tmp_path)
    assert isinstance(loaded, AudioFlamingo)  # the model alone; the tokenizer has its own loader
    tok2 = load_tokenizer(tmp_path)
    ids = torch.tensor([tok("<s>x<audio>describe<SEP>", add_special_tokens=False)["input_ids"]])
    assert ids.tolist() == [tok2("<s>x<audio>describe<SEP>", add_special_tokens=False)["input_ids"]]
    wave = noise(1.4)
    with torch.no_grad():
        a = model(ids, torch.ones_like(ids), audio=model.audio_state([model.encode_clips([wave])])).logits
        b = loaded(ids, torch.ones_like(ids), audio=loaded.audio_state([loaded.encode_clips([wave])])).logits
    assert torch.equal(a, b)


def test_load_is_strict(tmp_path):
    from safetensors.torch import load_file, save_file

    model, tok = build("tiny")
    model.save_pretrained(tmp_path, tok)
    sd = load_file(tmp_path / "model.safetensors")
    sd.pop(next(k for k in sd if "xattn" in k))
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(ModelLoadError, match="do not match"):
        AudioFlamingo.from_pretrained(tmp_path)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json: missing"):
        AudioFlamingo.from_pretrained(tmp_path)


@pytest.mark.parametrize("name,lm_type,layers,tdim", [("af1", "opt", 24, 1024), ("af2", "qwen2", 36, 2048)])
def test_full_size_presets_describe_the_papers(name, lm_type, layers, tdim):
    cfg, lm = preset_config(name)
    assert lm["model_type"] == lm_type and lm["num_hidden_layers"] == layers and cfg.transformation.dim == tdim
    assert cfg.transformation.num_layers == 3 and cfg.transformation.num_heads == 8
    assert (cfg.xattn.heads, cfg.xattn.dim_head, cfg.xattn.every_n_layers) == (8, 64, 1)
    if name == "af1":
        assert cfg.transformation.positions == "sinusoidal" and cfg.encoder.output == "pooled"
        assert cfg.window.sample_rate == 44100
    else:
        assert cfg.transformation.positions == "rotary" and cfg.transformation.rotary_base == 4096
        assert cfg.encoder.output == "dense" and cfg.encoder.tokens_per_window == 64


def test_af1_preset_wraps_a_local_hf_lm_directory(tmp_path):
    """The full-size preset around an LM read from a local directory (here a tiny OPT)."""
    from audioflamingo.text.tokenizer import byte_level_tokenizer
    from tests.conftest import tiny_lm

    tok = byte_level_tokenizer()
    lm = tiny_lm("opt", len(tok) + 3)
    lm.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, tok2 = build("af1", lm_dir=tmp_path)
    assert type(model.lm).__name__ == "OPTForCausalLM" and len(tok2) == len(tok) + 3
    for k, v in lm.state_dict().items():
        assert torch.equal(model.lm.state_dict()[k], v), k
    assert model.fusion.xattn["0"].attn.to_kv.weight.shape == (1024, 1024)  # AF1: to_kv [1024, 1024]
    assert model.fusion.xattn["0"].attn.to_q.weight.shape == (512, 32)
    assert model.transformation.position_enc.pos_table.shape == (1, 128, 1024)


def test_positions_switch_keeps_every_learnt_weight(tmp_path):
    """A rotary model loads as rotary+sinusoidal for fine-tuning: only the derived table is new."""
    model, tok = build("tiny", seed=0)
    model.save_pretrained(tmp_path / "rot", tok)
    switched = AudioFlamingo.from_pretrained(tmp_path / "rot", positions="rotary+sinusoidal")
    assert switched.config.transformation.positions == "rotary+sinusoidal"
    before, after = model.state_dict(), switched.state_dict()
    assert set(after) - set(before) == {"transformation.position_enc.pos_table"}
    assert all(torch.equal(before[k], after[k]) for k in before)
    switched.save_pretrained(tmp_path / "both", tok)  # and it round-trips strictly
    again = AudioFlamingo.from_pretrained(tmp_path / "both")
    assert again.config.transformation.positions == "rotary+sinusoidal"
    with pytest.raises(ModelLoadError, match=r"1 keys, e.g. transformation.layer_stack"):  # others still refuse
        from safetensors.torch import load_file, save_file

        w = load_file(str(tmp_path / "rot" / "model.safetensors"))
        w.pop(next(k for k in w if k.startswith("transformation.layer_stack")))
        save_file(w, str(tmp_path / "rot" / "model.safetensors"), metadata={"format": "pt"})
        AudioFlamingo.from_pretrained(tmp_path / "rot", positions="rotary+sinusoidal")


def test_tokenizer_loads_without_transformers_config_warning(tmp_path, capfd):
    # AutoTokenizer reads config.json too; model_type "audioflamingo" is unknown to AutoConfig unless
    # audioflamingo.hf is imported, and transformers then warned on every command.
    model, tok = build("tiny")
    model.save_pretrained(tmp_path, tok)
    capfd.readouterr()
    load_tokenizer(tmp_path)
    err = capfd.readouterr().err
    assert "to instantiate a model of type" not in err


def test_loading_draws_no_random_initial_weights(tmp_path):
    # from_pretrained builds the layers without random draws (model/no_init.py), since the strict
    # load overwrites every parameter: the global RNG is untouched and torch.nn.init is restored.
    from torch.nn import init

    model, tok = build("tiny", seed=3)
    model.save_pretrained(tmp_path, tok)
    before = torch.get_rng_state()
    kaiming = init.kaiming_uniform_
    loaded = AudioFlamingo.from_pretrained(tmp_path, lite=True)
    assert torch.equal(torch.get_rng_state(), before)
    assert init.kaiming_uniform_ is kaiming
    for (name, p), (_, q) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(p, q), name
