"""A pool of labelled examples (a manifest) searched by audio similarity for in-context shots.

Embeddings are computed with the model's own audio encoder (or any `ClipEmbedder`) and cached on
disk; search is exact faiss L2. A query never gets an example from its own recording.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from audioflamingo.data.icl import embed_records
from audioflamingo.data.manifest import Record, load_manifest
from audioflamingo.data.samples import AudioRef
from audioflamingo.retrieval.embed import ClipEmbedder
from audioflamingo.retrieval.knn import build_index
from audioflamingo.text.templates import DEFAULT_INSTRUCTIONS, Example


class ExamplePool:
    def __init__(self, manifest: str | Path, embedder: ClipEmbedder, cache_dir: str | Path | None = None):
        self.records = load_manifest(manifest)
        cache_dir = cache_dir or Path(manifest).parent / ".af-embeddings"
        vectors, rows, _ = embed_records(self.records, embedder, cache_dir)
        if not rows:
            raise ValueError(f"{manifest}: no readable example audio")
        self.rows, self.embedder = rows, embedder
        self.index = build_index(vectors)

    def nearest(self, wave: np.ndarray, k: int, exclude: str | Path | None = None) -> list[Record]:
        """The k nearest examples (nearest first), skipping any from the file `exclude`."""
        q = self.embedder.embed(wave)[None].astype(np.float32)
        want = min(len(self.rows), k + 16)
        _, idx = self.index.search(q, want)
        ex = Path(exclude).resolve() if exclude else None
        out = []
        for i in idx[0]:
            if i < 0:
                continue
            rec = self.records[self.rows[i]]
            if ex is not None and rec.audio.resolve() == ex:
                continue
            out.append(rec)
            if len(out) == k:
                break
        return out

    @staticmethod
    def as_shot(rec: Record) -> tuple[AudioRef, Example]:
        instruction = rec.instruction or DEFAULT_INSTRUCTIONS.get(rec.task, "")
        return AudioRef(rec.audio, rec.offset, rec.duration), Example(instruction, rec.output, rec.options)
