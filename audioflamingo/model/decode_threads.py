"""How many threads the decode steps of a CPU generation run on.

torch's intra-op thread count is one global setting: prefill (GEMMs, compute-bound) wants every
core, while a batch-1 decode step (GEMVs, bound by memory bandwidth, plus hundreds of tiny ops) gains
little from a second thread on a quiet machine and loses badly on a loaded one, where each small op
waits for its share on a descheduled thread. So generation switches the count around its decode
loop only (measurements: docs/BENCHMARKS.md, "CPU decode at the bandwidth floor").
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import torch

DECODE_THREADS_ENV = "AUDIOFLAMINGO_DECODE_THREADS"
# Measured on the 2-core EPYC of docs/BENCHMARKS.md ("CPU decode at the bandwidth floor"): a batch-1
# step reads weights at the memory bandwidth one core already draws, so a second thread gains almost
# nothing on a quiet machine, and with any other busy process it loses ~4x (its share of each small
# op waits for a descheduled thread). Batches this size and under decode on one thread.
SINGLE_THREAD_MAX_BATCH = 1


def decode_thread_count(batch: int, available: int, env: str | None = None) -> int:
    """Threads for the decode steps of a `batch`-row generation, given `available` (torch's setting).
    `AUDIOFLAMINGO_DECODE_THREADS` overrides: a number, or 0 for "leave torch's setting"."""
    if env is not None and env.strip() != "":
        n = int(env)
        return available if n <= 0 else n
    return 1 if batch <= SINGLE_THREAD_MAX_BATCH else available


_threads_lock = threading.Lock()
_threads_users = 0
_threads_saved = 0


@contextmanager
def decode_threads(batch: int, device: torch.device):
    """Run the body on `decode_thread_count` threads; torch's count is global, so concurrent
    generations share one saved value and the last to leave restores it."""
    global _threads_users, _threads_saved
    if device.type != "cpu":
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
        _threads_users += 1
        n = decode_thread_count(batch, _threads_saved, os.environ.get(DECODE_THREADS_ENV))
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0 and torch.get_num_threads() != _threads_saved:
                torch.set_num_threads(_threads_saved)
