"""Linear probes: which attributes of a corpus event can be read off the audio tower's tokens?

For every event of `data synth`'s timelines (speech language and gender, instrument tempo and register,
chirp direction, beep length, noise colour, ticking tempo) the probe takes the 1 s windows the event
covers (at least half a window, else its best-covered one), averages their encoder tokens
(tokens_per_window x dim, flattened, so the order within a window is kept) and fits a multinomial
logistic regression on the train split; it reports accuracy on the held-out test split. The same
probe on the same windows' log-mel statistics (per-band mean and std over time) is the baseline: an
attribute the log-mel probe reads but the tower probe does not is lost in the tower, which is what
bounds the language model's answers about it.

--positions adds a probe for time: from one token per window, which window of its clip it is (0-9),
on the tower's tokens and on the transformation layers' outputs (what the LM's cross-attention
reads); 500 random training clips fit it, the test clips score it.

    python bench/encoder_probe.py --model audioflamingo/assets/default-model --data data/synth \\
        --out bench/results/encoder_probe_default.json
"""
from __future__ import annotations

import argparse
import json
import platform
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

ATTRS = [("speech", "language"), ("speech", "gender"), ("instrument", "tempo"), ("instrument", "pitch"),
         ("chirp", "direction"), ("beep", "length"), ("beep", "pitch"), ("noise", "colour"), ("ticking", "tempo")]


def event_windows(start: float, end: float, n_windows: int, win: float = 1.0) -> list[int]:
    cover = [max(0.0, min(end, (i + 1) * win) - max(start, i * win)) for i in range(n_windows)]
    chosen = [i for i, c in enumerate(cover) if c >= 0.5 * win]
    return chosen or [int(np.argmax(cover))]


def features(model, scenes: list[dict], root: Path) -> dict[str, list]:
    from audioflamingo.audio.io import load_audio
    from audioflamingo.audio.windows import make_windows

    cfg = model.config.window
    out = defaultdict(list)  # (kind, attr) -> [(split, value, tower_feat, mel_feat)]
    with torch.no_grad():
        for i, sc in enumerate(scenes):
            wave = load_audio(root / sc["audio"], cfg.sample_rate)
            w = torch.as_tensor(make_windows(wave, cfg).frames)
            tower = model.encoder(w).float()                       # (windows, tokens, dim)
            mel = model.encoder.log_mel(w).float()                 # (windows, mels, frames)
            for ev in sc["events"]:
                idx = event_windows(ev["start"], ev["end"], tower.shape[0])
                t = tower[idx].mean(0).flatten().numpy()
                m = mel[idx].transpose(0, 1).flatten(1)            # (mels, windows*frames)
                m = torch.cat([m.mean(1), m.std(1)]).numpy()
                for kind, attr in ATTRS:
                    if ev["kind"] == kind and attr in ev["attrs"]:
                        out[(kind, attr)].append((sc["split"], ev["attrs"][attr], t, m))
            if i % 200 == 0:
                print(f"  {i}/{len(scenes)} clips", flush=True)
    return out


def probe(train_x, train_y, test_x, test_y, weight_decay: float = 1e-2) -> float:
    labels = sorted(set(train_y))
    ytr = torch.tensor([labels.index(y) for y in train_y])
    xtr, xte = torch.tensor(np.stack(train_x)), torch.tensor(np.stack(test_x))
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    torch.manual_seed(0)
    lin = torch.nn.Linear(xtr.shape[1], len(labels))
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xtr), ytr) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    pred = lin(xte).argmax(1).tolist()
    return float(np.mean([labels[p] == y for p, y in zip(pred, test_y)]))


def position_probe(model, scenes: list[dict], root: Path) -> dict:
    from audioflamingo.audio.io import load_audio
    from audioflamingo.audio.windows import make_windows

    rng = np.random.default_rng(0)
    train = [s for s in scenes if s["split"] == "train"]
    train = [train[i] for i in rng.permutation(len(train))[:500]]
    test = [s for s in scenes if s["split"] == "test"]

    def tokens(split):
        enc_x, tr_x, y = [], [], []
        with torch.no_grad():
            for sc in split:
                w = torch.as_tensor(make_windows(load_audio(root / sc["audio"], model.config.window.sample_rate),
                                                 model.config.window).frames)
                enc = model.encoder(w).float()
                state = model.audio_state([[enc]])
                out = state.audio[0][state.key_valid[0]].float()
                per = enc.shape[1]
                for i in range(enc.shape[0]):  # the first token of each window
                    enc_x.append(enc[i, 0].numpy())
                    tr_x.append(out[i * per].numpy())
                    y.append(str(i))
        return enc_x, tr_x, y

    a, b = tokens(train), tokens(test)
    majority = Counter(a[2]).most_common(1)[0][0]
    return {"train tokens": len(a[2]), "test tokens": len(b[2]),
            "majority": round(float(np.mean([y == majority for y in b[2]])), 3),
            "tower probe": round(probe(a[0], a[2], b[0], b[2]), 3),
            "transformation probe": round(probe(a[1], a[2], b[1], b[2]), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="audioflamingo/assets/default-model")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--positions", action="store_true", help="also probe the window index (time)")
    ap.add_argument("--out")
    args = ap.parse_args()
    from audioflamingo.model.flamingo import AudioFlamingo

    torch.set_num_threads(2)
    model, _ = AudioFlamingo.from_pretrained(args.model, lite=True)
    model.eval()
    root = Path(args.data)
    scenes = [json.loads(line) for line in open(root / "scenes.jsonl")]
    scenes = [s for s in scenes if s["split"] in ("train", "test")]
    feats = features(model, scenes, root)
    rows = {}
    for (kind, attr), items in feats.items():
        tr = [x for x in items if x[0] == "train"]
        te = [x for x in items if x[0] == "test"]
        majority = Counter(x[1] for x in tr).most_common(1)[0][0]
        rows[f"{kind} {attr}"] = {
            "classes": len({x[1] for x in tr}), "train": len(tr), "test": len(te),
            "majority": round(float(np.mean([x[1] == majority for x in te])), 3),
            "log-mel probe": round(probe([x[3] for x in tr], [x[1] for x in tr], [x[3] for x in te], [x[1] for x in te]), 3),
            "tower probe": round(probe([x[2] for x in tr], [x[1] for x in tr], [x[2] for x in te], [x[1] for x in te]), 3),
        }
    print(f"{'attribute':22s} {'classes':>7s} {'test':>5s} {'majority':>8s} {'log-mel':>8s} {'tower':>6s}")
    for name, r in rows.items():
        print(f"{name:22s} {r['classes']:7d} {r['test']:5d} {r['majority']:8.3f} {r['log-mel probe']:8.3f} "
              f"{r['tower probe']:6.3f}")
    result = {"model": args.model, "data": args.data, "machine": platform.processor() or platform.machine(),
              "probes": rows}
    if args.positions:
        result["window index"] = pos = position_probe(model, scenes, root)
        print(f"window index (0-9) of a token: majority {pos['majority']:.3f}, tower {pos['tower probe']:.3f}, "
              f"transformation layers {pos['transformation probe']:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
