"""The static-cache decoder (the step a CUDA graph replays) decodes what the lean runtime decodes.

On CPU the step runs eagerly; what graph replay additionally needs, that every step reads and writes
the same tensors (no buffer is re-allocated or re-bound between steps), is checked directly."""

import pytest
import torch

from audioflamingo.model import static_decode
from audioflamingo.model.lite import LiteCausalLM
from audioflamingo.tasks import left_pad
from audioflamingo.text.templates import tokenize
from tests.conftest import make_model
from tests.model.test_generation import _rows


def _lite_model(family):
    model, tok = make_model(family, gates=0.9)
    lite = LiteCausalLM(model.lm.config.to_dict()).eval()
    lite.load_state_dict(model.lm.state_dict(), strict=True)
    model.lm = lite
    model.fusion.attach(lite)
    return model, tok


class Recorder:
    def __init__(self, force_eos_at=None, eos=None):
        self.scores, self.force_eos_at, self.eos = [], force_eos_at, eos

    def __call__(self, input_ids, scores):
        self.scores.append(scores.clone())
        if self.force_eos_at is not None and len(self.scores) == self.force_eos_at:
            scores[0, self.eos] = 1e9  # row 0 ends here; the others go on
        return scores


def _inputs(model, tok):
    prompts, clips = _rows(model, tok)
    x, m = left_pad([tokenize(p, tok)[0] for p in prompts], model.special.pad, "cpu")
    return x, m, clips


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_static_cache_greedy_equals_the_lean_runtime(family):
    model, tok = _lite_model(family)
    x, m, clips = _inputs(model, tok)
    ref_rec, rec = Recorder(), Recorder()
    ref = model.generate(x, m, model.audio_state(clips), max_new_tokens=10, logits_processor=[ref_rec])
    out = model.generate(
        x, m, model.audio_state(clips), max_new_tokens=10, logits_processor=[rec], cache_implementation="static"
    )
    assert model.is_lite  # the static path did not swap to transformers
    assert out.tolist() == ref.tolist()
    assert len(rec.scores) == len(ref_rec.scores) == 10
    for a, b in zip(rec.scores, ref_rec.scores):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_static_cache_stops_rows_at_eos_like_the_lean_runtime():
    model, tok = _lite_model("qwen2")
    x, m, clips = _inputs(model, tok)
    kw = dict(max_new_tokens=8)
    ref = model.generate(x, m, model.audio_state(clips), logits_processor=[Recorder(3, model.special.eoc)], **kw)
    out = model.generate(
        x,
        m,
        model.audio_state(clips),
        logits_processor=[Recorder(3, model.special.eoc)],
        cache_implementation="static",
        **kw,
    )
    assert out.tolist() == ref.tolist()
    assert out[0, x.shape[1] + 2] == model.special.eoc and out[0, -1] == model.special.pad


def test_static_cache_sampling_equals_the_lean_runtime_for_a_seed():
    model, tok = _lite_model("qwen2")
    x, m, clips = _inputs(model, tok)
    kw = dict(max_new_tokens=8, do_sample=True, temperature=1.5, seed=[3, 4, 5])
    ref = model.generate(x, m, model.audio_state(clips), **kw)
    out = model.generate(x, m, model.audio_state(clips), cache_implementation="static", **kw)
    assert out.tolist() == ref.tolist()


def test_every_step_reuses_the_same_buffers(monkeypatch):
    """A CUDA graph replays the kernels on the addresses it recorded: the step must never re-bind or
    re-allocate what it reads or writes, only update it in place."""
    model, tok = _lite_model("qwen2")
    x, m, clips = _inputs(model, tok)
    seen = []
    real_call = static_decode.StaticDecodeStep.__call__

    def spy(self):
        bufs = [self.token, self.position, self.slot, self.visible, self.logits, *self.k, *self.v]
        seen.append([t.data_ptr() for t in bufs] + [id(t) for t in bufs])
        return real_call(self)

    monkeypatch.setattr(static_decode.StaticDecodeStep, "__call__", spy)
    model.generate(x, m, model.audio_state(clips), max_new_tokens=6, cache_implementation="static")
    assert len(seen) == 5 and all(s == seen[0] for s in seen)


def test_cuda_graph_needs_cuda_and_transformers_lm_is_refused():
    model, tok = _lite_model("qwen2")
    x, m, clips = _inputs(model, tok)
    with pytest.raises(ValueError, match="CUDA"):
        model.generate(x, m, model.audio_state(clips), max_new_tokens=2, cache_implementation="static", cuda_graph=True)
    hf_model, _ = make_model("qwen2", gates=0.9)
    with pytest.raises(ValueError, match="lean runtime"):
        static_decode.generate_static(hf_model, x, m, hf_model.audio_state(clips), max_new_tokens=2)


def test_transformers_lm_takes_its_own_static_cache_with_audio():
    """On the transformers LM the option goes to transformers' generate; the audio mask survives it."""
    model, tok = make_model("qwen2", gates=0.9)
    x, m, clips = _inputs(model, tok)
    ref = model.generate(x, m, model.audio_state(clips), max_new_tokens=8)
    out = model.generate(x, m, model.audio_state(clips), max_new_tokens=8, cache_implementation="static")
    assert out.tolist() == ref.tolist()


def test_compiled_step_decodes_the_same():
    """`compile_step` traces the same step with torch.compile (the eager backend here: the tracing, not
    the code generation, is what could change the step); one compiled graph serves two generations."""
    model, tok = _lite_model("qwen2")
    x, m, clips = _inputs(model, tok)
    ref = model.generate(x, m, model.audio_state(clips), max_new_tokens=6)
    for _ in range(2):
        out = model.generate(
            x, m, model.audio_state(clips), max_new_tokens=6, cache_implementation="static", compile_step="eager"
        )
        assert out.tolist() == ref.tolist()


def test_weight_layouts_settle_before_the_first_static_step():
    """A compiled step records each weight's strides; the lean runtime re-lays weights out on first
    use, so they must be final before the first step of the first generation, not at the next one."""
    model, tok = _lite_model("qwen2")
    x, m, clips = _inputs(model, tok)
    seen = []
    real_call = static_decode.StaticDecodeStep.__call__

    def spy(self):
        seen.append({n: p.stride() for n, p in model.named_parameters()})
        return real_call(self)

    static_decode.StaticDecodeStep.__call__ = spy
    try:
        for _ in range(2):
            model.generate(x, m, model.audio_state(clips), max_new_tokens=3, cache_implementation="static")
    finally:
        static_decode.StaticDecodeStep.__call__ = real_call
    assert len(seen) == 4 and all(s == seen[0] for s in seen)
