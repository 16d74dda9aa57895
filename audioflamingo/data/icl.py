"""kNN-interleaved ICL data: embed every clip of a manifest, find each sample's nearest neighbours.

Writes `<manifest>.icl.jsonl` beside the manifest: one line per record,
`{"id": ..., "neighbours": [id, ...], "distances": [...]}`, nearest first. The embeddings are cached
on disk (`--cache`), so a rerun embeds nothing it has seen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from audioflamingo.audio.io import load_audio
from audioflamingo.data.manifest import Record, load_manifest
from audioflamingo.retrieval.embed import ClipEmbedder, EmbeddingCache, clip_key
from audioflamingo.retrieval.knn import knn_excluding_groups


def icl_path(manifest: str | Path) -> Path:
    p = Path(manifest)
    return p.with_name(p.stem + ".icl.jsonl")


def embed_records(
    records: list[Record], embedder: ClipEmbedder, cache_dir: str | Path, progress: bool = False
) -> tuple[np.ndarray, list[int], int]:
    """Vectors for every readable record (and which rows they are), computing only uncached ones."""
    from audioflamingo.progress import progress_bar

    cache = EmbeddingCache(cache_dir, embedder.name)
    rows, vecs, new = [], [], {}
    bar = progress_bar(len(records), "embed", "clip", enabled=progress)
    for i, r in enumerate(records):
        bar.update(1)
        try:
            key = clip_key(r.audio, r.offset, r.duration)
        except OSError:
            continue
        v = cache.get(key)
        if v is None:
            v = new.get(key)
        if v is None:
            try:
                wave = load_audio(r.audio, embedder.window.sample_rate, offset=r.offset, duration=r.duration)
            except Exception:
                continue
            v = embedder.embed(wave, name=str(r.audio))
            new[key] = v
        rows.append(i)
        vecs.append(v)
    cache.add(new)
    cache.save()
    return (np.stack(vecs) if vecs else np.zeros((0, 1), np.float32)), rows, cache.computed


def build_icl(
    manifest: str | Path,
    embedder: ClipEmbedder,
    k: int = 8,
    cache_dir: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = False,
) -> dict:
    records = load_manifest(manifest, needs_audio="kNN neighbours (build-icl)")
    cache_dir = cache_dir or Path(manifest).parent / ".af-embeddings"
    vectors, rows, computed = embed_records(records, embedder, cache_dir, progress)
    groups = [records[i].group for i in rows]
    nb = knn_excluding_groups(vectors, k, groups)
    out = Path(out) if out else icl_path(manifest)
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r_i, (ids, ds) in enumerate(zip(nb.ids, nb.distances)):
            keep = ids >= 0
            f.write(
                json.dumps(
                    {
                        "id": records[rows[r_i]].id,
                        "neighbours": [records[rows[j]].id for j in ids[keep]],
                        "distances": [round(float(d), 6) for d in ds[keep]],
                    }
                )
                + "\n"
            )
    tmp.replace(out)
    return {
        "records": len(records),
        "embedded": len(rows),
        "newly_computed": computed,
        "skipped_unreadable": len(records) - len(rows),
        "k": k,
        "out": str(out),
    }


def load_icl(path: str | Path) -> dict[str, list[str]]:
    out = {}
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                out[rec["id"]] = rec["neighbours"]
    return out


def _rel(path, base: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def _pseudo_word(rng) -> str:
    cons, vows = "bdfgklmnprstvz", "aeiou"
    return "".join(rng.choice(list(cons)) + rng.choice(list(vows)) for _ in range(int(rng.integers(2, 4))))


def build_renamed_episodes(
    manifest: str | Path,
    out: str | Path,
    shots: int = 4,
    copies: int = 2,
    seed: int = 0,
    icl_file: str | Path | None = None,
) -> dict:
    """Classification ICL episodes whose labels are renamed to fresh pseudo-words, consistently within
    an episode. A model trained only on fixed label names can answer from memory and ignore its
    examples; with renamed labels the answer is only in the examples, which teaches it to read them
    (what few-shot use on labels never seen in training needs). Shots are the record's kNN neighbours
    (`data build-icl` first); episodes whose true label is absent from its shots are skipped."""
    import numpy as np

    records = {r.id: r for r in load_manifest(manifest, needs_audio="an episode")}
    neighbours = load_icl(icl_file or icl_path(manifest))
    base = Path(manifest).parent
    rng = np.random.default_rng(seed)
    written = skipped = 0
    out = Path(out)
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for rid, r in records.items():
            if r.task != "classify":
                continue
            shot_recs = [records[i] for i in neighbours.get(rid, [])[:shots] if i in records][::-1]  # nearest last
            if len(shot_recs) < shots or r.output not in {s.output for s in shot_recs}:
                skipped += 1
                continue
            for c in range(copies):
                labels = sorted({r.output, *(r.options or []), *(s.output for s in shot_recs)})
                names = {}
                while len(names) < len(labels):
                    w = _pseudo_word(rng)
                    if w not in names.values():
                        names[labels[len(names)]] = w
                opts = sorted(names.values())
                f.write(
                    json.dumps(
                        {
                            "id": f"{rid}/renamed{c}",
                            "audio": _rel(r.audio, base),
                            "source": r.group,
                            "task": "classify",
                            "instruction": r.instruction,
                            "output": names[r.output],
                            "options": opts,
                            "shots": [
                                {
                                    "audio": _rel(s.audio, base),
                                    "instruction": s.instruction,
                                    "output": names[s.output],
                                    "options": opts,
                                }
                                for s in shot_recs
                            ],
                        }
                    )
                    + "\n"
                )
                written += 1
    tmp.replace(out)
    return {"episodes": written, "skipped_label_not_in_shots": skipped, "out": str(out)}


def build_copy_drills(out: str | Path, count: int, seed: int = 0, vocabulary: Sequence[str] = ()) -> dict:
    """Text records (task `text`, for `kind: lm` stages) that repeat a random sequence 2-3 times:
    "kadafu melody qooyhv | kadafu melody qooyhv". Only the repeats are predictable, so the loss
    rewards copying from earlier in the context, the skill (an induction head) that reading labels
    off in-context examples needs. A small LM trained on templated text alone does not learn it,
    and label-renamed episodes alone teach it too slowly (measured: docs/MODEL_CARD.md).
    Sequences mix pseudo-words, random letter strings and words of `vocabulary`, so copying is learnt
    for any token pieces, not only for the corpus' words."""
    rng = np.random.default_rng(seed)
    vocab = sorted(set(vocabulary))
    letters = list("abcdefghijklmnopqrstuvwxyz")

    def word() -> str:
        u = rng.random()
        if u < 0.5 or (u >= 0.8 and not vocab):
            return _pseudo_word(rng)
        if u < 0.8:
            return "".join(rng.choice(letters, int(rng.integers(3, 9))))
        return str(vocab[int(rng.integers(len(vocab)))])

    out = Path(out)
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for i in range(count):
            seq = " ".join(word() for _ in range(int(rng.integers(2, 7))))
            text = " | ".join([seq] * int(rng.integers(2, 4)))
            f.write(json.dumps({"id": f"drill-{i:06d}", "task": "text", "output": text}) + "\n")
    tmp.replace(out)
    return {"drills": count, "vocabulary": len(vocab), "out": str(out)}


def manifest_words(manifests: Sequence[str | Path]) -> list[str]:
    """The lower-cased words of the outputs and dialogue turns of manifests."""
    words: set[str] = set()
    for m in manifests:
        for r in load_manifest(m):
            texts = [r.output] + [t.get("assistant", "") for t in r.turns or []]
            words.update(w.strip(".,?!;:").lower() for t in texts for w in t.split())
    return sorted(w for w in words if w)
