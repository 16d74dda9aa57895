"""Training throughput and peak memory, 1 vs N CPU processes, same global batch, replicated (DDP)
or sharded (FSDP2).

Small config: the tiny preset with a 4-layer, 256-d Qwen2 LM (--hidden, --layers change it), SFT
stage (LM + xattn + transformation trained), toy clips of 1.2 s. Each process count runs
`audioflamingo train` through its CLI; 1 process gets all cores as threads, N processes one core's
share each (OMP_NUM_THREADS). N > 1 runs once per --parallel mode; peak RSS is reported per rank.

    python bench/train.py --procs 1,2 --steps 40 --out bench/results/train-cpu.json
    python bench/train.py --procs 1,2 --parallel ddp,fsdp --hidden 768 --layers 8 --steps 8 \
        --out bench/results/train-cpu-fsdp.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from audioflamingo.data.toy import write_toy


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--global-batch", type=int, default=16)
    ap.add_argument("--micro", type=int, default=8)
    ap.add_argument("--parallel", default="ddp", help="comma-separated modes for N > 1: ddp, fsdp")
    ap.add_argument("--hidden", type=int, default=256, help="LM width (heads of 32 dims)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--activation-checkpointing", action="store_true")
    ap.add_argument("--write-toy", metavar="DIR", help="only write the toy dataset to DIR and exit")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.write_toy:
        print(write_toy(Path(args.write_toy), n=64))
        return
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="af-train-bench-"))
    manifest = write_toy(work / "toy", n=64)
    results = {"cores": cores, "steps": args.steps, "global_batch": args.global_batch, "runs": []}
    modes = args.parallel.split(",")
    runs = [(n, mode) for n in [int(x) for x in args.procs.split(",")] for mode in (modes if n > 1 else ["ddp"])]
    for n, mode in runs:
        accum = args.global_batch // (args.micro * n)
        name = f"run{n}-{mode}"
        recipe = {
            "model": {
                "init": "tiny",
                "lm_overrides": {
                    "hidden_size": args.hidden,
                    "intermediate_size": 4 * args.hidden,
                    "num_hidden_layers": args.layers,
                    "num_attention_heads": args.hidden // 32,
                    "num_key_value_heads": args.hidden // 64,
                },
            },
            "output_dir": str(work / name),
            "seed": 0,
            "train": {
                "micro_batch_size": args.micro,
                "grad_accum": accum,
                "max_tokens": 256,
                "save_every": 0,
                "eval_every": 0,
                "parallel": mode,
                "activation_checkpointing": args.activation_checkpointing,
            },
            "stages": [
                {
                    "name": "sft",
                    "kind": "sft",
                    "steps": args.steps,
                    "lr": 3e-4,
                    "schedule": "constant",
                    "datasets": [{"manifest": str(manifest)}],
                }
            ],
        }
        rp = work / f"{name}.yaml"
        rp.write_text(yaml.safe_dump(recipe))
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // n))}
        subprocess.run(
            [sys.executable, "-m", "audioflamingo", "train", str(rp), "--nproc", str(n), "--no-progress"],
            env=env,
            check=True,
            capture_output=True,
        )
        recs = [json.loads(l) for l in (work / name / "metrics.jsonl").read_text().splitlines()]
        steady = [r for r in recs if "loss" in r and r["step"] > 5]  # first steps pay for encoding the clips
        row = {
            "processes": n,
            "parallel": mode if n > 1 else "-",
            "threads_per_process": max(1, cores // n),
            "grad_accum": accum,
            "samples_per_s": statistics.median(r["samples_per_s"] for r in steady),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
            "peak_rss_mb_rank0": max(r["peak_rss_mb"] for r in recs if "peak_rss_mb" in r),
            "peak_rss_mb_per_rank": recs[-1].get("peak_rss_mb_per_rank"),
            "final_loss": recs[-1]["loss"],
        }
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
