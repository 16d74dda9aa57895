"""A toy dataset: tones at known pitches with exact captions (tests, benchmarks, the example recipe)."""

import json
from pathlib import Path

import numpy as np
import soundfile as sf

PITCHES = {
    220: "a low hum",
    330: "a soft low tone",
    440: "a clear middle tone",
    550: "a bright tone",
    660: "a high beep",
    880: "a very high whistle",
    990: "a piercing squeal",
    1320: "a shrill chirp",
}


def write_toy(root: Path, n: int = 8, seconds: float = 1.2, sr: int = 16000, unreadable: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "clips").mkdir(exist_ok=True)
    recs = []
    items = list(PITCHES.items())
    for i in range(n):
        f, cap = items[i % len(items)]
        t = np.arange(int(sr * seconds)) / sr
        x = 0.5 * np.sin(2 * np.pi * f * t) * (1 + 0.1 * (i // len(items)))
        name = f"clips/tone{i:03d}.wav"
        sf.write(root / name, x.astype(np.float32), sr)
        recs.append({"id": f"t{i}", "audio": name, "task": "caption", "output": cap})
    for j in range(unreadable):
        name = f"clips/broken{j}.wav"
        (root / name).write_text("not audio")
        recs.append({"id": f"b{j}", "audio": name, "task": "caption", "output": "broken"})
    with (root / "train.jsonl").open("w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return root / "train.jsonl"


def write_recipe(
    path: Path,
    manifest: Path,
    out: Path,
    steps: int,
    kind: str = "sft",
    lr: float = 3e-3,
    micro: int = 4,
    accum: int = 1,
    save_every: int = 0,
    extra_train: dict | None = None,
    icl_shots: int = 0,
) -> Path:
    import yaml

    train = {
        "micro_batch_size": micro,
        "grad_accum": accum,
        "max_tokens": 256,
        "save_every": save_every,
        "keep_last": 2,
        "eval_every": 0,
        "clip_grad": 1.0,
        **(extra_train or {}),
    }
    recipe = {
        "model": {"init": "tiny"},
        "output_dir": str(out),
        "seed": 0,
        "train": train,
        "stages": [
            {
                "name": kind,
                "kind": kind,
                "steps": steps,
                "lr": lr,
                "warmup_steps": 2,
                "schedule": "constant",
                "epoch_size": 16,
                "datasets": [{"manifest": str(manifest), "weight": 1.0, "icl_shots": icl_shots}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def losses(run_dir: Path) -> dict[int, float]:
    """step -> loss, the last record of each step winning (a resumed run repeats some steps)."""
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            out[r["step"]] = r["loss"]
    return out
