"""Metrics with the field's exact definitions.

Caption metrics come from pycocoevalcap (the coco-caption reference code): PTB tokenisation, BLEU-1..4,
METEOR 1.5, ROUGE-L, CIDEr-D (coco-caption's `Cider` is CIDEr-D: sigma 6 length penalty, clipped
counts, x10). They are always computed once over the whole split, so CIDEr-D's IDF comes from all
references of the split (scoring per batch and averaging, as the original does, is wrong). SPICE
needs Stanford CoreNLP models that pycocoevalcap downloads on first use; where it cannot run, SPICE
and SPIDEr are reported as unavailable with the reason, never as 0.
"""

from __future__ import annotations

import re
import shutil
import string
from typing import Sequence

UNAVAILABLE = "unavailable"


def _java_ok() -> str | None:
    return None if shutil.which("java") else "java not found on PATH (METEOR, PTB tokenizer and SPICE need it)"


def caption_metrics(
    preds: dict[str, str], refs: dict[str, Sequence[str]], spice: bool = True, meteor: bool = True
) -> dict:
    """{'BLEU-1'.., 'METEOR', 'ROUGE-L', 'CIDEr-D', 'SPICE', 'SPIDEr'} over the whole split."""
    from audioflamingo.extras import require

    require("pycocoevalcap")  # an extra: one line naming it when absent
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ids = sorted(preds)
    missing = [i for i in ids if not refs.get(i)]
    if missing:
        raise ValueError(f"no references for {len(missing)} prediction(s), e.g. {missing[:3]}")
    gts = {i: [{"caption": r} for r in refs[i]] for i in ids}
    res = {i: [{"caption": preds[i]}] for i in ids}
    out: dict = {}
    why = _java_ok()
    if why:
        tok_g = {i: [_simple_tokenize(c["caption"]) for c in v] for i, v in gts.items()}
        tok_r = {i: [_simple_tokenize(c["caption"]) for c in v] for i, v in res.items()}
        out["tokenizer"] = f"simple (PTB tokenizer unavailable: {why})"
    else:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tok = PTBTokenizer()
        tok_g, tok_r = tok.tokenize(gts), tok.tokenize(res)
        out["tokenizer"] = "PTB (Stanford CoreNLP PTBTokenizer, as coco-caption)"
    bleu, _ = Bleu(4).compute_score(tok_g, tok_r, verbose=0)
    for n, b in enumerate(bleu, 1):
        out[f"BLEU-{n}"] = float(b)
    out["ROUGE-L"] = float(Rouge().compute_score(tok_g, tok_r)[0])
    out["CIDEr-D"] = float(Cider().compute_score(tok_g, tok_r)[0])
    if why or not meteor:
        out["METEOR"] = f"{UNAVAILABLE}: {why or 'not requested'}"
    else:
        from pycocoevalcap.meteor.meteor import Meteor

        m = Meteor()
        try:
            out["METEOR"] = float(m.compute_score(tok_g, tok_r)[0])
        finally:
            _close_meteor(m)
    spice_value = _spice(tok_g, tok_r) if spice and not why else f"{UNAVAILABLE}: {why or 'not requested'}"
    out["SPICE"] = spice_value
    out["SPIDEr"] = (
        (out["CIDEr-D"] + spice_value) / 2 if isinstance(spice_value, float) else f"{UNAVAILABLE}: needs SPICE"
    )
    return out


def _close_meteor(m) -> None:
    try:
        with m.lock:
            m.meteor_p.stdin.close()
            m.meteor_p.kill()
            m.meteor_p.wait()
    except Exception:
        pass


def _spice(tok_g, tok_r):
    """SPICE if its Stanford CoreNLP jars are present; pycocoevalcap would try to download them."""
    import os

    import pycocoevalcap.spice.spice as sp

    lib = os.path.join(os.path.dirname(sp.__file__), "lib")
    if not any(f.startswith("stanford-corenlp-3.6.0") for f in os.listdir(lib) if f.endswith(".jar")):
        return f"{UNAVAILABLE}: Stanford CoreNLP 3.6.0 jars not installed in {lib} (no network to fetch them)"
    try:
        return float(sp.Spice().compute_score(tok_g, tok_r)[0])
    except Exception as err:  # SPICE's Java side fails in many environment-specific ways
        return f"{UNAVAILABLE}: {type(err).__name__}: {str(err)[:120]}"


def _simple_tokenize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse spaces: 'The Dog.' == 'dog'."""
    words = text.lower().translate(_PUNCT).split()
    return " ".join(w for w in words if w not in ("a", "an", "the"))


def accuracy(preds: dict[str, str], golds: dict[str, Sequence[str]]) -> float:
    """Share of items whose normalised prediction equals one of the normalised gold answers."""
    if not preds:
        return float("nan")
    ok = sum(normalize(p) in {normalize(g) for g in golds[i]} for i, p in preds.items())
    return ok / len(preds)


def macro_f1(preds: dict[str, str], golds: dict[str, str], labels: Sequence[str]) -> float:
    """Single-label macro-F1 over `labels` (a prediction outside the label set counts as wrong)."""
    scores = []
    for lab in {normalize(l) for l in labels}:
        tp = sum(normalize(preds[i]) == lab and normalize(golds[i]) == lab for i in preds)
        fp = sum(normalize(preds[i]) == lab and normalize(golds[i]) != lab for i in preds)
        fn = sum(normalize(preds[i]) != lab and normalize(golds[i]) == lab for i in preds)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else float("nan")


def parse_labels(text: str, vocabulary: Sequence[str]) -> set[str]:
    """Labels named in generated text: every vocabulary label occurring as whole words."""
    t = f" {normalize(text)} "
    return {l for l in vocabulary if f" {normalize(l)} " in t}


def approx_f1(preds: dict[str, str], golds: dict[str, Sequence[str]], vocabulary: Sequence[str]) -> float:
    """Multi-label F1 with labels parsed from generated text, averaged over clips."""
    total = 0.0
    for i, p in preds.items():
        pred, gold = parse_labels(p, vocabulary), {l for l in golds[i]}
        inter = len(pred & gold)
        total += 0.0 if inter == 0 else 2 * inter / (len(pred) + len(gold))
    return total / len(preds) if preds else float("nan")
