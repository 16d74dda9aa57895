"""Which weight dtype decodes faster on this machine: bf16 only where it was measured faster.

bf16 weights halve the bytes a batch-1 decode step reads, but that pays only if the CPU's bf16
matrix-vector kernels stream them at least about as fast as fp32 ones. An instruction-set check is
not enough: on the AMD EPYC (Zen 4, avx512_bf16) of docs/BENCHMARKS.md torch's bf16 GEMV reads
about half as many bytes per second as its fp32 one, so bf16 saves nothing there. So the choice is
a short micro-benchmark of the decode step's dominant product (d -> 2 x ffn at Qwen2-0.5B width),
run once per process and only on CPUs that have bf16 instructions at all.

`AUDIOFLAMINGO_DTYPE=float32|bfloat16` overrides the choice.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import torch

DTYPE_ENV = "AUDIOFLAMINGO_DTYPE"
# bf16 must beat fp32 by this factor in time per product to be chosen: a margin for timing noise
# on a shared machine, and for the logit drift bf16 costs (docs/BENCHMARKS.md).
MIN_SPEEDUP = 1.15


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def has_bf16_instructions(flags: set[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _gemv_seconds(dtype: torch.dtype, rows: int = 896, cols: int = 9728, copies: int = 6) -> float:
    """Median time of one x @ W over `copies` column-major weights (together beyond the caches)."""
    ws = [torch.randn(rows, cols).to(dtype) for _ in range(copies)]
    x = torch.randn(1, rows).to(dtype)
    times = []
    for rep in range(4):
        t = time.perf_counter()
        for w in ws:
            x @ w
        if rep:  # the first pass warms up
            times.append((time.perf_counter() - t) / copies)
    return sorted(times)[len(times) // 2]


@functools.lru_cache(maxsize=None)
def bf16_speedup(threads: int = 1) -> float:
    """fp32 time / bf16 time of the decode step's dominant product on `threads` threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _gemv_seconds(torch.float32) / _gemv_seconds(torch.bfloat16)
    finally:
        torch.set_num_threads(old)


def choose(device_type: str, env: str | None, bf16_instructions: bool, speedup) -> torch.dtype:
    """The decision, separated from the measurement: `speedup` is called only when it matters."""
    if env:
        if env not in ("float32", "bfloat16"):
            raise ValueError(f"{DTYPE_ENV} must be float32 or bfloat16, not {env!r}")
        return getattr(torch, env)
    if device_type != "cpu":  # measured here for CPUs only; GPUs take the dtype they are asked for
        return torch.float32
    if not bf16_instructions:
        return torch.float32
    return torch.bfloat16 if speedup() >= MIN_SPEEDUP else torch.float32


def decode_dtype(device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype to run inference weights in on `device` (see the module docstring)."""
    dev = torch.device(device)
    return choose(dev.type, os.environ.get(DTYPE_ENV), has_bf16_instructions(), bf16_speedup)
