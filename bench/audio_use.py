"""Does a model use its audio? Teacher-forced loss on validation AQA answers with each item's own
clip vs another item's clip (the same questions and answers), and the spread of the transformation
layers' output across clips. Equal losses mean the answers do not depend on the audio.

    python bench/audio_use.py runs/default-v2/checkpoints/step-00000300 --manifest data/synth/val_aqa.jsonl

Found on 2026-12-04: a v2 run whose transformation layers trained at the stage's rate turned every
clip into one vector within 300 steps (spread 0.40 -> 0.0003; losses equal to 6 digits).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--manifest", default="data/synth/val_aqa.jsonl")
    ap.add_argument("-n", type=int, default=48)
    ap.add_argument("--shift", type=int, default=7, help="item i gets the clip of item i + shift")
    args = ap.parse_args()
    from audioflamingo.audio.io import load_audio
    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.text.lite_tokenizer import load_tokenizer
    from audioflamingo.text.templates import IGNORE, TASK_DESCRIPTIONS, Example, render_single, tokenize
    from audioflamingo.train.step import TrainStep

    tok = load_tokenizer(args.model)
    model = AudioFlamingo.from_pretrained(args.model, tokenizer=tok)
    man = Path(args.manifest)
    rows = [json.loads(line) for line in man.read_text().splitlines() if line.strip()][: args.n]
    w = model.config.window
    feats = [
        model.encode_clips([load_audio(str(man.parent / r["audio"]), w.sample_rate, w.max_duration_seconds)])[0]
        for r in rows
    ]
    step = TrainStep(model)

    def loss(shift: int) -> float:
        total, n = 0.0, 0
        for i in range(0, len(rows), 8):
            batch = rows[i : i + 8]
            toks = [
                tokenize(render_single(TASK_DESCRIPTIONS["aqa"], Example(r["instruction"], r["output"]), tok), tok)
                for r in batch
            ]
            width = max(len(t[0]) for t in toks)
            ids = torch.full((len(batch), width), model.special.pad)
            labels = torch.full((len(batch), width), IGNORE)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for j, (a, lab) in enumerate(toks):
                ids[j, : len(a)], labels[j, : len(lab)], mask[j, : len(a)] = torch.tensor(a), torch.tensor(lab), 1
            clips = [[feats[(i + j + shift) % len(rows)]] for j in range(len(batch))]
            with torch.no_grad():
                total += float(step(ids, mask, labels, clips))
            n += int((labels[:, 1:] != IGNORE).sum())
        return total / n

    with torch.no_grad():
        audio = model.audio_state([[f] for f in feats[:8]]).audio
    t = model.config.encoder.tokens_per_window
    res = {
        "model": args.model,
        "items": len(rows),
        "loss_own_audio": round(loss(0), 5),
        "loss_other_audio": round(loss(args.shift), 5),
        "transformation_spread_across_clips": round(float(audio[:, : 2 * t].std(0).mean()), 5),
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
