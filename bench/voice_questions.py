"""Male/female and language asked of every speech clip of a test split: the model card's voice rows
measured on ~90 clips per split instead of the 12-16 questions the corpus' AQA set happens to hold.

For each clip of --split in `scenes.jsonl` whose speech events agree on gender and on language (a clip
with two voices that differ has no single answer), one gender and one language question, phrasing and
option order drawn from a per-clip seed with the corpus' own templates (`data/synth/language.py`).
Writes `<out>/eval/aqa.jsonl` (audio paths relative to it), which `audioflamingo eval synth-aqa --data
<out>` scores like the corpus' AQA set; `bench/targets.py` then reads its gender and language rows.

    python bench/voice_questions.py --data data/synth --split heldout --out runs/voice-heldout
    audioflamingo eval synth-aqa --model MODEL --data runs/voice-heldout --out runs/eval-X/voice-heldout
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np


def voice_records(scenes: list[dict], split: str, clips_root: Path, out_dir: Path) -> list[dict]:
    from audioflamingo.data.synth.language import ask

    out = []
    for sc in scenes:
        if sc["split"] != split:
            continue
        speech = [e for e in sc["events"] if e["kind"] == "speech"]
        genders = {e["attrs"]["gender"] for e in speech}
        languages = {e["attrs"]["language"] for e in speech}
        if len(genders) != 1 or len(languages) != 1:
            continue
        seed = int.from_bytes(hashlib.sha256(sc["id"].encode()).digest()[:4], "little")
        rng = np.random.default_rng(seed)
        audio = os.path.relpath(clips_root / sc["audio"], out_dir)
        for kind, answer in (("gender", genders.pop()), ("language", languages.pop())):
            out.append(
                {
                    "audio": audio,
                    "source": sc["id"],
                    "id": f"{sc['id']}/voice-{kind}",
                    "task": "aqa",
                    "instruction": ask(kind, rng),
                    "output": answer,
                    "question": kind,
                }
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/synth", help="corpus root (holds scenes.jsonl)")
    ap.add_argument("--split", required=True, help="test (in-source) or heldout (held-out-source)")
    ap.add_argument("--out", required=True, help="folder to write eval/aqa.jsonl into")
    args = ap.parse_args()
    root = Path(args.data)
    scenes = [json.loads(line) for line in (root / "scenes.jsonl").read_text().splitlines() if line.strip()]
    out_dir = Path(args.out) / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = voice_records(scenes, args.split, root.resolve(), out_dir.resolve())
    if not recs:
        raise SystemExit(f"{root / 'scenes.jsonl'}: no clip of split {args.split!r} with one voice")
    (out_dir / "aqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    print(json.dumps({"split": args.split, "clips": len(recs) // 2, "questions": len(recs), "out": str(out_dir)}))


if __name__ == "__main__":
    main()
