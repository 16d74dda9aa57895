"""Official-checkpoint import: tiny state dicts in the official key layout (REFERENCE.md 8), converted
and compared with a forward pass written here from REFERENCE.md, independently of audioflamingo.model."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from audioflamingo.convert.convert import convert, official_tokenizer
from audioflamingo.errors import ModelLoadError
from audioflamingo.model.flamingo import AudioFlamingo
from audioflamingo.text.lite_tokenizer import load_tokenizer

FIX = Path(__file__).parents[1] / "fixtures"
sys.path.insert(0, str(FIX))
from make_official_fixtures import AF2_SR, af2_signal  # noqa: E402
from make_official_fixtures import test_signal as clapcap_signal  # noqa: E402


# ----------------------------------------------------------------------------- official-layout builders
def _lm_dir(tmp: Path, family: str) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM

    from audioflamingo.text.tokenizer import byte_level_tokenizer

    tok = byte_level_tokenizer()
    kw = dict(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    if family == "opt":
        cfg = AutoConfig.for_model(
            "opt",
            hidden_size=64,
            ffn_dim=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            word_embed_proj_dim=64,
            max_position_embeddings=128,
            **kw,
        )
    else:
        cfg = AutoConfig.for_model(
            "qwen2",
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            **kw,
        )
    torch.manual_seed(0)
    d = tmp / f"lm-{family}"
    AutoModelForCausalLM.from_config(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _official_state(lm_dir: Path, flavour: str, audio_dim: int, seed: int = 0) -> dict:
    """What the official Flamingo wrapper's state_dict() holds, written from REFERENCE.md 8."""
    from transformers import AutoModelForCausalLM

    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g) * 0.2  # noqa: E731
    lm = AutoModelForCausalLM.from_pretrained(lm_dir)
    lm.resize_token_embeddings(len(official_tokenizer(lm_dir, flavour)))  # as the official factories do
    layers = "model.decoder.layers" if flavour == "af1" else "model.layers"
    xname = "gated_cross_attn_layer" if flavour == "af1" else "gated_cross_attn_layer_sound"
    dup = "gated_cross_attn_layers" if flavour == "af1" else "gated_cross_attn_layers_sound"
    tp = "audio_transformer" if flavour == "af1" else "audio_transformer_clap"
    out = {}
    for k, v in lm.state_dict().items():
        v = v + rnd(*v.shape) * 0.1 if v.is_floating_point() else v  # not the saved LM: the checkpoint wins
        if k.startswith(layers + "."):
            i, rest = k[len(layers) + 1 :].split(".", 1)
            out[f"lang_encoder.{layers}.{i}.decoder_layer.{rest}"] = v
            out[f"lang_encoder.old_decoder_blocks.{i}.{rest}"] = v.clone()
        else:
            out[f"lang_encoder.{k}"] = v
    if "lang_encoder.lm_head.weight" in out:  # tied
        emb = (
            "lang_encoder.model.decoder.embed_tokens.weight"
            if flavour == "af1"
            else "lang_encoder.model.embed_tokens.weight"
        )
        out["lang_encoder.lm_head.weight"] = out[emb].clone()
    d, inner = lm.config.hidden_size, 128  # 2 heads x 64, as the official dim_head
    for i in range(lm.config.num_hidden_layers):
        x = {
            "attn_gate": torch.tensor([0.7 + 0.1 * i]),
            "ff_gate": torch.tensor([-0.5]),
            "attn.norm.weight": 1 + rnd(d),
            "attn.norm.bias": rnd(d),
            "attn.to_q.weight": rnd(inner, d),
            "attn.to_kv.weight": rnd(2 * inner, audio_dim),
            "attn.to_out.weight": rnd(d, inner),
            "ff.0.weight": 1 + rnd(d),
            "ff.0.bias": rnd(d),
            "ff.1.weight": rnd(4 * d, d),
            "ff.3.weight": rnd(d, 4 * d),
        }
        for k, v in x.items():
            out[f"lang_encoder.{layers}.{i}.{xname}.{k}"] = v
            out[f"lang_encoder.{dup}.{i}.{k}"] = v.clone()
    a = audio_dim
    for n in range(3):
        p = f"{tp}.layer_stack.{n}."
        out.update(
            {
                p + "slf_attn.w_qs.weight": rnd(a, a),
                p + "slf_attn.w_ks.weight": rnd(a, a),
                p + "slf_attn.w_vs.weight": rnd(a, a),
                p + "slf_attn.fc.weight": rnd(a, a),
                p + "slf_attn.layer_norm.weight": 1 + rnd(a),
                p + "slf_attn.layer_norm.bias": rnd(a),
                p + "pos_ffn.w_1.weight": rnd(2 * a, a),
                p + "pos_ffn.w_1.bias": rnd(2 * a),
                p + "pos_ffn.w_2.weight": rnd(a, 2 * a),
                p + "pos_ffn.w_2.bias": rnd(a),
                p + "pos_ffn.layer_norm.weight": 1 + rnd(a),
                p + "pos_ffn.layer_norm.bias": rnd(a),
            }
        )
    out[f"{tp}.layer_norm.weight"], out[f"{tp}.layer_norm.bias"] = 1 + rnd(a), rnd(a)
    if flavour == "af1":
        pos = np.array([[p / np.power(10000, 2 * (j // 2) / a) for j in range(a)] for p in range(128)])
        pos[:, 0::2], pos[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
        out[f"{tp}.position_enc.pos_table"] = torch.tensor(pos, dtype=torch.float32)[None]
    else:
        rot = max((a // 2) // 2, 32)  # official: RotaryEmbedding(max(dim_head // 2, 32)); 2 heads here
        out[f"{tp}.position_enc.inv_freq"] = 1.0 / (4096 ** (torch.arange(0, rot, 2).float() / rot))
    return out


# ----------------------------------------------------------------------------- the reference forward
def _ref_transformation(st: dict, tp: str, x: torch.Tensor, heads: int, flavour: str) -> torch.Tensor:
    """REFERENCE.md 2: x*sqrt(d) (+ sinusoid table), LayerNorm, 3 post-LN layers (MHA, ReLU FFN)."""
    b, n, d = x.shape
    ln = lambda t, p: F.layer_norm(t, (d,), st[p + ".weight"], st[p + ".bias"], eps=1e-6)  # noqa: E731
    x = x * math.sqrt(d)
    if flavour == "af1":
        x = x + st[f"{tp}.position_enc.pos_table"][:, :n]
    x = ln(x, f"{tp}.layer_norm")
    inv = st.get(f"{tp}.position_enc.inv_freq")
    for i in range(3):
        p = f"{tp}.layer_stack.{i}."
        q, k, v = (
            F.linear(x, st[p + f"slf_attn.{w}.weight"]).view(b, n, heads, d // heads).transpose(1, 2)
            for w in ("w_qs", "w_ks", "w_vs")
        )
        if inv is not None:  # rotate-half rotary on the first 2*len(inv_freq) channels, base 4096
            f = torch.outer(torch.arange(n).float(), inv)
            f = torch.cat((f, f), -1)

            def rot(t):
                r = f.shape[-1]
                a, keep = t[..., :r], t[..., r:]
                a1, a2 = a.chunk(2, -1)
                return torch.cat((a * f.cos() + torch.cat((-a2, a1), -1) * f.sin(), keep), -1)

            q, k = rot(q), rot(k)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), -1) @ v
        x = ln(
            F.linear(att.transpose(1, 2).reshape(b, n, d), st[p + "slf_attn.fc.weight"]) + x, p + "slf_attn.layer_norm"
        )
        h = F.linear(
            F.relu(F.linear(x, st[p + "pos_ffn.w_1.weight"], st[p + "pos_ffn.w_1.bias"])),
            st[p + "pos_ffn.w_2.weight"],
            st[p + "pos_ffn.w_2.bias"],
        )
        x = ln(h + x, p + "pos_ffn.layer_norm")
    return x


def _ref_logits(
    st: dict, lm_dir: Path, flavour: str, ids: torch.Tensor, audio: torch.Tensor, heads: int, real: int | None = None
):
    """Gated xattn-dense before every LM block (REFERENCE.md 2), all text seeing the one audio (its
    first `real` windows only, when given: the official media mask over padded windows)."""
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(lm_dir)
    lm.resize_token_embeddings(
        st[
            "lang_encoder.model.decoder.embed_tokens.weight"
            if flavour == "af1"
            else "lang_encoder.model.embed_tokens.weight"
        ].shape[0]
    )
    layers = "model.decoder.layers" if flavour == "af1" else "model.layers"
    xname = "gated_cross_attn_layer" if flavour == "af1" else "gated_cross_attn_layer_sound"
    sd = {}
    for k, v in st.items():
        if k.startswith("lang_encoder.") and ".decoder_layer." in k:
            sd[k[len("lang_encoder.") :].replace(".decoder_layer.", ".")] = v
        elif k.startswith("lang_encoder.") and not any(s in k for s in ("old_decoder_blocks", "gated_cross_attn")):
            sd[k[len("lang_encoder.") :]] = v
    lm.load_state_dict(sd, strict=True)
    mem = audio  # (1, windows, dim_audio)

    def hook(i):
        def pre(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            p = f"lang_encoder.{layers}.{i}.{xname}."
            d = x.shape[-1]
            h = F.layer_norm(x, (d,), st[p + "attn.norm.weight"], st[p + "attn.norm.bias"])
            q = F.linear(h, st[p + "attn.to_q.weight"])
            k, v = F.linear(mem, st[p + "attn.to_kv.weight"]).chunk(2, -1)
            sh = lambda t: t.view(t.shape[0], t.shape[1], -1, 64).transpose(1, 2)  # noqa: E731
            sc = sh(q) @ sh(k).transpose(-1, -2) * 64**-0.5
            if real is not None:
                sc[..., real:] = -torch.finfo(sc.dtype).max
            att = torch.softmax(sc, -1) @ sh(v)
            x = x + torch.tanh(st[p + "attn_gate"]) * F.linear(
                att.transpose(1, 2).flatten(2), st[p + "attn.to_out.weight"]
            )
            f = F.layer_norm(x, (d,), st[p + "ff.0.weight"], st[p + "ff.0.bias"])
            x = x + torch.tanh(st[p + "ff_gate"]) * F.linear(
                F.gelu(F.linear(f, st[p + "ff.1.weight"])), st[p + "ff.3.weight"]
            )
            return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

        return pre

    blocks = lm.model.decoder.layers if flavour == "af1" else lm.model.layers
    for i, blk in enumerate(blocks):
        blk.register_forward_pre_hook(hook(i), with_kwargs=True)
    with torch.no_grad():
        return lm(input_ids=ids).logits


# ----------------------------------------------------------------------------- tests
def _af1(tmp_path):
    lm = _lm_dir(tmp_path, "opt")
    st = _official_state(lm, "af1", audio_dim=24)
    torch.save({"model_state_dict": st}, tmp_path / "foundation.pt")
    clap = load_file(str(FIX / "clapcap_tiny.safetensors"))
    expected = clap.pop("expected.embedding")
    torch.save({"model": clap}, tmp_path / "clapcap.pth")
    return lm, st, expected


def _af2(tmp_path):
    lm = _lm_dir(tmp_path, "qwen2")
    st = _official_state(lm, "af2", audio_dim=128, seed=1)
    clap = load_file(str(FIX / "afclap_tiny.safetensors"))
    expected = clap.pop("expected.encodings")
    st.update(
        {
            "clap.afclap." + k[len("module.audio_branch.") :]: v
            for k, v in clap.items()
            if k.startswith("module.audio_branch.")
        }
    )
    ck = tmp_path / "safe_ckpt"
    ck.mkdir()
    keys = sorted(st)
    chunks = {"chunk_0": keys[: len(keys) // 2], "chunk_1": keys[len(keys) // 2 :]}
    for name, ks in chunks.items():
        save_file({k: st[k].contiguous() for k in ks}, str(ck / f"{name}.safetensors"))
    (ck / "metadata.json").write_text(__import__("json").dumps(chunks))
    return lm, st, expected


def test_af1_converts_every_key_and_matches_the_reference_forward(tmp_path):
    lm, st, expected_emb = _af1(tmp_path)
    rep = convert("af1", tmp_path / "foundation.pt", lm, tmp_path / "out", clap=tmp_path / "clapcap.pth", audio_heads=8)
    n_dup = sum(1 for k in st if "old_decoder_blocks" in k or ".gated_cross_attn_layers." in k)
    assert rep["unmapped"] == 0 and rep["duplicates_dropped"] == n_dup
    assert rep["mapped"] + rep["duplicates_dropped"] == len(st)
    assert "gpt.*" in rep["not_converted"]  # ClapCap's caption decoder, reported, not silently skipped
    model = AudioFlamingo.from_pretrained(tmp_path / "out")
    tok = load_tokenizer(tmp_path / "out")
    base = len(tok) - 3  # the byte-level test tokenizer has no <SEP>/<pad> clash: 3 tokens appended
    assert [tok.convert_tokens_to_ids(t) for t in ("<audio>", "<|endofchunk|>", "<SEP>")] == [base, base + 1, base + 2]
    wave = clapcap_signal(1)  # one full 7 s window at 44.1 kHz
    with torch.no_grad():
        emb = model.encoder(torch.from_numpy(wave)[None])[:, 0]
    torch.testing.assert_close(emb, expected_emb[:1], atol=1e-4, rtol=0)  # = the official ClapCap code
    ids = torch.tensor(
        [
            tok("<s>the task is audio captioning. <audio>describe this.\nanswer:<SEP>a", add_special_tokens=False)[
                "input_ids"
            ]
        ]
    )
    feats = model.encode_clips([wave])[0]
    with torch.no_grad():
        ours = model(ids, torch.ones_like(ids), audio=model.audio_state([[feats]])).logits
    torch.testing.assert_close(ours, _official_af1_logits(model, st, lm, ids, wave), atol=1e-5, rtol=0)


def _official_af1_windows(wave: np.ndarray, sr: int = 44100) -> np.ndarray:
    """The official AF1 slicing: 7 s windows every 1.75 s, the clip zero-padded to whole windows."""
    win, hop = 7 * sr, int(1.75 * sr)
    n = 1 if len(wave) <= win else 1 + math.ceil((len(wave) - win) / hop)
    padded = np.concatenate([wave, np.zeros(win + (n - 1) * hop - len(wave), np.float32)])
    return np.stack([padded[i * hop : i * hop + win] for i in range(n)])


def _official_af1_logits(model, st, lm, ids, wave):
    """The official AF1 forward for one clip: its windows, then silence up to 16 windows through the
    encoder (= the official ClapCap, checked above), the transformation over all 16 unmasked, and
    cross-attention over the real windows only."""
    frames = _official_af1_windows(wave)
    silence = np.zeros((16 - len(frames), frames.shape[1]), np.float32)
    with torch.no_grad():
        emb = model.encoder(torch.from_numpy(np.concatenate([frames, silence])))[:, 0]
    audio = _ref_transformation(st, "audio_transformer", emb[None], 8, "af1")
    return _ref_logits(st, lm, "af1", ids, audio, 8, real=len(frames))


def test_af1_short_clip_matches_the_official_forward(tmp_path):
    """5 of 16 windows: the official code fills the rest with encoded silence that its transformation
    layers attend to (only cross-attention masks them); a converted AF1 does the same."""
    lm, st, _ = _af1(tmp_path)
    convert("af1", tmp_path / "foundation.pt", lm, tmp_path / "out", clap=tmp_path / "clapcap.pth", audio_heads=8)
    model = AudioFlamingo.from_pretrained(tmp_path / "out")
    tok = load_tokenizer(tmp_path / "out")
    assert model.config.transformation.padded_windows == "official"
    wave = clapcap_signal(2)  # 14 s: 5 windows of the 16
    assert len(_official_af1_windows(wave)) == 5
    ids = torch.tensor(
        [
            tok("<s>the task is audio captioning. <audio>describe this.\nanswer:<SEP>a", add_special_tokens=False)[
                "input_ids"
            ]
        ]
    )
    ref = _official_af1_logits(model, st, lm, ids, wave)
    feats = model.encode_clips([wave])[0]
    with torch.no_grad():
        ours = model(ids, torch.ones_like(ids), audio=model.audio_state([[feats]])).logits
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    # What the masked view (models trained here) gives instead: a different function of the clip.
    model.config.transformation.padded_windows = "masked"
    with torch.no_grad():
        masked = model(ids, torch.ones_like(ids), audio=model.audio_state([[feats]])).logits
    assert (masked - ref).abs().max() > 1e-3


def test_af2_sharded_checkpoint_matches_the_reference_forward(tmp_path):
    lm, st, expected = _af2(tmp_path)
    rep = convert("af2", tmp_path / "safe_ckpt", lm, tmp_path / "out", audio_heads=2)
    assert rep["unmapped"] == 0 and rep["derived_checked"] == 1
    model = AudioFlamingo.from_pretrained(tmp_path / "out")
    tok = load_tokenizer(tmp_path / "out")
    assert tok.pad_token == "<|PAD_TOKEN|>" and tok.convert_tokens_to_ids("<SEP>") == len(tok) - 1
    wave = af2_signal(1)
    wave = (np.clip(wave, -1, 1) * 32767.0).astype(np.int16) / 32767.0  # the official int16 round trip
    with torch.no_grad():
        dense = model.encoder(torch.from_numpy(wave).float()[None])
    torch.testing.assert_close(dense, expected[:1], atol=1e-4, rtol=0)  # = AF2's AF-CLAP encodings
    ids = torch.tensor([tok("<s>Describe the sound.<audio>What is it?<SEP>a", add_special_tokens=False)["input_ids"]])
    feats = model.encode_clips([wave.astype(np.float32)])[0]
    with torch.no_grad():
        ours = model(ids, torch.ones_like(ids), audio=model.audio_state([[feats]])).logits
    ref_audio = _ref_transformation(st, "audio_transformer_clap", dense, 2, "af2")
    torch.testing.assert_close(ours, _ref_logits(st, lm, "af2", ids, ref_audio, 2), atol=1e-5, rtol=0)
    # several audios: cached decoding == recomputing everything
    prompt = torch.tensor(
        [
            tok("<s>Here are similar samples.\n<audio>a<SEP>b<|endofchunk|>\n<audio>c<SEP>", add_special_tokens=False)[
                "input_ids"
            ]
        ]
    )
    rng = np.random.default_rng(0)
    clips = model.encode_clips([rng.standard_normal(AF2_SR * 12).astype(np.float32) * 0.1, wave.astype(np.float32)])
    out = model.generate(
        prompt,
        torch.ones_like(prompt),
        model.audio_state([clips]),
        max_new_tokens=6,
        min_new_tokens=6,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
    )
    with torch.no_grad():
        full = model(out.sequences, torch.ones_like(out.sequences), audio=model.audio_state([clips])).logits
    n = prompt.shape[1]
    ref = full[:, n - 1 : -1].clone()
    step = torch.stack(out.logits, 1)
    ref[..., model.special.audio] = step[..., model.special.audio]
    torch.testing.assert_close(step, ref, atol=1e-4, rtol=0)


def test_mismatches_are_errors_that_list_the_keys(tmp_path):
    lm, st, _ = _af1(tmp_path)
    bad = dict(st)
    bad["lang_encoder.old_decoder_blocks.0.fc1.weight"] = bad["lang_encoder.old_decoder_blocks.0.fc1.weight"] + 1
    torch.save({"model_state_dict": bad}, tmp_path / "dup.pt")
    with pytest.raises(ModelLoadError, match="old_decoder_blocks.0.fc1.weight differs"):
        convert("af1", tmp_path / "dup.pt", lm, tmp_path / "o1", clap=tmp_path / "clapcap.pth")
    gone = {k: v for k, v in st.items() if not k.endswith("gated_cross_attn_layer.ff.3.weight")}
    torch.save({"model_state_dict": gone}, tmp_path / "gone.pt")
    with pytest.raises(ModelLoadError, match=r"does not provide: \['fusion.xattn.0.ff.3.weight'"):
        convert("af1", tmp_path / "gone.pt", lm, tmp_path / "o2", clap=tmp_path / "clapcap.pth")
    extra = {**st, "lang_encoder.something_new.weight": torch.zeros(2)}
    torch.save({"model_state_dict": extra}, tmp_path / "extra.pt")
    with pytest.raises(ModelLoadError, match="lm.something_new.weight"):
        convert("af1", tmp_path / "extra.pt", lm, tmp_path / "o3", clap=tmp_path / "clapcap.pth")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()  # nothing half-written
    with pytest.raises(ModelLoadError, match="pass --clap"):
        convert("af1", tmp_path / "foundation.pt", lm, tmp_path / "o4")


def test_pickles_are_read_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelLoadError, match="weights-only"):
        from audioflamingo.convert.io import read_pickle

        read_pickle(tmp_path / "evil.pt")


def test_cli_convert_writes_a_usable_directory_or_nothing(tmp_path, capsys):
    import soundfile as sf

    from audioflamingo.cli import main
    from audioflamingo.tasks import AudioFlamingoPipeline, Query

    lm, st, _ = _af1(tmp_path)
    bad = {k: v for k, v in st.items() if "pos_table" not in k}
    torch.save({"model_state_dict": bad}, tmp_path / "bad.pt")
    rc = main(
        [
            "convert",
            "af1",
            "--checkpoint",
            str(tmp_path / "bad.pt"),
            "--lm",
            str(lm),
            "--clap",
            str(tmp_path / "clapcap.pth"),
            "--out",
            str(tmp_path / "bad-out"),
        ]
    )
    assert rc != 0 and "audio_transformer.position_enc.pos_table missing" in capsys.readouterr().err
    assert not (tmp_path / "bad-out").exists() and not list(tmp_path.glob(".bad-out*"))
    assert (
        main(
            [
                "convert",
                "af1",
                "--checkpoint",
                str(tmp_path / "foundation.pt"),
                "--lm",
                str(lm),
                "--clap",
                str(tmp_path / "clapcap.pth"),
                "--out",
                str(tmp_path / "af1"),
            ]
        )
        == 0
    )
    pipe = AudioFlamingoPipeline.load(tmp_path / "af1")
    assert pipe.style == "af1"
    text = (
        Query("x.wav", "Describe the sound in a sentence.", "The task is audio captioning.")
        .render(pipe.tokenizer, style=pipe.style)
        .text
    )
    assert text.endswith("the task is audio captioning. <audio>describe the sound in a sentence.\nanswer:<SEP>")
    sf.write(tmp_path / "c.wav", clapcap_signal(1)[: SR_AF1 * 3], SR_AF1)
    from audioflamingo.tasks import GenerationSettings

    assert isinstance(pipe.caption([tmp_path / "c.wav"], GenerationSettings(max_new_tokens=4))[0], str)


SR_AF1 = 44100


def test_untied_head_for_a_tied_lm_is_refused(tmp_path):
    lm, st, _ = _af1(tmp_path)
    st = dict(st)
    st["lang_encoder.lm_head.weight"] = st["lang_encoder.lm_head.weight"] + 0.5
    torch.save({"model_state_dict": st}, tmp_path / "untied.pt")
    with pytest.raises(ModelLoadError, match="ties them"):
        convert("af1", tmp_path / "untied.pt", lm, tmp_path / "o", clap=tmp_path / "clapcap.pth")
