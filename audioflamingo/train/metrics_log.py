"""metrics.jsonl bookkeeping: one row per step, even when a resumed run repeats steps."""

from __future__ import annotations

import json
import os
from pathlib import Path


def trim(path: str | Path, last_step: int) -> int:
    """Drop the rows of steps after `last_step` (the checkpoint a run starts from): those steps run
    again and log again. A fresh run starts from 0, so an old log in its folder is emptied. Rows
    that are not JSON (a line cut by a kill) go too. Returns how many rows were dropped."""
    p = Path(path)
    if not p.is_file():
        return 0
    kept, dropped = [], 0
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            keep = isinstance(row, dict) and int(row.get("step", 0)) <= last_step
        except (ValueError, TypeError):
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = p.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(l + "\n" for l in kept), encoding="utf-8")
        os.replace(tmp, p)
    return dropped
