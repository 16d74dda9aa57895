"""Progress of long runs: a tqdm bar on a terminal, a plain line every N seconds anywhere else.

A run whose stderr is a pipe or a log file (CI, nohup, a scheduler) would otherwise show nothing for
minutes: tqdm bars are off there because their carriage returns make unreadable logs. The interval
is AUDIOFLAMINGO_LOG_EVERY seconds (default 30; 0 turns the lines off).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

DEFAULT_EVERY = 30.0


def progress_bar(
    total: int | None, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0, **tqdm_kwargs: Any
):
    """enabled=False: silent. Otherwise a tqdm bar when stderr is a terminal, else `LogLines`."""
    if enabled and not sys.stderr.isatty():
        return LogLines(total, desc, unit, initial, every=log_every())
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled, **tqdm_kwargs)


def log_every() -> float:
    try:
        return float(os.environ.get("AUDIOFLAMINGO_LOG_EVERY", DEFAULT_EVERY))
    except ValueError:
        return DEFAULT_EVERY


class LogLines:
    """The part of tqdm's interface the project uses (update, set_postfix, write, close)."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        initial: int = 0,
        every: float = DEFAULT_EVERY,
        stream=None,
        clock=time.monotonic,
    ):
        self.total, self.desc, self.unit, self.n, self.every = total, desc, unit, initial, every
        self.stream, self.clock = stream or sys.stderr, clock
        self.start_n, self.start = initial, clock()
        self.last = self.start
        self.postfix = ""

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if self.every > 0 and now - self.last >= self.every:
            self.last = now
            self._line(now)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kw) -> None:
        items = {**(ordered_dict or {}), **kw}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def write(self, s: str) -> None:
        print(s, file=self.stream, flush=True)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        eta = ""
        if self.total and rate > 0:
            eta = f", eta {_duration((self.total - self.n) / rate)}"
        post = f", {self.postfix}" if self.postfix else ""
        print(
            f"{self.desc}: {done} {self.unit}{pct}, {rate:.2f} {self.unit}/s, {_duration(elapsed)} elapsed{eta}{post}",
            file=self.stream,
            flush=True,
        )


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
