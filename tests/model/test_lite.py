"""The lean inference LM and tokenizer equal the transformers ones they stand in for."""

import copy
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


# ----------------------------------------------------------------------------- CPU decode layouts (issue 21)
def _unpacked(lite):
    """The same module computing through nn.Linear's own path (the packed matrices dropped)."""
    twin = copy.deepcopy(lite)
    twin.packed = True  # as if packed, but with nothing to use: forward takes nn.Linear's path
    for layer in twin.model.layers:
        layer.self_attn._qkv = None
        layer.mlp._gate_up = None
    return twin


def test_packed_layout_keeps_names_values_and_loads_strict_into_transformers(tmp_path):
    from safetensors.torch import load_model, save_model

    hf = tiny_lm("qwen2", 300)
    lite = _lite_twin(hf)
    assert not lite.packed  # loading needs no copy of the weights; the first forward packs them
    ids = torch.randint(5, 300, (2, 9))
    lite(ids)
    mlp, attn = lite.model.layers[0].mlp, lite.model.layers[0].self_attn
    # gate/up and q/k/v are views of one matrix each: one product per step.
    assert mlp.gate_proj.weight.data_ptr() == mlp._gate_up.data_ptr()
    assert attn.q_proj.weight.data_ptr() == attn._qkv.data_ptr()
    assert not mlp.up_proj.weight.is_contiguous()
    sd = lite.state_dict()
    assert list(sd) == list(hf.state_dict())
    for k, v in hf.state_dict().items():
        assert sd[k].is_contiguous() and torch.equal(sd[k], v), k
    back = tiny_lm("qwen2", 300)
    with torch.no_grad():
        for p in back.parameters():
            p.zero_()
    back.load_state_dict(sd, strict=True)
    torch.testing.assert_close(back(ids).logits, hf(ids).logits, atol=0, rtol=0)
    save_model(lite, str(tmp_path / "m.safetensors"))
    again = LiteCausalLM(hf.config.to_dict()).eval()
    again(ids)  # packed before loading: the checkpoint is copied into the views
    load_model(again, str(tmp_path / "m.safetensors"), strict=True)
    assert again.model.layers[0].mlp.gate_proj.weight.data_ptr() == again.model.layers[0].mlp._gate_up.data_ptr()
    torch.testing.assert_close(again(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)


def test_packed_and_unpacked_paths_give_the_same_logits_and_survive_dtype_conversion():
    hf = tiny_lm("qwen2", 300)
    lite = _lite_twin(hf)
    ids = torch.randint(5, 300, (2, 11))
    lite(ids)
    plain = _unpacked(lite)
    torch.testing.assert_close(lite(ids).logits, plain(ids).logits, atol=1e-6, rtol=0)
    lite64, plain64 = copy.deepcopy(lite).double(), plain.double()
    mlp = lite64.model.layers[1].mlp
    assert mlp._gate_up.dtype == torch.float64 and mlp.gate_proj.weight.data_ptr() == mlp._gate_up.data_ptr()
    torch.testing.assert_close(lite64(ids).logits, plain64(ids).logits, atol=1e-12, rtol=0)


def test_kv_cache_grows_in_place_within_its_reserve():
    from audioflamingo.model.lite import KVCache

    hf = tiny_lm("llama", 300)
    lite = _lite_twin(hf)
    ids = torch.randint(5, 300, (1, 12))
    cache = KVCache(len(lite.model.layers), reserve=3)
    out = lite(ids[:, :8], past_key_values=cache, use_cache=True)
    buf = cache.k[0].data_ptr()
    steps = [out.logits]
    for t in range(8, 12):  # the 4th step overflows the reserve of 3: the buffer doubles
        steps.append(lite(ids[:, t : t + 1], past_key_values=cache, use_cache=True).logits)
        assert (cache.k[0].data_ptr() == buf) == (t < 11)
    assert cache.get_seq_length() == 12
    torch.testing.assert_close(torch.cat(steps, 1), hf(ids).logits, atol=1e-5, rtol=0)


def test_bf16_logit_drift_is_bounded():
    """The reduced-precision path: same model in bf16, next-token logits within a bound of fp32's
    (relative to the logits' spread; measured ~0.03 on this config, bound 0.1) and the same argmax
    wherever fp32's top two are not near-tied."""
    hf = tiny_lm("qwen2", 300)
    lite = _lite_twin(hf)
    ids = torch.randint(5, 300, (3, 16))
    a = lite(ids).logits
    b = copy.deepcopy(lite).to(torch.bfloat16)(ids).logits.float()
    rel = (a - b).abs().amax() / a.std()
    assert rel < 0.1, float(rel)
    top2 = a.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 2 * (a - b).abs().amax()
    assert clear.any()
    assert torch.equal(a.argmax(-1)[clear], b.argmax(-1)[clear])


def test_decode_thread_policy():
    from audioflamingo.model.decode_threads import decode_thread_count, prefill_thread_count

    assert decode_thread_count(1, 2) == 1  # batch 1: one thread (bandwidth-bound, robust under load)
    assert decode_thread_count(16, 2) == 2  # batches: every thread torch has
    assert decode_thread_count(1, 2, "2") == 2 and decode_thread_count(16, 4, "3") == 3  # override
    assert decode_thread_count(1, 2, "0") == 2 and decode_thread_count(1, 2, " ") == 1  # 0: torch's own
    assert decode_thread_count(16, 2, loaded=True) == 1  # other work running: one thread for any batch
    assert decode_thread_count(16, 2, "2", loaded=True) == 2  # the override still wins
    assert prefill_thread_count(2) == 2 and prefill_thread_count(2, loaded=True) == 1
    assert prefill_thread_count(2, "1", loaded=True) == 2  # pinned decode threads: prefill left alone


def test_generate_decodes_on_the_policy_threads_and_restores_them(monkeypatch):
    hf = tiny_lm("qwen2", 300)
    lite = _lite_twin(hf)
    seen = []

    def spy(seq, scores):
        seen.append((seq.shape[0], torch.get_num_threads()))
        return scores

    monkeypatch.delenv("AUDIOFLAMINGO_DECODE_THREADS", raising=False)
    monkeypatch.setattr("audioflamingo.model.decode_threads.machine_loaded", lambda: False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ids, mask = left_pad([[5, 6, 7], [8, 9]], 0, "cpu")
        lite.generate(ids[:1], mask[:1], max_new_tokens=3, logits_processor=[spy])
        lite.generate(ids, mask, max_new_tokens=3, logits_processor=[spy])
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("AUDIOFLAMINGO_DECODE_THREADS", "2")
        lite.generate(ids[:1], mask[:1], max_new_tokens=2, logits_processor=[spy])
    finally:
        torch.set_num_threads(before)
    assert seen == [(1, 1)] * 3 + [(2, 2)] * 3 + [(1, 2)] * 2


def test_cpu_dtype_choice():
    from audioflamingo.model.cpu_dtype import MIN_SPEEDUP, choose, has_bf16_instructions

    def never():
        raise AssertionError("measured without need")

    assert choose("cpu", "bfloat16", False, never) == torch.bfloat16  # the override wins
    assert choose("cpu", "float32", True, never) == torch.float32
    assert choose("cpu", None, False, never) == torch.float32  # no bf16 instructions: not even measured
    assert choose("cpu", None, True, lambda: MIN_SPEEDUP * 1.01) == torch.bfloat16
    assert choose("cpu", None, True, lambda: 0.5) == torch.float32  # measured slower (Zen 4 here)
    assert choose("cuda", None, True, never) == torch.float32
    with pytest.raises(ValueError, match="AUDIOFLAMINGO_DTYPE"):
        choose("cpu", "fp8", True, never)
    assert has_bf16_instructions({"avx2", "avx512_bf16"}) and not has_bf16_instructions({"avx2", "avx512f"})


def test_cross_attention_decode_path_equals_many_query_path():
    from audioflamingo.model.xattn import MaskedCrossAttention

    torch.manual_seed(0)
    att = MaskedCrossAttention(32, 24, heads=4, dim_head=8).eval()
    audio = torch.randn(2, 10, 24)
    k, v = att.keys_values(audio)
    x = torch.randn(2, 5, 32)
    mask = torch.rand(2, 5, 10) > 0.4
    mask[1, 3] = False  # a query with no visible audio gets exactly zero
    full = att(x, k, v, mask)
    for q in range(5):
        torch.testing.assert_close(att(x[:, q : q + 1], k, v, mask[:, q : q + 1]), full[:, q : q + 1])
    assert att(x[1:, 3:4], k[1:], v[1:], mask[1:, 3:4]).abs().max() == 0
    everything = torch.ones(2, 5, 10, dtype=torch.bool)  # no mask at all: both paths unmasked
    assert MaskedCrossAttention.prepare(everything) == (None, None)
    torch.testing.assert_close(att(x[:, 2:3], k, v, everything[:, 2:3]), att(x, k, v, everything)[:, 2:3])


def test_bf16_audio_kv_projection_is_opt_in_and_close(monkeypatch):
    model, _ = make_model("qwen2", gates=0.9)
    feats = [[torch.randn(2, model.config.encoder.tokens_per_window, model.config.encoder.dim)]]
    monkeypatch.delenv("AUDIOFLAMINGO_PREFILL_DTYPE", raising=False)
    block = model.fusion.xattn[str(model.fusion.layer_ids[0])]
    st = model.audio_state(feats)
    k32, v32 = model.fusion._kv(0, block, st)
    assert torch.equal(k32, block.attn.keys_values(st.audio)[0])  # default: fp32, exact
    monkeypatch.setenv("AUDIOFLAMINGO_PREFILL_DTYPE", "bfloat16")
    k16, v16 = model.fusion._kv(0, block, model.audio_state(feats))
    assert k16.dtype == torch.float32 and not torch.equal(k16, k32)
    assert (k16 - k32).abs().max() < 0.05 * k32.std() and (v16 - v32).abs().max() < 0.05 * v32.std()
