"""AF-CLAP retrieval quality on a manifest split: R@1 / R@5 audio->text and text->audio, and
zero-shot classification accuracy over the split's distinct captions (or its `options`).

    python bench/clap_retrieval.py --model runs/clap/final --manifest data/test.jsonl --out bench/results/clap.json

Each clip's positive is its own `output`; clips sharing a caption count each other as correct.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def recall_at(sim: torch.Tensor, correct: torch.Tensor, k: int) -> float:
    """sim (Q, C) scores, correct (Q, C) bool: share of queries with a correct item in the top k."""
    top = sim.topk(min(k, sim.shape[1]), dim=1).indices
    return float(correct.gather(1, top).any(dim=1).float().mean())


def main():
    from audioflamingo.audio.io import load_audio
    from audioflamingo.clap.model import AFClap
    from audioflamingo.data.manifest import load_manifest

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out")
    args = ap.parse_args()
    model = AFClap.from_pretrained(args.model)
    recs = load_manifest(args.manifest)
    texts = sorted({r.output for r in recs})
    with torch.no_grad():
        a = torch.cat(
            [
                model.embed_waves([load_audio(r.audio, model.cfg.window.sample_rate, None, r.offset, r.duration)])
                for r in recs
            ]
        )
        t = model.embed_texts(texts)
    sim = a @ t.t()
    correct = torch.tensor([[r.output == x for x in texts] for r in recs])
    res = {
        "clips": len(recs),
        "texts": len(texts),
        "audio_to_text": {"R@1": recall_at(sim, correct, 1), "R@5": recall_at(sim, correct, 5)},
        "text_to_audio": {"R@1": recall_at(sim.t(), correct.t(), 1), "R@5": recall_at(sim.t(), correct.t(), 5)},
    }
    if all(r.options for r in recs):
        ok = 0
        for r, v in zip(recs, a):
            opt = model.embed_texts(r.options)
            ok += r.options[int((opt @ v).argmax())] == r.output
        res["zero_shot_accuracy"] = ok / len(recs)
    else:
        res["zero_shot_accuracy"] = float((sim.argmax(1) == correct.float().argmax(1)).float().mean())
    print(json.dumps(res, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
