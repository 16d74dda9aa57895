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


def build_index(vectors: np.ndarray, exact_limit: int = 200_000, hnsw_m: int = 32, ef_search: int = 128):
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) <= exact_limit:
        index = faiss.IndexFlatL2(x.shape[1])
    else:
        index = faiss.IndexHNSWFlat(x.shape[1], hnsw_m)
        index.hnsw.efSearch = ef_search
    index.add(x)
    return index


def knn_excluding_groups(vectors: np.ndarray, k: int, groups: list[str], exact_limit: int = 200_000,
                         batch: int = 4096) -> Neighbours:
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
