"""Does a question's wording give its answer away? A text-only classifier per question kind.

For each kind, a multinomial naive Bayes over the question's words and word pairs is fitted on one
half of the records and scored on the other half against the majority answer of the first half.
On the scored half, b counts questions the classifier gets right and the majority answer wrong, c
the reverse. With no information in the text the classifier can only match the majority answer
or do worse, so b - c has mean <= 0 and, given b + c discordant pairs, standard deviation at most
sqrt(b + c) (McNemar's test). A kind leaks when b - c > z * sqrt(b + c) + 1 (the 1 a continuity
correction); z = 3.5 is a one-sided false-alarm rate of 2.3e-4 per kind, under 0.5% over the ~20
kinds, while a real leak (the first corpus' count phrasing) gives z of 30 or more.

"louder" questions name their two options, so the text rightly tells which two sounds the answer is
among; their target is whether the answer is the first or the second named sound.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

Z = 3.5


def _features(text: str) -> list[str]:
    words = re.findall(r"[a-z']+", text.lower())
    return words + [f"{a}_{b}" for a, b in zip(words, words[1:])]


def _target(kind: str, question: str, answer: str) -> str:
    if kind == "louder":
        at = question.find(answer)
        return "first" if 0 <= at < question.find(" or " if " or " in question else " and ") else "second"
    return answer


def _naive_bayes(train: list[tuple[list[str], str]], test: list[list[str]], alpha: float = 1.0) -> list[str]:
    vocab = {f: i for i, f in enumerate(sorted({f for fs, _ in train for f in fs}))}
    labels = sorted({y for _, y in train})
    counts = np.full((len(labels), len(vocab) + 1), alpha)  # last column: unseen features
    prior = np.zeros(len(labels))
    for fs, y in train:
        k = labels.index(y)
        prior[k] += 1
        for f in fs:
            counts[k, vocab[f]] += 1
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    logprior = np.log(prior / prior.sum())
    out = []
    for fs in test:
        idx = [vocab.get(f, len(vocab)) for f in fs]
        out.append(labels[int(np.argmax(logprior + logp[:, idx].sum(axis=1)))])
    return out


def text_leaks(records: list[dict], min_scored: int = 30, z: float = Z, seed: int = 0) -> dict[str, dict]:
    """Per question kind ("question" field): scored count, majority and classifier accuracy, the
    McNemar statistic, and whether it leaks. Records need "instruction", "output" and "question"."""
    by_kind: dict[str, list[tuple[list[str], str]]] = defaultdict(list)
    for r in records:
        by_kind[r["question"]].append(
            (_features(r["instruction"]), _target(r["question"], r["instruction"], r["output"]))
        )
    rng = np.random.default_rng(seed)
    report = {}
    for kind, rows in sorted(by_kind.items()):
        order = rng.permutation(len(rows))
        half = len(rows) // 2
        train, test = [rows[i] for i in order[:half]], [rows[i] for i in order[half:]]
        if len(test) < min_scored:
            continue
        majority = Counter(y for _, y in train).most_common(1)[0][0]
        pred = _naive_bayes(train, [fs for fs, _ in test])
        truth = [y for _, y in test]
        clf_ok = np.array([p == y for p, y in zip(pred, truth)])
        maj_ok = np.array([majority == y for y in truth])
        b, c = int((clf_ok & ~maj_ok).sum()), int((~clf_ok & maj_ok).sum())
        stat = (b - c - 1) / np.sqrt(b + c) if b + c else 0.0
        report[kind] = {
            "scored": len(test),
            "majority": round(float(maj_ok.mean()), 4),
            "classifier": round(float(clf_ok.mean()), 4),
            "z": round(float(stat), 2),
            "leaks": bool(stat > z),
        }
    return report
