"""Weighted mixture of datasets with a virtual epoch, deterministic from the seed and resumable.

Each draw picks a dataset with probability lambda_i / sum(lambda); within a dataset, items come in
a seeded permutation (a new one per pass), so every item is seen before any repeats. The order of
epoch e is a pure function of (seed, e): the sampler's whole state is (epoch, position).
"""

from __future__ import annotations

import numpy as np


class MixtureSampler:
    def __init__(self, sizes: list[int], weights: list[float], epoch_size: int, seed: int):
        if len(sizes) != len(weights) or not sizes:
            raise ValueError("need one weight per dataset")
        if any(s <= 0 for s in sizes):
            raise ValueError("every dataset of a mixture needs at least one record")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError("mixture weights must be >= 0 and not all 0")
        self.sizes, self.p, self.epoch_size, self.seed = sizes, w / w.sum(), epoch_size, seed
        self.epoch, self.pos = 0, 0
        self._order: list[tuple[int, int]] | None = None

    def epoch_order(self, epoch: int) -> list[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, epoch])
        which = rng.choice(len(self.sizes), size=self.epoch_size, p=self.p)
        out, cursor, perms = [], [0] * len(self.sizes), [None] * len(self.sizes)
        for d in which:
            d = int(d)
            if cursor[d] % self.sizes[d] == 0:
                perms[d] = rng.permutation(self.sizes[d])
            out.append((d, int(perms[d][cursor[d] % self.sizes[d]])))
            cursor[d] += 1
        return out

    def take(self, n: int) -> list[tuple[int, int]]:
        out = []
        while len(out) < n:
            if self._order is None:
                self._order = self.epoch_order(self.epoch)
            need = n - len(out)
            chunk = self._order[self.pos : self.pos + need]
            out += chunk
            self.pos += len(chunk)
            if self.pos >= self.epoch_size:
                self.epoch, self.pos, self._order = self.epoch + 1, 0, None
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.pos, self._order = int(s["epoch"]), int(s["pos"]), None
