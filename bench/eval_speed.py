"""Evaluation speed: caption-metric time for N captions x 5 references (Java start-up included, one
call of `caption_metrics`, i.e. PTB tokenisation, BLEU, METEOR, ROUGE-L, CIDEr-D, SPICE check), and
evaluation throughput (clips/s) of a model on a synthetic classification and captioning set.

    python bench/eval_speed.py --captions 5000 --out bench/results/eval-cpu.json
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

WORDS = (
    "a dog cat bird man woman child car engine train bell rain wind water door music guitar piano "
    "barks meows sings speaks rings falls blows runs opens plays loudly softly nearby far away while "
    "in the park street room kitchen distance background then and with several"
).split()


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--captions", type=int, default=5000)
    ap.add_argument("--model", help="model directory for the throughput part (default: a fresh tiny model)")
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--out")
    args = ap.parse_args()
    from audioflamingo.eval.metrics import caption_metrics

    rng = random.Random(0)
    preds = {str(i): sentence(rng) for i in range(args.captions)}
    refs = {i: [sentence(rng) for _ in range(5)] for i in preds}
    t = time.perf_counter()
    m = caption_metrics(preds, refs)
    metric_s = time.perf_counter() - t
    print(f"caption metrics for {args.captions} x 5: {metric_s:.1f} s (CIDEr-D {m['CIDEr-D']:.4f})", flush=True)

    import numpy as np
    import soundfile as sf

    from audioflamingo.eval.runner import run_eval

    work = Path(tempfile.mkdtemp(prefix="af-eval-bench-"))
    model = args.model
    if model is None:
        from audioflamingo.presets import build

        mdl, tok = build("tiny")
        mdl.save_pretrained(work / "model", tok)
        model = work / "model"
    root = work / "gtzan" / "genres"
    cap = work / "clotho"
    (cap / "evaluation").mkdir(parents=True)
    rows = ["file_name,caption_1,caption_2,caption_3,caption_4,caption_5"]
    for i in range(args.clips):
        g = ["blues", "jazz", "rock", "pop"][i % 4]
        (root / g).mkdir(parents=True, exist_ok=True)
        x = (0.3 * np.random.default_rng(i).standard_normal(16000 * 5)).astype(np.float32)
        sf.write(root / g / f"{g}.{i:05d}.wav", x, 16000)
        sf.write(cap / "evaluation" / f"c{i}.wav", x, 16000)
        rows.append(f"c{i}.wav," + ",".join(sentence(rng) for _ in range(5)))
    (cap / "clotho_captions_evaluation.csv").write_text("\n".join(rows) + "\n")
    thr = {}
    for bench, data in (("gtzan", work / "gtzan"), ("clotho-v2", cap)):
        t = time.perf_counter()
        res = run_eval(bench, model, data, work / f"run-{bench}", batch_size=8)
        thr[bench] = {"clips": res["items"], "wall_s": time.perf_counter() - t, "clips_per_s": res["clips_per_s"]}
        print(
            f"{bench}: {res['items']} clips of 5 s, {res['clips_per_s']:.2f} clips/s (generation/ranking only); "
            f"{thr[bench]['wall_s']:.1f} s in all",
            flush=True,
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(
                {
                    "captions": args.captions,
                    "metric_s": metric_s,
                    "model": str(args.model or "tiny (random init)"),
                    "throughput": thr,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
