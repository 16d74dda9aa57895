"""Accuracy of an `audioflamingo eval synth-*` run per source of its clips (the corpus' "sources"
tags: sample sets, voices, collections), and for AQA per question kind too.

    python bench/by_source.py runs/default-eval/heldout-synth-instrument --manifest data/synth/heldout/eval/instrument.jsonl
    python bench/by_source.py runs/default-eval/heldout-synth-aqa --manifest data/synth/heldout/eval/aqa.jsonl --kinds

A clip of several sounds counts once for each of its sources; "procedural" sounds are left out of
the tags.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path


def norm(s: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", s.lower()).strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="an eval output folder holding predictions.jsonl")
    ap.add_argument("--manifest", required=True, help="the manifest the run evaluated")
    ap.add_argument("--kinds", action="store_true", help="also per question kind (AQA manifests)")
    ap.add_argument("--family", action="store_true", help="group voices by engine (flite/slt -> flite)")
    args = ap.parse_args()
    rows = {r["id"]: r for r in map(json.loads, open(args.manifest))}
    hits, totals = defaultdict(int), defaultdict(int)
    for p in map(json.loads, open(Path(args.run) / "predictions.jsonl")):
        r = rows[p["id"]]
        ok = norm(p["prediction"]) in {norm(x) for x in p["references"]}
        keys = [s.split("/")[0] if args.family else s for s in r.get("sources", []) if s != "procedural"] or [
            "procedural only"
        ]
        if args.kinds:
            keys = keys + [f"kind:{r.get('question', '?')}"]
        for k in set(keys):
            totals[k] += 1
            hits[k] += ok
        totals["all"] += 1
        hits["all"] += ok
    print(
        json.dumps(
            {
                k: {"accuracy": round(hits[k] / totals[k], 3), "n": totals[k]}
                for k in sorted(totals, key=lambda k: (-totals[k], k))
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
