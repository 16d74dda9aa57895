"""One request's answer in OpenAI's shapes: a chat.completion, or chat.completion.chunk events.

Its jobs (one per choice, n of them) are already queued; this waits for them, watching for the
client leaving (then every job is cancelled at once, freeing its queue slot) and for the timeout.
`usage` counts the prompt's tokens once (n choices share one prompt, as OpenAI counts) and every
generated token, the end-of-answer token included.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi.responses import StreamingResponse

from audioflamingo.serve.errors import ApiError, error


class Completion:
    def __init__(self, req, jobs, prompt_tokens: int, cfg, batcher, request):
        self.req, self.jobs, self.prompt_tokens, self.cfg = req, jobs, prompt_tokens, cfg
        self.batcher, self.request = batcher, request
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def cancel(self) -> None:
        for j in self.jobs:
            if not j.future.done():
                self.batcher.cancel(j)

    def usage(self, results) -> dict:
        done = sum(r.completion_tokens for r in results)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.cfg.model_name}

    async def wait(self):
        deadline = time.monotonic() + self.cfg.timeout_s
        futures = [j.future for j in self.jobs]
        try:
            while not all(f.done() for f in futures):
                if await self.request.is_disconnected():
                    self.cancel()
                    return error(499, "client closed the request")
                if time.monotonic() > deadline:
                    self.cancel()
                    return error(504, f"generation took longer than {self.cfg.timeout_s:g} s")
                await asyncio.wait(futures, timeout=0.05, return_when=asyncio.ALL_COMPLETED)
            results = [f.result() for f in futures]
        except asyncio.CancelledError:
            self.cancel()
            raise
        except Exception as err:  # the batch failed: the client learns why, in JSON
            self.cancel()
            return error(500, f"generation failed ({type(err).__name__}: {err})"[:500])
        choices = [
            {
                "index": j.index,
                "message": {"role": "assistant", "content": r.text},
                "logprobs": {"content": r.logprobs} if r.logprobs is not None else None,
                "finish_reason": r.finish_reason,
            }
            for j, r in zip(self.jobs, results)
        ]
        return {**self._head("chat.completion"), "choices": choices, "usage": self.usage(results)}

    def stream(self) -> StreamingResponse:
        return StreamingResponse(self._events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def _chunk(self, index: int, delta: dict, finish=None, logprobs=None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        body = {**self._head("chat.completion.chunk"), "choices": [choice]}
        if self.req.include_usage:
            body["usage"] = None  # OpenAI's shape: null on every chunk but the last
        return f"data: {json.dumps(body)}\n\n"

    async def _events(self):
        q = self.jobs[0].events
        try:
            for j in self.jobs:
                yield self._chunk(j.index, {"role": "assistant", "content": ""})
            open_rows, results = len(self.jobs), {}
            while open_rows:
                index, delta, lps = await asyncio.wait_for(q.get(), self.cfg.timeout_s)
                if delta is None and lps is None:  # this choice is finished
                    open_rows -= 1
                    job = self.jobs[index]
                    try:
                        results[index] = r = job.future.result()
                    except Exception as err:  # noqa: BLE001 - the stream has started: report in-band
                        yield (
                            "data: "
                            + json.dumps(ApiError(500, f"generation failed ({type(err).__name__})").body())
                            + "\n\n"
                        )
                        return
                    yield self._chunk(index, {}, r.finish_reason)
                    continue
                yield self._chunk(
                    index, {"content": delta} if delta else {}, logprobs={"content": lps} if lps is not None else None
                )
            if self.req.include_usage:
                usage = self.usage([results[j.index] for j in self.jobs])
                yield f"data: {json.dumps({**self._head('chat.completion.chunk'), 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
        finally:  # the client left (or timed out): its rows stop, its queue slots are freed
            self.cancel()
