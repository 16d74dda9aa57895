"""AQA accuracy of an `audioflamingo eval synth-aqa` run, by question type (the model card's table).

python bench/aqa_by_type.py runs/default-eval/synth-aqa --data data/synth
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

# Corpora from 2026-11-29 on name each question's kind ("question"); older ones are typed by these
# patterns of their fixed phrasings (first match wins).
TYPES = [
    ("count", r"^How many"),
    ("first sound", r"hear first"),
    ("last sound", r"last sound"),
    ("what comes after X", r"comes after"),
    ("which instruments", r"Which instruments"),
    ("is anyone speaking", r"anyone speaking"),
    ("male/female", r"male or female"),
    ("language", r"language"),
    ("high/low", r"high or low"),
    ("fast/slow", r"fast or slow"),
    ("short/long beep", r"short or long"),
    ("rising/falling chirp", r"rising or falling"),
    ("noise colour", r"colour of noise"),
    ("which is louder", r"louder"),
    ("begins with silence", r"begin with silence"),
    ("duration", r"How long"),
]

KINDS = {
    "count",
    "first",
    "last",
    "instruments",
    "speaking",
    "silence",
    "duration",
    "pitch",
    "tempo",
    "length",
    "direction",
    "colour",
    "gender",
    "language",
    "after",
    "louder",
}


def norm(s: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", s.lower()).strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="an eval output folder holding predictions.jsonl")
    ap.add_argument("--data", default="data/synth")
    args = ap.parse_args()
    questions = {}
    for line in open(Path(args.data) / "eval" / "aqa.jsonl"):
        r = json.loads(line)
        questions[r["id"]] = r.get("question") or r["instruction"]
    hits, totals = defaultdict(int), defaultdict(int)
    for line in open(Path(args.run) / "predictions.jsonl"):
        p = json.loads(line)
        q = questions[p["id"]]
        kind = q if q in KINDS else next((name for name, pat in TYPES if re.search(pat, q)), "other")
        totals[kind] += 1
        hits[kind] += norm(p["prediction"]) in {norm(x) for x in p["references"]}
    out = {
        k: {"accuracy": round(hits[k] / totals[k], 3), "n": totals[k]} for k in sorted(totals, key=lambda k: -totals[k])
    }
    out["all"] = {"accuracy": round(sum(hits.values()) / sum(totals.values()), 4), "n": sum(totals.values())}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
