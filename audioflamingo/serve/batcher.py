"""Dynamic batching: requests that arrive within a short window are generated as one batch.

Waiting requests sit in a bounded list feeding one worker. The worker takes the first, waits up to
`window_ms` for more (at most `max_batch`) and runs the batch in a thread so the event loop keeps
serving. A request whose client leaves is taken out of the list at once (its slot is free for the
next client, not held until its batch would have run), and a row whose client leaves mid-generation
stops there. Each row's tokens are routed to its own client as they are generated (rows.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field, replace

import torch

from audioflamingo.serve.rows import RowResult, RowTracker


class QueueFull(Exception):
    pass


@dataclass(eq=False)  # identity, not field-by-field: fields hold waveforms
class Job:
    prompt: object  # Rendered
    audio: object  # waveform (np.ndarray)
    settings: object  # GenerationSettings
    index: int = 0  # the choice index (n > 1 submits one job per choice)
    events: asyncio.Queue | None = None  # streaming: (index, delta, logprobs) then (index, None, None)
    stop: list[str] = field(default_factory=list)
    top_logprobs: int | None = None
    future: asyncio.Future | None = None
    cancelled: bool = False
    created: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(self, pipe, max_batch: int = 16, window_ms: float = 20.0, queue_size: int = 64):
        self.pipe, self.max_batch, self.window, self.queue_size = pipe, max_batch, window_ms / 1000, queue_size
        self.waiting: deque[Job] = deque()
        self.running: list[Job] = []
        self.batches: list[int] = []  # sizes of the batches run (observability and tests)
        self.dropped = 0  # requests whose client left (or timed out) before their batch ran
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    @property
    def in_flight(self) -> int:
        return len(self.waiting) + len(self.running)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def submit(self, jobs: list[Job]) -> None:
        """All of a request's jobs are queued, or none (QueueFull)."""
        if len(self.waiting) + len(jobs) > self.queue_size:
            raise QueueFull()
        loop = asyncio.get_running_loop()
        for j in jobs:
            j.future = loop.create_future()
            self.waiting.append(j)
        self._wake.set()

    def cancel(self, job: Job) -> None:
        """The client left or timed out: free its queue slot now; a running row stops at its next token."""
        job.cancelled = True
        try:
            self.waiting.remove(job)
        except ValueError:
            return
        self.dropped += 1
        if not job.future.done():
            job.future.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.waiting:
                self._wake.clear()
                await self._wake.wait()
            jobs = self.running = [self.waiting.popleft()]
            deadline = loop.time() + self.window
            while len(jobs) < self.max_batch:
                if self.waiting:
                    jobs.append(self.waiting.popleft())
                    continue
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(0.002)
            live = [j for j in jobs if not j.cancelled]
            self.dropped += len(jobs) - len(live)
            self.running = live
            if not live:
                continue
            self.batches.append(len(live))
            try:
                results = await loop.run_in_executor(None, self._generate, live, loop)
                for j, r in zip(live, results):
                    if not j.future.done():
                        j.future.set_result(r)
            except Exception as err:  # a failed batch fails its requests, never the server
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(err)
            finally:
                self.running = []
                for j in live:
                    if j.events is not None:
                        j.events.put_nowait((j.index, None, None))

    def _generate(self, jobs: list[Job], loop) -> list[RowResult]:
        pipe = self.pipe
        # Rows are grouped by identical settings but for the seed (each sampled row has its own random
        # stream, so requests with different seeds share a batch); a mixed window runs as several calls.
        out: dict[int, RowResult] = {}
        groups: dict[str, list[int]] = {}
        for i, j in enumerate(jobs):
            groups.setdefault(repr(replace(j.settings, seed=None)), []).append(i)
        for idx in groups.values():
            sub = [jobs[i] for i in idx]
            kw = sub[0].settings.hf_kwargs()
            if kw.get("do_sample"):
                kw["seed"] = [j.settings.seed if j.settings.seed is not None else _fresh_seed() for j in sub]
            input_ids, attn, state = pipe._batch([j.prompt for j in sub], [[j.audio] for j in sub])
            rows = RowTracker(pipe, sub, loop)
            with torch.no_grad():
                pipe.model.generate(
                    input_ids,
                    attn,
                    state,
                    streamer=rows,
                    stopping_criteria=rows.criteria(),
                    logits_processor=rows.processors(),
                    **kw,
                )
            for i, r in zip(idx, rows.results()):
                out[i] = r
        return [out[i] for i in range(len(jobs))]


def _fresh_seed() -> int:
    return int(torch.randint(0, 2**62, (1,)).item())
