"""One training step of a model directory on CPU (frozen LM, new layers trained), on a synthetic
micro-batch: logits at every position vs only where a row has a target (`TrainStep`), fp32 vs bf16
autocast. Prints seconds per step (median of --steps after one warm-up) and the loss (equal across
the first two).

    OMP_NUM_THREADS=2 python bench/train_step_cpu.py runs/default-v2-init --batch 8 --tokens 80 --targets 12
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=80)
    ap.add_argument("--targets", type=int, default=12, help="target tokens at the end of each row")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.train.stages import set_trainable
    from audioflamingo.train.step import TrainStep

    torch.manual_seed(0)
    model = AudioFlamingo.from_pretrained(args.model)
    set_trainable(model, "pretrain")
    model.train()
    b, n = args.batch, args.tokens
    ids = torch.randint(10, 40000, (b, n))
    ids[:, 5] = model.special.audio
    mask = torch.ones(b, n, dtype=torch.long)
    labels = torch.full((b, n), -100)
    labels[:, -args.targets :] = ids[:, -args.targets :]
    c = model.config.encoder
    clips = [[torch.randn(model.config.window.max_windows, c.tokens_per_window, c.dim)] for _ in range(b)]
    step = TrainStep(model)

    def every_position():
        logits = model(ids, mask, audio=model.audio_state(clips), use_cache=False).logits
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), reduction="sum")

    cases = {
        "every position, fp32": (every_position, False),
        "target positions, fp32": (lambda: step(ids, mask, labels, clips), False),
        "target positions, bf16 autocast": (lambda: step(ids, mask, labels, clips), True),
    }
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "shape": [b, n, args.targets],
    }
    for name, (fn, bf16) in cases.items():
        times, loss = [], 0.0
        for _ in range(args.steps + 1):
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                value = fn()
            value.backward()
            model.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t)
            loss = float(value.detach())
        out[name] = {"median_s": round(statistics.median(times[1:]), 3), "loss": round(loss, 4)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
