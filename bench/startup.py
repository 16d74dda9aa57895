"""Start-up: wall time of the README's main command, `audioflamingo demo` (a fresh process that imports
everything, loads the bundled default model, captions the bundled clip and answers a question), with
the lean runtime (default) and with `--lm-impl transformers`. Also the import cost alone.

    python bench/startup.py --runs 5 --out bench/results/startup-cpu.json
    python bench/startup.py --runs 5 --model runs/default-v2/final   # another model directory

Run it on an otherwise idle machine: other processes on the same cores inflate every number.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", help="a model directory to time instead of the bundled one")
    ap.add_argument("--out")
    args = ap.parse_args()
    py = sys.executable
    model = ["--model", args.model] if args.model else []
    cases = {
        "demo (lean runtime, default)": [py, "-m", "audioflamingo", "demo", *model],
        "demo --lm-impl transformers": [py, "-m", "audioflamingo", "demo", "--lm-impl", "transformers", *model],
        "import torch only": [py, "-c", "import torch"],
        "import torch + transformers Qwen2": [py, "-c", "import torch, transformers.models.qwen2.modeling_qwen2"],
    }
    wall(cases["demo (lean runtime, default)"])  # warm the file cache once
    results = {}
    for name, cmd in cases.items():
        times = [wall(cmd) for _ in range(args.runs)]
        results[name] = {
            "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3),
            "max_s": round(max(times), 3),
            "runs": [round(t, 3) for t in times],
        }
        print(
            f"{name:40s} median {results[name]['median_s']:.2f} s  (min {results[name]['min_s']:.2f}, "
            f"max {results[name]['max_s']:.2f})"
        )
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "python": platform.python_version(),
        "model": args.model or "bundled",
        "results": results,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
