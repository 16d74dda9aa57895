"""k nearest neighbours by L2 distance with faiss, excluding the query's own group.

Exact (`IndexFlatL2`) up to `exact_limit` vectors, HNSW above it. A query never gets itself, nor any
item of its group (other segments of the same recording), as a neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Neighbours:
    ids: np.ndarray  # (N, k) int64 row indices, -1 where fewer than k exist
    distances: np.ndarray  # (N, k) float32 squared L2


KINDS = ("exact", "hnsw", "ivf")


def new_index(kind: str, dim: int, train: np.ndarray | None = None):
    """An empty faiss index of a kind: the one place the project makes them (ICL data, datastores)."""
    from audioflamingo.extras import require

    faiss = require("faiss")  # an extra: one line naming it when absent

    if kind == "exact":
        return faiss.IndexFlatL2(dim)
    if kind == "hnsw":
        idx = faiss.IndexHNSWFlat(dim, 32)
        idx.hnsw.efConstruction, idx.hnsw.efSearch = 80, 128
        return idx
    if kind == "ivf":
        if train is None or len(train) < 256:
            raise ValueError("an ivf index needs at least 256 vectors to train on; use exact or hnsw")
        # sqrt(n) lists, a quarter of them probed by default (datastores persist a tuned value).
        nlist = int(max(8, min(4096, np.sqrt(len(train)))))
        idx = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)
        idx.train(np.ascontiguousarray(train, dtype=np.float32))
        idx.nprobe = max(16, nlist // 4)
        return idx
    raise ValueError(f"unknown index kind {kind!r}; choose from {', '.join(KINDS)}")


def build_index(vectors: np.ndarray, exact_limit: int = 200_000):
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index = new_index("exact" if len(x) <= exact_limit else "hnsw", x.shape[1])
    index.add(x)
    return index


def knn_excluding_groups(
    vectors: np.ndarray, k: int, groups: list[str], exact_limit: int = 200_000, batch: int = 4096
) -> Neighbours:
    """For every row, its k nearest other rows whose group differs from its own."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    codes = np.unique(np.asarray(groups), return_inverse=True)[1]
    largest = int(np.bincount(codes).max()) if n else 0
    index = build_index(x, exact_limit)
    ids = np.full((n, k), -1, np.int64)
    dist = np.full((n, k), np.inf, np.float32)
    for s in range(0, n, batch):
        q = x[s : s + batch]
        want = min(n, k + largest)  # enough candidates to survive dropping a whole group
        while True:
            d, i = index.search(q, want)
            ok = (i >= 0) & (codes[np.clip(i, 0, None)] != codes[s : s + len(q), None])
            if ok.sum(axis=1).min() >= min(k, n - largest) or want >= n:
                break
            want = min(n, want * 2)
        for r in range(len(q)):
            keep = np.flatnonzero(ok[r])[:k]
            ids[s + r, : len(keep)] = i[r, keep]
            dist[s + r, : len(keep)] = d[r, keep]
    return Neighbours(ids=ids, distances=dist)
