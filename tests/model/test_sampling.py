"""Seeded sampling: one stream per row, equal across batches and runtimes, and a true sampler."""

import json

import pytest
import torch

from audioflamingo.model.sampling import GumbelNoise, TopK, TopP, Temperature, sampling_processors
from audioflamingo.tasks import left_pad
from audioflamingo.text.templates import tokenize
from tests.conftest import make_model
from tests.model.test_generation import _rows
from tests.model.test_lite import _lite_twin

SAMPLE = dict(do_sample=True, temperature=1.3, top_k=40, top_p=0.95, max_new_tokens=10)


def test_warpers_equal_transformers():
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    torch.manual_seed(0)
    scores = torch.randn(5, 300) * 3
    scores[0, :10] = 2.0  # ties at the cut
    ids = torch.zeros(5, 1, dtype=torch.long)
    for ours, ref in [
        (Temperature(0.7), TemperatureLogitsWarper(0.7)),
        (TopK(7), TopKLogitsWarper(7)),
        (TopK(5000), TopKLogitsWarper(5000)),
        (TopP(0.8), TopPLogitsWarper(0.8)),
        (TopP(0.01), TopPLogitsWarper(0.01)),
    ]:
        torch.testing.assert_close(ours(ids, scores.clone()), ref(ids, scores.clone()), atol=0, rtol=0)


def test_gumbel_argmax_samples_the_softmax():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -float("inf")]])
    noise = GumbelNoise([5])
    counts = torch.zeros(5)
    n = 6000
    for _ in range(n):
        counts[noise(None, logits.clone()).argmax(-1)] += 1
    p = logits.softmax(-1)[0]
    assert counts[4] == 0
    # within 4 standard errors of the categorical frequencies
    assert ((counts / n - p).abs() <= 4 * (p * (1 - p) / n).sqrt() + 1e-9).all(), (counts / n, p)


def test_rows_have_their_own_streams():
    a = GumbelNoise([1, 2, 1])
    x = a(None, torch.zeros(3, 50))
    assert torch.equal(x[0], x[2]) and not torch.equal(x[0], x[1])
    assert torch.equal(GumbelNoise([2])(None, torch.zeros(1, 50))[0], x[1])
    rep = GumbelNoise([1])(None, torch.zeros(2, 50))  # repeated row (e.g. two return sequences)
    assert torch.equal(rep[0], x[0]) and not torch.equal(rep[0], rep[1])


def test_bad_sampling_settings_are_refused():
    for bad in (
        dict(temperature=0.0),
        dict(temperature=float("nan")),
        dict(temperature=-1.0),
        dict(top_p=0.0),
        dict(top_p=5.0),
        dict(top_k=-3),
    ):
        with pytest.raises(ValueError):
            sampling_processors(1, seed=0, **bad)
    model, tok = make_model("qwen2")
    prompts, clips = _rows(model, tok)
    x, m = left_pad([tokenize(prompts[0], tok)[0]], model.special.pad, "cpu")
    with pytest.raises(ValueError, match="cannot be combined"):
        model.generate(x, m, model.audio_state(clips[:1]), do_sample=True, num_beams=2, max_new_tokens=3)


@pytest.mark.parametrize("family", ["qwen2", "gpt2"])
def test_batched_sampling_equals_one_by_one(family):
    model, tok = make_model(family, gates=0.9)
    prompts, clips = _rows(model, tok)
    ids = [tokenize(p, tok)[0] for p in prompts]
    x, m = left_pad(ids, model.special.pad, "cpu")
    batched = model.generate(x, m, model.audio_state(clips), seed=11, **SAMPLE)
    again = model.generate(x, m, model.audio_state(clips), seed=[11, 11, 11], **SAMPLE)
    assert torch.equal(batched, again)
    other = model.generate(x, m, model.audio_state(clips), seed=12, **SAMPLE)
    assert not torch.equal(batched, other)
    for i in range(len(ids)):
        xi, mi = left_pad([ids[i]], model.special.pad, "cpu")
        torch.manual_seed(i)  # the global generator plays no part
        one = model.generate(xi, mi, model.audio_state([clips[i]]), seed=11, **SAMPLE)
        new = one[0, xi.shape[1] :].tolist()
        assert batched[i, x.shape[1] : x.shape[1] + len(new)].tolist() == new


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_lean_runtime_samples_what_transformers_samples(family):
    model, tok = make_model(family, gates=0.9)
    prompts, clips = _rows(model, tok)
    x, m = left_pad([tokenize(p, tok)[0] for p in prompts], model.special.pad, "cpu")
    torch.manual_seed(0)
    hf = model.generate(x, m, model.audio_state(clips), seed=5, **SAMPLE)
    model.lm = _lite_twin(model.lm)
    model.fusion.attach(model.lm)
    torch.manual_seed(0)
    lean = model.generate(x, m, model.audio_state(clips), seed=5, **SAMPLE)
    assert model.is_lite  # sampling no longer swaps in the transformers twin
    assert torch.equal(lean, hf)


def test_cli_sampled_text_is_the_same_on_both_runtimes_and_batch_sizes(tmp_path, capsys):
    from audioflamingo.cli import main
    from audioflamingo.tasks import example_clip

    clip = str(example_clip())
    runs = []
    for extra in (["--lm-impl", "transformers"], [], ["--batch-size", "1"]):
        assert (
            main(
                [
                    "caption",
                    clip,
                    clip,
                    "--sample",
                    "--seed",
                    "7",
                    "--temperature",
                    "1.5",
                    "--json",
                    "--max-new-tokens",
                    "12",
                    *extra,
                ]
            )
            == 0
        )
        runs.append([json.loads(l)["caption"] for l in capsys.readouterr().out.splitlines()])
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][0] == runs[0][1]  # one input, one seed: one text
