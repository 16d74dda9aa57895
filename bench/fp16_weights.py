"""fp16 LM weights for CPU decoding (audioflamingo/model/fp16_weights.py): what they buy and what they
change, for one model directory.

1. The products of one decode step at the model's LM widths (q/k/v, attention output, gate/up, down,
   output head), batch 1: the fp32 column-major GEMV the lean runtime uses (`lite.pack_columns`)
   against fbgemm's fp16-weight linear, median time per product.
2. The model itself on the lean runtime with fp32 and with fp16 LM weights: greedy captions and
   answers on the first N clips of a manifest (how many are the same), and a 10-s clip captioned
   warm (median of `--runs`).

    python bench/fp16_weights.py runs/default-v2/final --manifest data/synth/heldout/eval/caption.jsonl -n 40
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

QUESTIONS = ("What is the first sound?", "Is anyone speaking?")


def product_seconds(fn, x, reps: int = 15) -> float:
    for _ in range(5):
        fn(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def products(lm_cfg: dict) -> list[dict]:
    """Each product over `num_hidden_layers` distinct weights (one per layer, as a decode step reads
    them: together beyond the caches), median time per product."""
    from audioflamingo.model.fp16_weights import Fp16Linear

    d, ffn, vocab = lm_cfg["hidden_size"], lm_cfg["intermediate_size"], lm_cfg["vocab_size"]
    hd = lm_cfg.get("head_dim") or d // lm_cfg["num_attention_heads"]
    qkv = (lm_cfg["num_attention_heads"] + 2 * lm_cfg["num_key_value_heads"]) * hd
    layers = lm_cfg["num_hidden_layers"]
    rows = []
    for name, (n_in, n_out), copies in (
        ("q/k/v", (d, qkv), layers),
        ("attention output", (lm_cfg["num_attention_heads"] * hd, d), layers),
        ("gate/up", (d, 2 * ffn), layers),
        ("down", (ffn, d), layers),
        ("output head", (d, vocab), 1),
    ):
        ws = [torch.randn(n_out, n_in) * 0.02 for _ in range(copies)]
        cols = [w.t().contiguous() for w in ws]  # the lean runtime's layout: x @ (in, out)
        f16 = [Fp16Linear(w) for w in ws]
        x = torch.randn(1, n_in)
        fp32 = product_seconds(lambda v, cs=cols: [v @ c for c in cs], x) / copies
        fp16 = product_seconds(lambda v, fs=f16: [f(v) for f in fs], x) / copies
        rows.append(
            {
                "product": name,
                "shape": [n_in, n_out],
                "fp32_us": fp32 * 1e6,
                "fp16_us": fp16 * 1e6,
                "speedup": fp32 / fp16,
            }
        )
    return rows


def model_outputs(model_dir: str, clips: list[str], ten_s: str, runs: int, weights: str) -> dict:
    from audioflamingo import AudioFlamingoPipeline

    os.environ["AUDIOFLAMINGO_CPU_LM_WEIGHTS"] = weights
    af = AudioFlamingoPipeline.load(model_dir, lite=True)
    in_use = af.model.lm.fp16_head is not None
    out = list(af.caption(clips))
    for q in QUESTIONS:
        out += list(af.ask(clips, q))
    af.caption(ten_s)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        af.caption(ten_s)
        times.append(time.perf_counter() - t)
    return {"fp16_in_use": in_use, "outputs": out, "caption_10s_median_s": statistics.median(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()
    from caption_warm import ten_second_example  # bench/ is the script's folder

    man = Path(args.manifest)
    rows = [json.loads(line) for line in man.read_text().splitlines() if line.strip()][: args.n]
    clips = [str((man.parent / r["audio"]).resolve()) for r in rows]
    lm_cfg = json.loads((Path(args.model) / "config.json").read_text())["lm"]
    ten_s = ten_second_example()
    a = model_outputs(args.model, clips, ten_s, args.runs, "float32")
    b = model_outputs(args.model, clips, ten_s, args.runs, "float16")
    assert b["fp16_in_use"] and not a["fp16_in_use"], "fp16 weights were not switched as asked"
    res = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "threads": torch.get_num_threads(),
        "model": args.model,
        "products": products(lm_cfg),
        "items": len(a["outputs"]),
        "same_outputs": sum(x == y for x, y in zip(a["outputs"], b["outputs"])),
        "differing": [[x, y] for x, y in zip(a["outputs"], b["outputs"]) if x != y][:10],
        "caption_10s_median_s": {"float32": a["caption_10s_median_s"], "float16": b["caption_10s_median_s"]},
        "load_average": os.getloadavg(),
    }
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
