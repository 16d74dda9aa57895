"""Batched generation equals one-by-one; audio K/V caching changes nothing but speed."""

import pytest
import torch

from audioflamingo.tasks import left_pad
from audioflamingo.text.templates import TASK_DESCRIPTIONS, Example, render_interleaved, render_single, tokenize
from tests.conftest import make_model, noise


def _rows(model, tok):
    """Mixed prompt lengths, audio counts and audio lengths (1, 3 and 5 windows)."""
    r0 = render_single(TASK_DESCRIPTIONS["caption"], Example("Describe."), tok)
    r1 = render_single(TASK_DESCRIPTIONS["aqa"], Example("What makes this sound, and is it loud or quiet?"), tok)
    r2 = render_interleaved(
        TASK_DESCRIPTIONS["caption"], [Example("Describe.", "a dog barks")], Example("Describe."), tok
    )
    clips = model.encode_clips([noise(0.8, seed=1), noise(1.9, seed=2), noise(2.6, seed=3), noise(1.1, seed=4)])
    return [r0, r1, r2], [[clips[0]], [clips[2]], [clips[1], clips[3]]]


@pytest.mark.parametrize("family", ["qwen2", "opt", "gpt2"])
def test_batched_greedy_equals_one_by_one(family):
    model, tok = make_model(family, gates=0.9)
    prompts, clips = _rows(model, tok)
    ids = [tokenize(p, tok)[0] for p in prompts]
    kw = dict(max_new_tokens=10, min_new_tokens=10, do_sample=False, output_logits=True, return_dict_in_generate=True)
    x, m = left_pad(ids, model.special.pad, "cpu")
    batched = model.generate(x, m, model.audio_state(clips), **kw)
    for i in range(len(ids)):
        xi, mi = left_pad([ids[i]], model.special.pad, "cpu")
        single = model.generate(xi, mi, model.audio_state([clips[i]]), **kw)
        assert batched.sequences[i, x.shape[1] :].tolist() == single.sequences[0, xi.shape[1] :].tolist()
        lb = torch.stack(batched.logits, 1)[i]
        ls = torch.stack(single.logits, 1)[0]
        torch.testing.assert_close(lb, ls, atol=1e-4, rtol=0)


def test_audio_kv_cache_gives_identical_output():
    model, tok = make_model("qwen2", gates=0.9)
    prompts, clips = _rows(model, tok)
    x, m = left_pad([tokenize(p, tok)[0] for p in prompts], model.special.pad, "cpu")
    kw = dict(max_new_tokens=8, do_sample=False)
    cached = model.generate(x, m, model.audio_state(clips, cache_kv=True), **kw)
    state = model.audio_state(clips, cache_kv=False)
    recomputed = model.generate(x, m, state, **kw)
    assert torch.equal(cached, recomputed) and state.kv == {}


def test_beam_search_and_sampling_batched():
    model, tok = make_model("qwen2", gates=0.9)
    prompts, clips = _rows(model, tok)
    x, m = left_pad([tokenize(p, tok)[0] for p in prompts], model.special.pad, "cpu")
    beams = model.generate(x, m, model.audio_state(clips), max_new_tokens=6, num_beams=3, do_sample=False)
    assert beams.shape[0] == 3
    # Beam search of one row alone gives the same answer (the original broke on batch > 1).
    for i in range(3):
        xi, mi = left_pad([tokenize(prompts[i], tok)[0]], model.special.pad, "cpu")
        one = model.generate(xi, mi, model.audio_state([clips[i]]), max_new_tokens=6, num_beams=3, do_sample=False)
        assert beams[i, x.shape[1] :].tolist()[: one.shape[1] - xi.shape[1]] == one[0, xi.shape[1] :].tolist()
    torch.manual_seed(0)
    s1 = model.generate(
        x, m, model.audio_state(clips), max_new_tokens=6, do_sample=True, top_k=20, top_p=0.9, temperature=0.8
    )
    torch.manual_seed(0)
    s2 = model.generate(
        x, m, model.audio_state(clips), max_new_tokens=6, do_sample=True, top_k=20, top_p=0.9, temperature=0.8
    )
    assert torch.equal(s1, s2)


class _Force:
    """Logits processor: push one token id to the top (or bottom) from a given step on."""

    def __init__(self, token, from_len, value):
        self.token, self.from_len, self.value = token, from_len, value

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] >= self.from_len:
            scores[:, self.token] = self.value
        return scores


def test_generation_stops_at_eoc_and_never_writes_audio_token():
    from transformers import LogitsProcessorList

    model, tok = make_model("qwen2", gates=0.9)
    prompts, clips = _rows(model, tok)
    x, m = left_pad([tokenize(prompts[0], tok)[0]], model.special.pad, "cpu")
    state = model.audio_state(clips[:1])
    wants_audio = LogitsProcessorList([_Force(model.special.audio, 0, 1e4)])
    out = model.generate(x, m, state, max_new_tokens=5, do_sample=False, logits_processor=wants_audio)
    assert model.special.audio not in out[0, x.shape[1] :].tolist()  # suppressed after our processor
    stop_at_2 = LogitsProcessorList([_Force(model.special.eoc, x.shape[1] + 2, 1e4)])
    out = model.generate(
        x, m, model.audio_state(clips[:1]), max_new_tokens=8, do_sample=False, logits_processor=stop_at_2
    )
    assert out.shape[1] == x.shape[1] + 3 and out[0, -1].item() == model.special.eoc
