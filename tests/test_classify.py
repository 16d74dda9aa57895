"""Closed-set classification by likelihood: the score is the query answer's log-probability alone."""

import numpy as np
import torch

from audioflamingo.tasks import AudioFlamingoPipeline, Query
from audioflamingo.text.templates import IGNORE, Example, tokenize
from tests.conftest import make_model, noise


def test_score_counts_the_query_answer_only_with_shots():
    model, tok = make_model("qwen2", gates=0.9)
    pipe = AudioFlamingoPipeline(model, tok)
    labels = ["dog bark", "rain"]
    clip, shots = noise(1.2, seed=1), [(noise(0.9, seed=s), Example("What is it?", "dog bark", labels)) for s in (2, 3)]
    ranked = {r["label"]: r["logprob"] for r in pipe.classify(clip, labels, instruction="What is it?", shots=shots)}
    for label in labels:  # by hand: log p(label <EOC> | everything before it), one prompt at a time
        q = Query(clip, "What is it?", "The task is audio classification.", labels, shots)
        rendered = q.render(tok, label)
        if rendered.segments[-1][0] == tok.eos_token:
            rendered.segments.pop()
        ids, lab = tokenize(rendered, tok)
        start = len(lab) - next(i for i, l in enumerate(reversed(lab)) if l == IGNORE)  # last answer span
        with torch.no_grad():
            state = model.audio_state([model.encode_clips([s[0] for s in shots] + [clip])])
            logp = (
                model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), audio=state)
                .logits[0]
                .log_softmax(-1)
            )
        want = sum(float(logp[j - 1, ids[j]]) for j in range(start, len(ids)))
        # rtol: the batched and the one-prompt forward reduce in other orders (0.004 of -54.8 seen with 2
        # threads, after an in-process `demo` set them); a token counted in or out moves it by whole nats.
        assert np.isclose(ranked[label], want, atol=1e-3, rtol=1e-4), (label, ranked[label], want)
        assert lab.count(IGNORE) < len(lab) - (len(ids) - start)  # the shots' answers were targets too


def test_calibrated_scores_subtract_the_silent_query_and_rank_by_it():
    """Contextual calibration: the prompt's own preference (what a silent query gets) is taken out."""
    model, tok = make_model("qwen2", gates=0.9)
    pipe = AudioFlamingoPipeline(model, tok)
    labels = ["dog bark", "rain", "siren"]
    clip = noise(1.2, seed=1)
    shots = [(noise(0.9, seed=2), Example("What is it?", "rain", labels))]
    raw = {r["label"]: r["logprob"] for r in pipe.classify(clip, labels, instruction="What is it?", shots=shots)}
    silent = np.zeros(len(pipe.load_all([clip])[0]), np.float32)
    prior = {r["label"]: r["logprob"] for r in pipe.classify(silent, labels, instruction="What is it?", shots=shots)}
    cal = pipe.classify(clip, labels, instruction="What is it?", shots=shots, calibrate=True)
    for r in cal:
        assert np.isclose(r["logprob"], raw[r["label"]], atol=1e-4)
        assert np.isclose(r["calibrated"], raw[r["label"]] - prior[r["label"]], atol=1e-4)
    assert [r["calibrated"] for r in cal] == sorted((r["calibrated"] for r in cal), reverse=True)
    assert np.isclose(sum(r["prob"] for r in cal), 1.0)
    # on the silent query itself every calibrated score is 0: nothing left to prefer
    assert all(abs(r["calibrated"]) < 1e-4 for r in pipe.classify(silent, labels, shots=shots, calibrate=True))
