"""Questions outside the kinds a model was trained on, for its model card (issue 18).

The rule is fixed, so nothing is picked: the first N clips of a caption manifest (file order), the
i-th clip asked QUESTIONS[i mod len]; greedy decoding. Prints a markdown table (clip, its reference
caption, question, answer) and writes JSON with --out.

    python bench/open_questions.py --model runs/default-v2/final \
        --manifest data/synth/heldout/eval/caption.jsonl --out bench/results/open_questions_v2.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Kinds the corpus never asks (language.TEMPLATES asks counts, order, speech, voice, language, pitch,
# tempo, lengths, loudness, silence, duration): where, why, mood, use, what could make it.
QUESTIONS = [
    "Where could this recording have been made?",
    "What mood does this recording convey?",
    "What could be producing these sounds?",
    "Would this be suitable as a ringtone? Why?",
    "Describe the recording to someone who cannot hear it.",
    "What might happen next in this scene?",
    "Is this recording indoors or outdoors?",
    "What is the most prominent sound, and how would you describe it?",
    "Does this sound natural or synthetic?",
    "What would be a good title for this recording?",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory (default: the bundled model)")
    ap.add_argument("--manifest", required=True, help="a caption manifest (jsonl with audio and output)")
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--out")
    args = ap.parse_args()
    from audioflamingo import AudioFlamingoPipeline

    af = AudioFlamingoPipeline.load(args.model)
    man = Path(args.manifest)
    rows = [json.loads(line) for line in man.read_text().splitlines() if line.strip()][: args.n]
    out = []
    print("| clip | reference caption | question | answer |\n|---|---|---|---|")
    for i, r in enumerate(rows):
        q = QUESTIONS[i % len(QUESTIONS)]
        answer = af.ask(str((man.parent / r["audio"]).resolve()), q, max_new_tokens=args.max_new_tokens)
        out.append({"clip": r["source"], "reference": r["output"], "question": q, "answer": answer})
        print(f"| {r['source']} | {r['output']} | {q} | {' '.join(answer.split())} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "manifest": args.manifest, "items": out}, indent=1))


if __name__ == "__main__":
    main()
