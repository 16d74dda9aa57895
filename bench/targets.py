"""Issue 18's targets from the runs of `make default-model-eval` (both test splits), one table.

    python bench/targets.py runs/eval-v2 --data data/synth [--json OUT]

Reads EVAL/synth-* (in-source split, --data) and EVAL/heldout-synth-* (held-out-source split,
--data/heldout): instrument accuracy, AQA by question kind (the manifests name each question's
kind), the count question under each of its phrasings (language.TEMPLATES["count"]; the target
holds for the worst one), 4-shot minus 0-shot, CIDEr-D, dialogue follow-ups. With --voice PREFIX, also
EVAL/voice-test and EVAL/voice-heldout: male/female and language asked of every one-voice clip
(bench/voice_questions.py wrote PREFIX-test and PREFIX-heldout), ~80 questions a row instead of 12-16.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from audioflamingo.eval.metrics import normalize

# (row, target, how it is read)
TARGETS = [
    ("instruments, 12-way", 0.80, "instrument"),
    ("is anyone speaking", 0.95, "kind:speaking"),
    ("male/female", 0.90, "kind:gender"),
    ("language", 0.70, "kind:language"),
    ("male/female, every one-voice clip", 0.90, "voice:gender"),
    ("language, every one-voice clip", 0.70, "voice:language"),
    ("first sound", 0.75, "kind:first"),
    ("last sound", 0.75, "kind:last"),
    ("what comes after X", 0.75, "kind:after"),
    ("how many, worst phrasing", 0.85, "count-worst"),
    ("4-shot minus 0-shot (points)", 0.20, "fewshot-gain"),
    ("captions, CIDEr-D", 1.0, "cider"),
    ("dialogue follow-ups", 0.75, "dialogue"),
    ("AQA, all kinds", None, "kind:all"),
]


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["metrics"]


def _aqa(run: Path, manifest: Path) -> tuple[dict, dict]:
    from audioflamingo.data.synth.language import TEMPLATES

    recs = {}
    for line in manifest.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            recs[r["id"]] = r
    kinds: dict[str, list[int]] = defaultdict(list)
    phrasing: dict[str, list[int]] = defaultdict(list)
    for line in (run / "predictions.jsonl").read_text().splitlines():
        p = json.loads(line)
        r = recs[p["id"]]
        ok = int(normalize(p["prediction"]) in {normalize(g) for g in p["references"]})
        kinds[r["question"]].append(ok)
        kinds["all"].append(ok)
        if r["question"] == "count":
            phrasing[r["instruction"] if r["instruction"] in TEMPLATES["count"] else "other"].append(ok)
    acc = {k: (sum(v) / len(v), len(v)) for k, v in kinds.items()}
    return acc, {k: (sum(v) / len(v), len(v)) for k, v in phrasing.items()}


def split_values(eval_dir: Path, prefix: str, data: Path, voice: Path | None = None) -> dict:
    out: dict = {}
    if voice is not None:
        split = "heldout" if prefix else "test"
        run = eval_dir / f"voice-{split}"
        if (run / "predictions.jsonl").is_file():
            kinds, _ = _aqa(run, Path(f"{voice}-{split}") / "eval" / "aqa.jsonl")
            out.update({f"voice:{k}": v for k, v in kinds.items() if k != "all"})
    ins = eval_dir / f"{prefix}synth-instrument"
    if (ins / "metrics.json").is_file():
        out["instrument"] = (_metrics(ins)["accuracy"], None)
    aqa = eval_dir / f"{prefix}synth-aqa"
    if (aqa / "predictions.jsonl").is_file():
        kinds, phrasings = _aqa(aqa, data / "eval" / "aqa.jsonl")
        out.update({f"kind:{k}": v for k, v in kinds.items()})
        if phrasings:
            worst = min(phrasings.values())
            out["count-worst"] = worst
            out["count-phrasings"] = phrasings
    f0, f4 = eval_dir / f"{prefix}synth-fewshot-0", eval_dir / f"{prefix}synth-fewshot-4"
    if (f0 / "metrics.json").is_file() and (f4 / "metrics.json").is_file():
        a0, a4 = _metrics(f0)["accuracy"], _metrics(f4)["accuracy"]
        out["fewshot-gain"] = (a4 - a0, f"{a0:.1%} -> {a4:.1%}")
    cap = eval_dir / f"{prefix}synth-caption"
    if (cap / "metrics.json").is_file():
        out["cider"] = (_metrics(cap)["CIDEr-D"], None)
    dia = eval_dir / f"{prefix}synth-dialogue"
    if (dia / "metrics.json").is_file():
        out["dialogue"] = (_metrics(dia)["accuracy"], None)
    return out


def _cell(v, key: str = "") -> str:
    if v is None:
        return "-"
    value, extra = v
    if key == "cider":
        return f"{value:.3f}"
    if isinstance(extra, str) and "->" in extra:  # a gain in points
        return f"{100 * value:+.1f} pts ({extra})"
    text = f"{value:.3f}" if isinstance(value, float) and value > 1.0 else f"{value:.1%}"
    if isinstance(extra, int):
        return f"{text} (n {extra})"
    return f"{text} ({extra})" if extra else text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_dir")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--json")
    ap.add_argument("--compare", metavar="EVAL_DIR", help="another model's eval folder: its two columns too")
    ap.add_argument("--voice", metavar="PREFIX", help="bench/voice_questions.py's output prefix (runs/voice)")
    args = ap.parse_args()
    data = Path(args.data)
    voice = Path(args.voice) if args.voice else None

    def both(ev: Path) -> dict:
        return {
            "in-source": split_values(ev, "", data, voice),
            "held-out-source": split_values(ev, "heldout-", data / "heldout", voice),
        }

    splits = both(Path(args.eval_dir))
    other = both(Path(args.compare)) if args.compare else {}
    head = "| target | goal | in-source | held-out-source | met (held-out) |"
    if other:
        name = Path(args.compare).name
        head += f" {name}: in-source | {name}: held-out-source |"
    print(head + "\n" + "|---" * (head.count("|") - 1) + "|")
    for row, goal, key in TARGETS:
        cells = [_cell(splits[s].get(key), key) for s in splits]
        held = splits["held-out-source"].get(key)
        met = "-" if goal is None or held is None else ("yes" if held[0] >= goal else "no")
        g = "-" if goal is None else (f">= {goal:.1f}" if key == "cider" else f">= {goal:.0%}")
        g = f">= +{100 * goal:.0f} pts" if key == "fewshot-gain" else g
        extra = "".join(f" {_cell(other[s].get(key), key)} |" for s in other)
        print(f"| {row} | {g} | {cells[0]} | {cells[1]} | {met} |{extra}")
    for s, vals in splits.items():
        if "count-phrasings" in vals:
            parts = ", ".join(f"{q!r} {a:.0%} (n {n})" for q, (a, n) in sorted(vals["count-phrasings"].items()))
            print(f"\nhow many, by phrasing, {s}: {parts}")
    if args.json:
        Path(args.json).write_text(json.dumps(splits, indent=1, default=list))


if __name__ == "__main__":
    main()
