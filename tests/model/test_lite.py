"""The lean inference LM and tokenizer equal the transformers ones they stand in for."""

import subprocess
import sys

import pytest
import torch

from audioflamingo.model.lite import LiteCausalLM, supports
from audioflamingo.tasks import AudioFlamingoPipeline, default_model_dir, example_clip, left_pad
from audioflamingo.text.lite_tokenizer import LiteTokenizer
from audioflamingo.text.templates import tokenize
from tests.conftest import make_model, tiny_lm
from tests.model.test_generation import _rows


def _lite_twin(hf):
    lite = LiteCausalLM(hf.config.to_dict()).eval()
    lite.load_state_dict(hf.state_dict(), strict=True)
    return lite


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_logits_equal_transformers_with_left_padding_and_cache(family):
    hf = tiny_lm(family, 300)
    lite = _lite_twin(hf)
    torch.manual_seed(1)
    ids, mask = left_pad([torch.randint(5, 300, (n,)).tolist() for n in (7, 12, 3)], 0, "cpu")
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    ref = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    ours = lite(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    real = mask.bool()
    torch.testing.assert_close(ours[real], ref[real], atol=1e-5, rtol=0)
    # Prefix, then one token at a time through the KV cache: the same logits as the full pass.
    out = lite(input_ids=ids[:, :9], attention_mask=mask[:, :9], use_cache=True)
    steps = [out.logits]
    for t in range(9, ids.shape[1]):
        out = lite(
            input_ids=ids[:, t : t + 1],
            attention_mask=mask[:, : t + 1],
            past_key_values=out.past_key_values,
            use_cache=True,
        )
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, 1)[real], ref[real], atol=1e-5, rtol=0)


def test_unsupported_configs_are_refused():
    assert not supports({"model_type": "opt"})
    assert not supports({"model_type": "qwen2", "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}})
    with pytest.raises(ValueError, match="gpt2"):
        LiteCausalLM({"model_type": "gpt2", "hidden_size": 8, "num_attention_heads": 2})


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_audio_flamingo_greedy_and_scores_equal_on_lite(family):
    model, tok = make_model(family, gates=0.9)
    prompts, clips = _rows(model, tok)
    x, m = left_pad([tokenize(p, tok)[0] for p in prompts], model.special.pad, "cpu")
    ref_seq = model.generate(x, m, model.audio_state(clips), max_new_tokens=12, do_sample=False)
    ref_logits = model(x, m, audio=model.audio_state(clips)).logits
    hf_lm = model.lm
    model.lm = _lite_twin(hf_lm)
    model.fusion.attach(model.lm)
    assert model.is_lite
    seq = model.generate(x, m, model.audio_state(clips), max_new_tokens=12, do_sample=False)
    assert seq.tolist() == ref_seq.tolist()
    torch.testing.assert_close(
        model(x, m, audio=model.audio_state(clips)).logits[m.bool()], ref_logits[m.bool()], atol=1e-5, rtol=0
    )
    # Beams need transformers: the model swaps to it (same tensors) and still answers the same.
    beams = model.generate(x, m, model.audio_state(clips), max_new_tokens=12, num_beams=2, do_sample=False)
    assert not model.is_lite and beams.shape[0] == x.shape[0]
    assert (
        model.generate(x, m, model.audio_state(clips), max_new_tokens=12, do_sample=False).tolist() == ref_seq.tolist()
    )


def test_lite_tokenizer_equals_transformers(tmp_path):
    from transformers import AutoTokenizer

    d = default_model_dir()
    ours, ref = LiteTokenizer(d), AutoTokenizer.from_pretrained(str(d))
    texts = [
        "The task is audio captioning.",
        "<s><audio>Which instrument is playing?\nOptions:\n- organ\n<SEP>",
        "a man speaking<EOC></s>",
        "Ünïcode, émoji 🎵 and\ttabs",
        "",
    ]
    for t in texts:
        assert ours(t, add_special_tokens=False)["input_ids"] == ref(t, add_special_tokens=False)["input_ids"]
        ids = ref(t, add_special_tokens=False)["input_ids"]
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "bos_token", "eos_token"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert len(ours) == len(ref) and ours.get_vocab() == ref.get_vocab()
    assert ours.convert_tokens_to_ids(["<audio>", "<SEP>", "<EOC>"]) == ref.convert_tokens_to_ids(
        ["<audio>", "<SEP>", "<EOC>"]
    )
    ours.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(str(tmp_path))("<audio>x")["input_ids"] == ref("<audio>x")["input_ids"]


def test_default_model_answers_the_same_on_both_runtimes():
    clip = example_clip()
    questions = ["What do you hear first?", "What language is spoken?", "How many sounds are there?"]
    answers = {}
    for lite in (True, False):
        pipe = AudioFlamingoPipeline.load(lite=lite)
        assert pipe.model.is_lite == lite
        answers[lite] = (
            [pipe.caption([clip])[0]]
            + [pipe.ask(clip, q) for q in questions]
            + [pipe.classify(clip, ["organ", "piano", "violin"])[0]["label"]]
        )
    assert answers[True] == answers[False]


def test_demo_path_never_imports_transformers():
    code = (
        "import sys; from audioflamingo.cli import main; rc = main(['demo']); "
        "sys.exit(rc or (3 if any(m.split('.')[0] == 'transformers' for m in sys.modules) else 0))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "caption:" in run.stdout
