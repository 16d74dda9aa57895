"""Per-stage speed of a training run, read from the metrics.jsonl the trainer writes.

    python bench/recipe_speed.py runs/default-v2-gpu/metrics.jsonl [more.jsonl ...] [--skip 5] [--out F]

For each run and stage: the median seconds between consecutive steps (the first `--skip` steps of
each stage left out: model load, CUDA warm-up, empty feature cache), samples and target tokens per
second, and the peak GPU memory (or peak RSS on the CPU). Wall-clock between steps is what a recipe's
budget needs; the trainer's own per-step figures leave out logging and checkpoint saves.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def stage_speed(path: Path, skip: int = 5) -> list[dict]:
    recs = [json.loads(line) for line in path.read_text().splitlines() if '"loss"' in line]
    out = []
    for stage in dict.fromkeys(r["stage"] for r in recs):
        rs = [r for r in recs if r["stage"] == stage]
        dts = [b["time"] - a["time"] for a, b in zip(rs, rs[1:])][skip:]
        if not dts:
            continue
        kept = rs[skip + 1 :] or rs
        out.append(
            {
                "run": str(path),
                "stage": stage,
                "steps": len(rs),
                "s_per_step": round(statistics.median(dts), 3),
                "timed_steps": len(dts),
                "samples_per_s": round(statistics.median(r["samples_per_s"] for r in kept), 1),
                "target_tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in kept)),
                "peak_cuda_mb": max((r.get("peak_cuda_mb") or 0) for r in rs) or None,
                "peak_rss_mb": round(max(r.get("peak_rss_mb") or 0 for r in rs)),
                "last_loss": round(rs[-1]["loss"], 4),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", nargs="+", type=Path, help="metrics.jsonl files of training runs")
    p.add_argument("--skip", type=int, default=5, help="first steps of each stage left out (default 5)")
    p.add_argument("--out", type=Path, help="also write the rows here as JSON")
    a = p.parse_args(argv)
    rows = [row for m in a.metrics for row in stage_speed(m, a.skip)]
    for r in rows:
        mem = f"peak CUDA {r['peak_cuda_mb']:.0f} MB" if r["peak_cuda_mb"] else f"peak RSS {r['peak_rss_mb']} MB"
        print(
            f"{r['run']} {r['stage']}: {r['s_per_step']:.3f} s/step (median of {r['timed_steps']}), "
            f"{r['samples_per_s']} samples/s, {r['target_tokens_per_s']} target tokens/s, {mem}"
        )
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
