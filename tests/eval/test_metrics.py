"""Metrics: coco-caption definitions on the whole split; classification and tagging metrics."""

import random

import pytest

from audioflamingo.eval import metrics as M

WORDS_A = "a dog cat bird barks meows sings loudly softly in the park while".split()
WORDS_B = "rain falls on roof car passes by engine hums in the street while".split()


@pytest.fixture(scope="module")
def split():
    """120 items x 5 references; the two halves talk about different things, as batches of a real
    split often do, so document frequencies differ between them."""
    rng = random.Random(0)
    preds, refs = {}, {}
    for i in range(120):
        words = WORDS_A if i < 60 else WORDS_B
        preds[str(i)] = " ".join(rng.choice(words) for _ in range(rng.randint(4, 9)))
        refs[str(i)] = [" ".join(rng.sample(words, 6)) for _ in range(5)]
    return preds, refs


def test_caption_metrics_are_pycocoevalcap_on_the_whole_split(split):
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    preds, refs = split
    ours = M.caption_metrics(preds, refs)
    tok = PTBTokenizer()
    g = tok.tokenize({i: [{"caption": r} for r in refs[i]] for i in preds})
    r = tok.tokenize({i: [{"caption": preds[i]}] for i in preds})
    assert abs(ours["CIDEr-D"] - Cider().compute_score(g, r)[0]) < 1e-9
    assert 0 < ours["METEOR"] < 1 and 0 < ours["BLEU-1"] <= 1 and ours["tokenizer"].startswith("PTB")
    # SPICE cannot fetch its CoreNLP models here: it and SPIDEr say so, and are never a silent 0.
    assert isinstance(ours["SPICE"], str) and ours["SPICE"].startswith("unavailable")
    assert isinstance(ours["SPIDEr"], str)
    # CIDEr-D's IDF comes from the whole split: scoring halves and averaging gives another number.
    ids = sorted(preds)
    halves = [ids[:60], ids[60:]]
    per_batch = [
        M.caption_metrics({i: preds[i] for i in h}, refs, spice=False, meteor=False)["CIDEr-D"] for h in halves
    ]
    assert abs(sum(per_batch) / 2 - ours["CIDEr-D"]) > 1e-3


def test_perfect_captions_score_high(split):
    _, refs = split
    m = M.caption_metrics({i: refs[i][0] for i in list(refs)[:30]}, refs, spice=False, meteor=False)
    assert m["BLEU-1"] > 0.99 and m["ROUGE-L"] > 0.99


def test_accuracy_normalises_answers():
    preds = {"1": "Yes.", "2": "the Dog", "3": "cat"}
    golds = {"1": ["yes"], "2": ["dog"], "3": ["dog"]}
    assert M.accuracy(preds, golds) == pytest.approx(2 / 3)


def test_macro_f1_by_hand():
    preds = {"1": "a", "2": "a", "3": "b", "4": "c"}
    golds = {"1": "a", "2": "b", "3": "b", "4": "b"}
    # a: tp1 fp1 fn0 -> 2/3; b: tp1 fp0 fn2 -> 2/4; c: tp0 -> 0
    assert M.macro_f1(preds, golds, ["a", "b", "c"]) == pytest.approx((2 / 3 + 0.5 + 0) / 3)


def test_approximate_f1_parses_labels_from_text():
    vocab = ["dog", "animal", "electric guitar", "guitar", "music"]
    assert M.parse_labels("Music, an electric guitar.", vocab) == {"music", "electric guitar", "guitar"}
    preds = {"1": "dog barking; animal", "2": "piano"}
    golds = {"1": ["dog", "animal"], "2": ["guitar", "music"]}
    assert M.approx_f1(preds, golds, vocab) == pytest.approx((1.0 + 0.0) / 2)
