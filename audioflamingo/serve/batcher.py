"""Dynamic batching: requests that arrive within a short window are generated as one batch.

A bounded asyncio queue feeds one worker. The worker takes the first waiting request, waits up to
`window_ms` for more (at most `max_batch`), drops any whose client has gone, and runs the batch in a
thread so the event loop keeps serving. Each row's tokens are routed to its own stream as they
are generated, so streaming and batching work together.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace

import torch


class QueueFull(Exception):
    pass


@dataclass(eq=False)  # identity, not field-by-field: fields hold waveforms
class Job:
    prompt: object  # Rendered
    audio: object  # waveform (np.ndarray)
    settings: object  # GenerationSettings
    stream: asyncio.Queue | None = None
    future: asyncio.Future | None = None
    cancelled: bool = False
    created: float = field(default_factory=time.monotonic)


class RowStreamer:
    """A transformers streamer for a whole batch: decodes each row incrementally, routes deltas."""

    def __init__(self, pipe, jobs: list[Job], loop: asyncio.AbstractEventLoop):
        self.pipe, self.jobs, self.loop = pipe, jobs, loop
        self.ids: list[list[int]] = [[] for _ in jobs]
        self.sent = ["" for _ in jobs]
        self.done = [False for _ in jobs]
        self.prompt_seen = False
        s = pipe.model.special
        self.stops = {s.eoc, s.eos, s.pad}

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        for i, tok in enumerate(value.view(-1).tolist()):
            if self.done[i]:
                continue
            if tok in self.stops:
                self.done[i] = True
                continue
            self.ids[i].append(tok)
            text = self.pipe.tokenizer.decode(self.ids[i], skip_special_tokens=True)
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                continue
            delta, self.sent[i] = text[len(self.sent[i]):], text
            q = self.jobs[i].stream
            if delta and q is not None:
                self.loop.call_soon_threadsafe(q.put_nowait, delta)

    def end(self) -> None:
        pass


class Batcher:
    def __init__(self, pipe, max_batch: int = 16, window_ms: float = 20.0, queue_size: int = 64):
        self.pipe, self.max_batch, self.window = pipe, max_batch, window_ms / 1000
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self.batches: list[int] = []  # sizes of the batches run (observability and tests)
        self.in_flight = 0
        self.dropped = 0  # requests whose client left (or timed out) before their batch ran
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def submit(self, job: Job) -> Job:
        job.future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull() from None
        self.in_flight += 1
        return job

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            jobs = [first]
            deadline = loop.time() + self.window
            # Poll rather than wait_for(queue.get()): a get cancelled by a timeout can lose its item.
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(0.002)
            live = [j for j in jobs if not j.cancelled and not j.future.done()]
            self.in_flight -= len(jobs) - len(live)
            self.dropped += len(jobs) - len(live)
            if not live:
                continue
            self.batches.append(len(live))
            try:
                texts = await loop.run_in_executor(None, self._generate, live, loop)
                for j, t in zip(live, texts):
                    if not j.future.done():
                        j.future.set_result(t)
            except Exception as err:  # a failed batch fails its requests, never the server
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(err)
            finally:
                for j in live:
                    self.in_flight -= 1
                    if j.stream is not None:
                        j.stream.put_nowait(None)

    def _generate(self, jobs: list[Job], loop) -> list[str]:
        pipe = self.pipe
        # Rows are grouped by identical settings but for the seed (each sampled row has its own random
        # stream, so requests with different seeds share a batch); a mixed window runs as several calls.
        out: dict[int, str] = {}
        groups: dict[str, list[int]] = {}
        for i, j in enumerate(jobs):
            groups.setdefault(repr(replace(j.settings, seed=None)), []).append(i)
        for idx in groups.values():
            sub = [jobs[i] for i in idx]
            kw = sub[0].settings.hf_kwargs()
            if kw.get("do_sample"):
                kw["seed"] = [j.settings.seed if j.settings.seed is not None else _fresh_seed() for j in sub]
            input_ids, attn, state = pipe._batch([j.prompt for j in sub], [[j.audio] for j in sub])
            streamer = RowStreamer(pipe, sub, loop)
            with torch.no_grad():
                seq = pipe.model.generate(input_ids, attn, state, streamer=streamer, **kw)
            for i, row in zip(idx, seq):
                out[i] = pipe.decode(row[input_ids.shape[1]:])
        return [out[i] for i in range(len(jobs))]


def _fresh_seed() -> int:
    return int(torch.randint(0, 2**62, (1,)).item())
