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
# step reads weights at the memory bandwidth one core already draws, so a second thread gains little
# on a quiet machine, and with other busy processes it loses 3-6x (its share of each small op waits
# for a descheduled thread). Batches this size and under decode on one thread.
SINGLE_THREAD_MAX_BATCH = 1


def machine_loaded() -> bool:
    """Other work is running: the 1-minute load average is at least one process above the cores
    this process may use (our own threads account for at most that many)."""
    try:
        cores = len(os.sched_getaffinity(0))
        return os.getloadavg()[0] >= cores + 1
    except (AttributeError, OSError):
        return False


def decode_thread_count(batch: int, available: int, env: str | None = None, loaded: bool = False) -> int:
    """Threads for the decode steps of a `batch`-row generation, given `available` (torch's setting).
    `AUDIOFLAMINGO_DECODE_THREADS` overrides: a number, or 0 for "leave torch's setting". On a
    loaded machine every batch decodes on one thread (measured: 2 threads were slower at batch 16)."""
    if env is not None and env.strip() != "":
        n = int(env)
        return available if n <= 0 else n
    return 1 if loaded or batch <= SINGLE_THREAD_MAX_BATCH else available


def prefill_thread_count(available: int, env: str | None = None, loaded: bool = False) -> int:
    """Threads for the prompt pass: all of them (GEMMs), except on a loaded machine."""
    if env is not None and env.strip() != "":
        return available
    return 1 if loaded else available


_threads_lock = threading.Lock()
_threads_users = 0
_threads_saved = 0


@contextmanager
def _threads(choose, device: torch.device):
    """Run the body on `choose(available)` threads; torch's count is global, so concurrent
    generations share one saved value and the last to leave restores it."""
    global _threads_users, _threads_saved
    if device.type != "cpu":
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
        _threads_users += 1
        n = choose(_threads_saved)
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0 and torch.get_num_threads() != _threads_saved:
                torch.set_num_threads(_threads_saved)


def decode_threads(batch: int, device: torch.device):
    """Context: the decode steps of a `batch`-row generation on `decode_thread_count` threads."""
    env, loaded = os.environ.get(DECODE_THREADS_ENV), machine_loaded()
    return _threads(lambda available: decode_thread_count(batch, available, env, loaded), device)


def prefill_threads(device: torch.device):
    """Context: the prompt pass on `prefill_thread_count` threads."""
    env, loaded = os.environ.get(DECODE_THREADS_ENV), machine_loaded()
    return _threads(lambda available: prefill_thread_count(available, env, loaded), device)
