"""Seeded sampling as logits processors: one random stream per row, the same under every runtime.

transformers draws every row's token from one global stream (`torch.multinomial` over the batch), so
a row's sample depends on its batch neighbours and on whatever else consumed the global generator
first (building the transformers twin of the lean LM initialises weights from it). Here sampling is
the Gumbel-max trick, argmax(logits + Gumbel noise), written as a processor that runs before greedy
argmax: each row draws its noise from its own `torch.Generator`, seeded from the row's seed. So:

    the same prompt, audio, settings and seed give the same text, alone or in any batch, on the
    lean runtime or on transformers.

Temperature, top-k and top-p are applied first, in transformers' order and with its rules (tested
against its warpers); they are a few lines each, written here so the lean runtime need not import
transformers.
"""

from __future__ import annotations

from typing import Sequence

import torch


def check_sampling(temperature: float | None, top_k: int | None, top_p: float | None) -> None:
    if temperature is not None and not (temperature > 0 and temperature < float("inf")):
        raise ValueError(f"temperature must be a positive number when sampling, not {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 0):
        raise ValueError(f"top_k must be a non-negative integer (0 = off), not {top_k}")
    if top_p is not None and not (0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], not {top_p}")


class Temperature:
    def __init__(self, t: float):
        self.t = float(t)

    def __call__(self, input_ids, scores):
        return scores / self.t


class TopK:
    """Keep the k highest scores (ties at the k-th value kept too)."""

    def __init__(self, k: int):
        self.k = int(k)

    def __call__(self, input_ids, scores):
        k = min(self.k, scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[..., -1:]
        return scores.masked_fill(scores < kth, -float("inf"))


class TopP:
    """Keep the smallest set of most likely tokens whose probability reaches p (at least one)."""

    def __init__(self, p: float):
        self.p = float(p)

    def __call__(self, input_ids, scores):
        sorted_scores, order = torch.sort(scores, descending=False, dim=-1)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum <= (1 - self.p)
        drop_sorted[..., -1:] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        return scores.masked_fill(drop, -float("inf"))


class GumbelNoise:
    """Adds Gumbel(0, 1) noise, row r drawing from its own generator seeded with `seeds[r]`.

    Beam search and multiple return sequences repeat each row r times; copy j of row i then draws
    from seed `seeds[i] + j`, so the copies differ and still do not depend on the batch.
    """

    def __init__(self, seeds: Sequence[int]):
        self.seeds = [int(s) for s in seeds]
        self.gens: list[torch.Generator] | None = None

    def _start(self, rows: int) -> None:
        if rows % len(self.seeds):
            raise ValueError(f"{rows} rows to sample for {len(self.seeds)} seeds")
        r = rows // len(self.seeds)
        self.gens = [torch.Generator().manual_seed((self.seeds[i // r] + i % r) % 2**63) for i in range(rows)]

    def __call__(self, input_ids, scores):
        if self.gens is None:
            self._start(scores.shape[0])
        v = scores.shape[-1]
        # float64 uniforms on the CPU generator: the same noise on every device and dtype.
        u = torch.stack([torch.rand(v, generator=g, dtype=torch.float64) for g in self.gens])
        u = u.clamp_(torch.finfo(torch.float64).tiny, 1.0 - torch.finfo(torch.float64).eps)
        g = -torch.log(-torch.log(u))
        return (scores.double() + g.to(scores.device)).to(scores.dtype)


def sampling_processors(
    batch: int,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | Sequence[int] | None = None,
) -> list:
    """Processors that turn greedy decoding into seeded sampling (see the module docstring).

    seed: one int for every row, one per row, or None (one seed drawn from torch's global generator,
    so `torch.manual_seed` still makes a run repeatable)."""
    check_sampling(temperature, top_k, top_p)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    seeds = [int(seed)] * batch if isinstance(seed, int) else [int(s) for s in seed]
    if len(seeds) != batch:
        raise ValueError(f"{len(seeds)} seeds for a batch of {batch}")
    out: list = []
    if temperature is not None and temperature != 1.0:
        out.append(Temperature(temperature))
    if top_k:
        out.append(TopK(top_k))
    if top_p is not None and top_p < 1.0:
        out.append(TopP(top_p))
    out.append(GumbelNoise(seeds))
    return out
