"""Following each row of a batch as it is generated: text, stop sequences, token counts, logprobs.

One RowTracker serves a `generate` call three ways: as its streamer (each new token per row: decode,
check stop sequences, send the new text to the row's client), as a stopping criterion (a row is done
at <EOC>/EOS, at a stop sequence, or when its client left, so it stops costing compute), and as a
logits processor that only records the log-probabilities of the model's distribution at each step
(before temperature, top-k/top-p and the sampling noise).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import torch


@dataclass
class RowResult:
    text: str
    finish_reason: str  # "stop" (end of answer or a stop sequence) or "length" (max_tokens reached)
    completion_tokens: int
    logprobs: list[dict] | None = None


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could be the start of a stop sequence (not sent yet)."""
    keep = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), keep, -1):
            if text.endswith(s[:k]):
                keep = k
                break
    return keep


class RowTracker:
    def __init__(self, pipe, jobs: list, loop: asyncio.AbstractEventLoop):
        self.pipe, self.jobs, self.loop = pipe, jobs, loop
        n = len(jobs)
        self.ids: list[list[int]] = [[] for _ in range(n)]
        self.text = ["" for _ in range(n)]  # the answer so far, cut at a stop sequence
        self.sent = ["" for _ in range(n)]
        self.done = [False] * n
        self.finish = ["length"] * n
        self.count = [0] * n
        self.logprobs: list[list[dict]] = [[] for _ in range(n)]
        self.unsent_logprobs: list[list[dict]] = [[] for _ in range(n)]
        self.prompt_seen = False
        self.step_logprobs: torch.Tensor | None = None
        self.want_logprobs = any(j.top_logprobs is not None for j in jobs)
        s = pipe.model.special
        self.ends = {t for t in (s.eoc, s.eos, s.pad) if t is not None}

    # ------------------------------------------------------------------ logits processor
    def processors(self) -> list:
        return [self._record] if self.want_logprobs else []

    def _record(self, input_ids, scores):
        self.step_logprobs = torch.log_softmax(scores.float(), dim=-1).cpu()
        return scores

    def _entry(self, row: int, tok: int) -> dict | None:
        k = self.jobs[row].top_logprobs
        if k is None or self.step_logprobs is None:
            return None
        lp = self.step_logprobs[row]
        top = torch.topk(lp, k) if k else None
        return {
            **self._token(tok, float(lp[tok])),
            "top_logprobs": [self._token(int(i), float(v)) for v, i in zip(top.values, top.indices)] if k else [],
        }

    def _token(self, tok: int, logprob: float) -> dict:
        piece = self.pipe.tokenizer.decode([tok], skip_special_tokens=False)
        return {"token": piece, "logprob": logprob, "bytes": list(piece.encode("utf-8"))}

    # ------------------------------------------------------------------ stopping criterion
    def criteria(self):
        from transformers import StoppingCriteria, StoppingCriteriaList

        tracker = self

        class RowsDone(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return torch.tensor(
                    [d or j.cancelled for d, j in zip(tracker.done, tracker.jobs)], device=input_ids.device
                )

        return StoppingCriteriaList([RowsDone()])

    # ------------------------------------------------------------------ streamer
    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        for i, tok in enumerate(value.view(-1).tolist()):
            if self.done[i] or self.jobs[i].cancelled:
                continue
            self.count[i] += 1
            if tok in self.ends:
                self.done[i], self.finish[i] = True, "stop"
                self._send(i)
                continue
            entry = self._entry(i, tok)
            self.ids[i].append(tok)
            text = self.pipe.tokenizer.decode(self.ids[i], skip_special_tokens=True).lstrip()
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                if entry:
                    self.unsent_logprobs[i].append(entry)
                continue
            before = len(self.text[i])
            stops = self.jobs[i].stop
            cut = min((p for p in (text.find(s) for s in stops) if p >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
                self.done[i], self.finish[i] = True, "stop"
            self.text[i] = text
            if entry and (cut < 0 or len(text) > before):  # the token that completes a stop adds nothing
                self.unsent_logprobs[i].append(entry)
            self._send(i)

    def _send(self, i: int) -> None:
        text = self.text[i]
        ready = text if self.done[i] else text[: len(text) - _held_back(text, self.jobs[i].stop)]
        if not ready.startswith(self.sent[i]) or (len(ready) == len(self.sent[i]) and not self.done[i]):
            return
        delta, self.sent[i] = ready[len(self.sent[i]) :], ready
        lps, self.unsent_logprobs[i] = self.unsent_logprobs[i], []
        self.logprobs[i] += lps
        q = self.jobs[i].events
        if q is not None and (delta or lps):
            self.loop.call_soon_threadsafe(q.put_nowait, (self.jobs[i].index, delta, lps if lps else None))

    def end(self) -> None:
        for i in range(len(self.jobs)):
            if not self.done[i]:
                self.done[i] = True  # max_tokens reached: finish stays "length"
                self._send(i)

    def results(self) -> list[RowResult]:
        return [
            RowResult(
                self.text[i],
                self.finish[i],
                self.count[i],
                self.logprobs[i] if self.jobs[i].top_logprobs is not None else None,
            )
            for i in range(len(self.jobs))
        ]
