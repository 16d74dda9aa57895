"""What every battery case uses: the case registry, a shared context and the expectations."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]


class Fail(AssertionError):
    """The input was not handled as it should be; the message says how."""


@dataclass
class Case:
    group: str
    name: str
    fn: Callable[["Context"], None]


def collection(group: str):
    """(list, decorator): `@case("name")` appends a case of `group` to the list."""
    items: list[Case] = []

    def case(name: str):
        def register(fn):
            items.append(Case(group, name, fn))
            return fn

        return register

    return items, case


@dataclass
class Result:
    """How one command ended: exit code, what it printed, and the traceback if it raised."""

    rc: int
    out: str
    err: str
    traceback: str | None = None
    argv: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """The lines of stderr that are not warnings or progress."""
        return [
            l
            for l in self.err.splitlines()
            if l.strip() and not l.startswith("audioflamingo: warning:") and "it/s]" not in l
        ]


class Context:
    """A temporary folder shared by all cases, with a tiny model and a clip made on first use."""

    def __init__(self, root: Path | None = None):
        self._own = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="af-battery-"))
        self._n = 0
        self._model: Path | None = None

    def close(self) -> None:
        if self._own:
            shutil.rmtree(self.root, ignore_errors=True)

    def tmp(self) -> Path:
        """A fresh empty folder."""
        self._n += 1
        d = self.root / f"case{self._n:03d}"
        d.mkdir()
        return d

    def model_dir(self) -> Path:
        """An untrained tiny model (read-only by convention: copy it with `model_copy` to break it)."""
        if self._model is None:
            from audioflamingo.presets import build

            model, tok = build("tiny", seed=0)
            self._model = self.root / "tiny-model"
            model.save_pretrained(self._model, tok)
        return self._model

    def model_copy(self) -> Path:
        dst = self.tmp() / "model"
        shutil.copytree(self.model_dir(), dst)
        return dst

    def clip(self, seconds: float = 1.0, name: str = "clip.wav", rate: int = 16000) -> Path:
        import numpy as np
        import soundfile as sf

        p = self.tmp() / name
        t = np.arange(int(seconds * rate)) / rate
        sf.write(p, (0.4 * np.sin(2 * np.pi * 440 * t)).astype("float32"), rate)
        return p

    def cli(self, *argv: str) -> Result:
        """`audioflamingo ARGV` in this process (fast: torch is imported once for all cases)."""
        from audioflamingo.cli import main

        out, err = io.StringIO(), io.StringIO()
        tb = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(argv))
            except SystemExit as e:  # argparse
                rc = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: BLE001 - the very thing a case looks for
                tb = traceback.format_exc()
                rc = 1
        return Result(int(rc or 0), out.getvalue(), err.getvalue(), tb, list(argv))

    def run(self, *argv: str, timeout: float = 600, stdin: str | None = None) -> Result:
        """`python -m audioflamingo ARGV` in its own process (for kills and exit codes of a real run)."""
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        p = subprocess.run(
            [sys.executable, "-m", "audioflamingo", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            input=stdin,
        )
        tb = p.stderr if "Traceback (most recent call last)" in p.stderr else None
        return Result(p.returncode, p.stdout, p.stderr, tb, list(argv))


def expect_one_line_error(res: Result, *must_contain: str) -> None:
    """A refusal as the project promises it: non-zero exit, no traceback, exactly one error line
    on stderr, naming what it is told to (a file, a key)."""
    if res.traceback:
        last = res.traceback.strip().splitlines()[-1]
        raise Fail(f"traceback: {last[:200]}")
    if res.rc == 0:
        raise Fail("exit code 0 (accepted)")
    lines = res.errors()
    if len(lines) != 1:
        raise Fail(f"{len(lines)} error lines, not 1: {' | '.join(lines[:3])[:300]}")
    for s in must_contain:
        if s not in lines[0]:
            raise Fail(f"message does not name {s!r}: {lines[0][:300]}")


def expect_ok(res: Result) -> None:
    if res.traceback:
        raise Fail(f"traceback: {res.traceback.strip().splitlines()[-1][:200]}")
    if res.rc != 0:
        raise Fail(f"exit code {res.rc}: {' | '.join(res.errors()[:2])[:300]}")
