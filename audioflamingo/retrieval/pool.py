"""Retrieval of in-context shots from a datastore (or a manifest indexed on the fly).

The one implementation behind `--rag` for caption/ask/classify and `eval --shots`: embed the query
clip with the model's audio encoder, take the k nearest labelled examples (never from the query's
own file) and hand them to the interleaved template, nearest last (closest to the query).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from audioflamingo.data.manifest import Record
from audioflamingo.data.samples import AudioRef
from audioflamingo.retrieval.datastore import Datastore, Hit, build_datastore
from audioflamingo.text.templates import DEFAULT_INSTRUCTIONS, Example


class Retriever:
    def __init__(self, store: Datastore, embedder):
        self.store, self.embedder = store, embedder

    @classmethod
    def open(cls, rag: str | Path, embedder) -> "Retriever":
        p = Path(rag)
        if p.is_file():  # a manifest: index it now, in a throw-away store
            tmp = Path(tempfile.mkdtemp(prefix="af-rag-")) / "store"
            build_datastore(p, tmp, embedder)
            return cls(Datastore.open(tmp, embedder.name), embedder)
        return cls(Datastore.open(p, embedder.name, embedder.dim), embedder)

    def hits(self, wave: np.ndarray, k: int, exclude: str | Path | None = None) -> list[Hit]:
        return self.store.nearest(self.embedder.embed(wave), k, exclude)

    @staticmethod
    def as_shot(rec: Record) -> tuple[AudioRef, Example]:
        instruction = rec.instruction or DEFAULT_INSTRUCTIONS.get(rec.task, "")
        return AudioRef(rec.audio, rec.offset, rec.duration), Example(instruction, rec.output, rec.options)

    def shots(self, wave: np.ndarray, k: int, exclude=None) -> tuple[list, list[Hit]]:
        hits = self.hits(wave, k, exclude)
        return [self.as_shot(h.record) for h in reversed(hits)], hits
