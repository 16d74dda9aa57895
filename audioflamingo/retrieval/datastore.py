"""A persistent vector datastore of labelled examples for retrieval-augmented inference.

    DIR/datastore.json   encoder fingerprint, dimension, index kind, count
    DIR/index.faiss      the faiss index (exact IndexFlatL2, or HNSW / IVF for large stores)
    DIR/meta.sqlite      one row per vector: id, audio path, offset, duration, task, instruction,
                         output, options; looked up by row, so opening a store reads no metadata and
                         no vector into Python objects

`index build` writes a new store; `index add` appends; `query` returns the k nearest examples with
their squared L2 distances. A store built with another encoder (or dimension) is refused.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioflamingo.data.manifest import Record, load_manifest
from audioflamingo.errors import AudioFlamingoError


class DatastoreError(AudioFlamingoError):
    pass


@dataclass
class Hit:
    record: Record
    distance: float
    row: int


def _new_index(kind: str, dim: int, train: np.ndarray | None = None):
    from audioflamingo.retrieval.knn import new_index

    try:
        return new_index(kind, dim, train)
    except ValueError as err:
        raise DatastoreError(str(err)) from None


class Datastore:
    def __init__(self, directory: str | Path, index, info: dict, db: sqlite3.Connection):
        self.dir, self.index, self.info, self.db = Path(directory), index, info, db

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(
        cls,
        directory: str | Path,
        embedder_name: str,
        dim: int,
        kind: str = "exact",
        train_vectors: np.ndarray | None = None,
    ) -> "Datastore":
        d = Path(directory)
        if (d / "datastore.json").exists():
            raise DatastoreError(f"{d}: a datastore already exists here (use `index add`, or another --out)")
        d.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(d / "meta.sqlite"))
        db.execute(
            "CREATE TABLE IF NOT EXISTS meta (row INTEGER PRIMARY KEY, id TEXT, audio TEXT, "
            "offset REAL, duration REAL, task TEXT, instruction TEXT, output TEXT, options TEXT, source TEXT)"
        )
        info = {"format": 1, "encoder": embedder_name, "dim": dim, "kind": kind, "count": 0}
        return cls(d, _new_index(kind, dim, train_vectors), info, db)

    @classmethod
    def open(
        cls, directory: str | Path, embedder_name: str | None = None, dim: int | None = None, mmap: bool = True
    ) -> "Datastore":
        import faiss

        d = Path(directory)
        info_file = d / "datastore.json"
        if not info_file.is_file():
            raise DatastoreError(
                f"{d}: not a datastore (no datastore.json; build one with `audioflamingo index build`)"
            )
        try:
            info = json.loads(info_file.read_text())
        except json.JSONDecodeError as err:
            raise DatastoreError(f"{info_file}: corrupt ({err.msg})") from None
        if embedder_name is not None and info.get("encoder") != embedder_name:
            raise DatastoreError(
                f"{d}: built with encoder {info.get('encoder')} (dim {info.get('dim')}), "
                f"but this model's encoder is {embedder_name} (dim {dim}); rebuild the datastore "
                "with this model"
            )
        if dim is not None and info.get("dim") != dim:
            raise DatastoreError(f"{d}: vectors have dimension {info.get('dim')}, this encoder gives {dim}")
        index_file = d / "index.faiss"
        if not index_file.is_file() or index_file.stat().st_size == 0:
            raise DatastoreError(f"{index_file}: missing or empty index file")
        try:
            flags = faiss.IO_FLAG_MMAP if mmap and info.get("kind") == "exact" else 0
            index = faiss.read_index(str(index_file), flags)
        except Exception as err:
            raise DatastoreError(f"{index_file}: corrupt index ({str(err).splitlines()[0][:120]})") from None
        if index.ntotal != info.get("count"):
            raise DatastoreError(
                f"{index_file}: holds {index.ntotal} vectors but datastore.json says {info.get('count')}"
            )
        if not (d / "meta.sqlite").is_file():
            raise DatastoreError(f"{d / 'meta.sqlite'}: missing metadata")
        sp = info.get("search_params", {})
        if "nprobe" in sp and hasattr(index, "nprobe"):
            index.nprobe = int(sp["nprobe"])
        if "efSearch" in sp and hasattr(index, "hnsw"):
            index.hnsw.efSearch = int(sp["efSearch"])
        return cls(d, index, info, sqlite3.connect(str(d / "meta.sqlite")))

    # ------------------------------------------------------------------ write
    def add_vectors(self, vectors: np.ndarray, records: list[Record]) -> None:
        if len(vectors) != len(records):
            raise ValueError("one record per vector")
        if len(vectors) and vectors.shape[1] != self.info["dim"]:
            raise DatastoreError(f"vectors of dimension {vectors.shape[1]} cannot go into a {self.info['dim']}-d store")
        start = int(self.info["count"])
        if getattr(self.index, "is_trained", True) is False:
            self.index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.db.executemany(
            "INSERT INTO meta VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    start + n,
                    r.id,
                    str(r.audio.resolve()),
                    r.offset,
                    r.duration,
                    r.task,
                    r.instruction,
                    r.output,
                    json.dumps(r.options) if r.options is not None else None,
                    r.source,
                )
                for n, r in enumerate(records)
            ],
        )
        self.info["count"] = start + len(records)

    def save(self) -> None:
        import faiss

        if hasattr(self.index, "nprobe"):
            self.info.setdefault("search_params", {})["nprobe"] = int(self.index.nprobe)
        if hasattr(self.index, "hnsw"):
            self.info.setdefault("search_params", {})["efSearch"] = int(self.index.hnsw.efSearch)
        tmp = self.dir / "index.faiss.tmp"
        faiss.write_index(self.index, str(tmp))
        tmp.replace(self.dir / "index.faiss")
        self.db.commit()
        t = self.dir / "datastore.json.tmp"
        t.write_text(json.dumps(self.info, indent=2))
        t.replace(self.dir / "datastore.json")

    # ------------------------------------------------------------------ read
    def __len__(self) -> int:
        return int(self.info["count"])

    def record(self, row: int) -> Record:
        r = self.db.execute(
            "SELECT id, audio, offset, duration, task, instruction, output, options, source FROM meta WHERE row = ?",
            (int(row),),
        ).fetchone()
        if r is None:
            raise DatastoreError(f"{self.dir}: row {row} has no metadata")
        return Record(
            id=r[0],
            audio=Path(r[1]),
            offset=r[2] or 0.0,
            duration=r[3],
            task=r[4],
            instruction=r[5] or "",
            output=r[6] or "",
            options=json.loads(r[7]) if r[7] else None,
            source=r[8] or "",
        )

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)

    def nearest(self, vector: np.ndarray, k: int, exclude: str | Path | None = None) -> list[Hit]:
        """k nearest examples, nearest first; never one from the file `exclude` (the query itself)."""
        ex = str(Path(exclude).resolve()) if exclude else None
        want = min(len(self), k + 16)
        while True:
            dist, rows = self.search(vector[None], want)
            hits = [Hit(self.record(r), float(d), int(r)) for d, r in zip(dist[0], rows[0]) if r >= 0]
            hits = [h for h in hits if ex is None or str(h.record.audio) != ex]
            if len(hits) >= k or want >= len(self):
                return hits[:k]
            want = min(len(self), want * 2)


def build_datastore(
    manifest: str | Path,
    out: str | Path,
    embedder,
    kind: str = "exact",
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict:
    from audioflamingo.data.icl import embed_records

    records = load_manifest(manifest, needs_audio="a datastore")
    vectors, rows, computed = embed_records(
        records, embedder, cache_dir or Path(manifest).parent / ".af-embeddings", progress
    )
    if not rows:
        raise DatastoreError(f"{manifest}: no readable audio to index")
    store = Datastore.create(out, embedder.name, vectors.shape[1], kind, train_vectors=vectors)
    store.add_vectors(vectors, [records[i] for i in rows])
    store.save()
    return {
        "out": str(out),
        "vectors": len(rows),
        "skipped_unreadable": len(records) - len(rows),
        "newly_embedded": computed,
        "kind": kind,
        "dim": int(vectors.shape[1]),
    }


def add_to_datastore(
    manifest: str | Path, directory: str | Path, embedder, cache_dir=None, progress: bool = False
) -> dict:
    from audioflamingo.data.icl import embed_records

    records = load_manifest(manifest, needs_audio="a datastore")
    vectors, rows, computed = embed_records(
        records, embedder, cache_dir or Path(manifest).parent / ".af-embeddings", progress
    )
    store = Datastore.open(directory, embedder.name, int(vectors.shape[1]) if rows else None, mmap=False)
    store.add_vectors(vectors, [records[i] for i in rows])
    store.save()
    return {
        "out": str(directory),
        "added": len(rows),
        "total": len(store),
        "skipped_unreadable": len(records) - len(rows),
    }
