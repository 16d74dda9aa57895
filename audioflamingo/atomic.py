"""Output folders that appear whole or not at all."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from audioflamingo.errors import ModelLoadError


@contextlib.contextmanager
def new_directory(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out` to fill; it is renamed to `out` when the block ends
    without error, and deleted otherwise, so a refusal or a crash leaves nothing behind. `out`
    must not exist, or be an empty folder."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelLoadError(f"{out}: already exists and is not empty; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
