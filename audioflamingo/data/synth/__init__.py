"""`audioflamingo data synth`: the default model's corpus, reproducible from a seed.

Writes, under OUT:
    clips/<split>/<id>.flac          16 kHz mono mixes
    scenes.jsonl                     every clip's exact timeline (the ground truth)
    {train,val}_{caption,aqa,classify,dialogue}.jsonl   training manifests (caption ones carry CLAP
                                     positives and compositional negatives)
    eval/{caption,aqa,instrument,dialogue,fewshot,fewshot_support}.jsonl   in-source test manifests
                                     (other recordings of the training sources)
    heldout/eval/{caption,aqa,instrument,dialogue,fewshot}.jsonl   held-out-source test manifests:
                                     sample sets, voices and collections never heard in training
                                     (`audioflamingo eval synth-aqa --data OUT/heldout`); its fewshot
                                     queries come from other sample sets than eval/fewshot_support's
    synth.json                       settings, counts, sources, and which recordings went to which split

Every record names the sources its audio came from ("sources": sample sets, voices, collections).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from audioflamingo.data.synth import language as L
from audioflamingo.data.synth.scenes import sample_scene
from audioflamingo.data.synth.sources import (
    BANK_STEPS,
    KNOWN_INSTRUMENTS,
    NOVEL_INSTRUMENTS,
    SR,
    build_bank,
    check_tools,
)

INSTRUMENT_QUESTION = "Which instrument is playing?"
AVERAGE_CLIP_SECONDS = 6.0


def _pool(bank, split):
    pool: dict[str, list] = {}
    for r in bank:
        if r.split == split:
            pool.setdefault(r.kind, []).append(r)
    return pool


def _write(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _scene_records(scene, audio: str, rng, known: list[str], n_questions: int) -> dict[str, list[dict]]:
    base = {"audio": audio, "source": scene.id, "sources": sorted({e.origin for e in scene.events})}
    caps = [L.caption(scene, v) for v in range(L.PHRASINGS)]
    first = int(rng.integers(L.PHRASINGS))
    out = {
        "caption": [
            {
                **base,
                "id": f"{scene.id}/cap",
                "task": "caption",
                "output": caps[first],
                "positives": [c for v, c in enumerate(caps) if v != first],
                "negatives": L.negatives(scene, rng, known),
            }
        ]
    }
    qs = L.questions(scene, rng)  # phrasings drawn from rng, independently of the answers
    pick = rng.permutation(len(qs))[:n_questions]
    out["aqa"] = [
        {
            **base,
            "id": f"{scene.id}/q{k}",
            "task": "aqa",
            "instruction": qs[k][0],
            "output": qs[k][1],
            "question": qs[k][2],
        }
        for k in sorted(pick)
    ]
    # Every question of the timeline (aqa holds n_questions of them): about 2.5x the answers for the
    # same audio, for stages that need more supervision per attribute. Same texts as aqa's.
    out["aqa_all"] = [
        {**base, "id": f"{scene.id}/q{k}", "task": "aqa", "instruction": q, "output": a, "question": kd}
        for k, (q, a, kd) in enumerate(qs)
    ]
    inst = [e for e in scene.events if e.kind == "instrument"]
    out["classify"] = []
    if len(inst) == 1:
        others = [x for x in known if x != inst[0].label]
        k = len(others) if rng.random() < 0.3 else int(rng.integers(3, 6))
        opts = sorted([inst[0].label] + list(rng.choice(others, size=k, replace=False)))
        out["classify"].append(
            {
                **base,
                "id": f"{scene.id}/cls",
                "task": "classify",
                "instruction": INSTRUMENT_QUESTION,
                "output": inst[0].label,
                "options": opts,
            }
        )
    out["dialogue"] = [{**base, "id": f"{scene.id}/dlg", "task": "dialogue", "turns": L.dialogue(scene, rng)}]
    return out


def synthesize(
    out: str | Path,
    seed: int = 0,
    hours: float = 3.0,
    test_scenes: int = 300,
    val_scenes: int = 100,
    progress: bool = True,
    bank: dict | None = None,
) -> dict:
    """bank: build_bank's sizes (phrases_per_instrument, utterances, novel_phrases, prompts) when not
    the defaults (tests build a small one)."""
    import soundfile as sf
    from tqdm import tqdm

    check_tools()
    out = Path(out)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with tqdm(total=BANK_STEPS, desc="sources", unit="source", disable=not progress) as sbar:
        bank = build_bank(rng, **(bank or {}), progress=lambda name: (sbar.set_postfix_str(name), sbar.update(1)))
    known, novel = sorted(KNOWN_INSTRUMENTS), sorted(NOVEL_INSTRUMENTS)
    counts = {
        "train": max(1, int(hours * 3600 / AVERAGE_CLIP_SECONDS)),
        "val": val_scenes,
        "test": test_scenes,
        "heldout": test_scenes,
    }
    manifests: dict[str, list[dict]] = {}
    scenes_out, seconds = [], {}
    heldout_queries = [r for r in bank if r.split == "novel-heldout"]
    bar = tqdm(
        total=sum(counts.values()) + 2 * 12 * len(novel) + len(heldout_queries),
        desc="synth",
        unit="clip",
        disable=not progress,
    )

    def emit(scene, wave, split):
        rel = f"clips/{split}/{scene.id}.flac"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out / rel), wave, SR, format="FLAC", subtype="PCM_16")
        scenes_out.append({**asdict(scene), "audio": rel})
        seconds[split] = seconds.get(split, 0.0) + scene.duration
        bar.update(1)
        return rel

    for split, n in counts.items():
        srng = np.random.default_rng([seed, {"train": 0, "val": 1, "test": 2, "heldout": 6}[split]])
        pool = _pool(bank, split)
        for k in range(n):
            scene, wave = sample_scene(srng, pool, split, f"{split}-{k:05d}")
            rel = emit(scene, wave, split)
            recs = _scene_records(scene, rel, srng, known, n_questions=4 if split in ("train", "val") else 2)
            if split in ("test", "heldout"):
                ev = "eval" if split == "test" else "heldout/eval"
                manifests.setdefault(f"{ev}/caption", []).extend(recs["caption"])
                manifests.setdefault(f"{ev}/aqa", []).extend(recs["aqa"])
                for r in recs["classify"]:
                    manifests.setdefault(f"{ev}/instrument", []).append({**r, "options": known})
                for r in recs["dialogue"]:  # one item per follow-up turn, with the gold history before it
                    for j in range(1, len(r["turns"])):
                        manifests.setdefault(f"{ev}/dialogue", []).append(
                            {**r, "id": f"{r['id']}/t{j}", "turns": r["turns"][: j + 1]}
                        )
            else:
                for task, rs in recs.items():
                    manifests.setdefault(f"{split}_{task}", []).extend(rs)
    # Few-shot: single-instrument clips of instruments never named in training.
    for split, name in (("novel-support", "eval/fewshot_support"), ("novel-test", "eval/fewshot")):
        srng = np.random.default_rng([seed, 3 if split == "novel-support" else 4])
        pool = _pool(bank, split)
        for k in range(2 * 12 * len(novel) // 2):
            scene, wave = sample_scene(srng, pool, split, f"{split}-{k:05d}", kinds=("instrument",), n_events=1)
            rel = emit(scene, wave, split)
            manifests.setdefault(name, []).append(
                {
                    "id": scene.id,
                    "audio": rel,
                    "source": scene.events[0].source,
                    "sources": [scene.events[0].origin],
                    "task": "classify",
                    "instruction": INSTRUMENT_QUESTION,
                    "output": scene.events[0].label,
                    "options": novel,
                }
            )
    # Few-shot queries from other sample sets (Freepats, GCompris' recordings) than the datastore's
    # FluidR3 phrases: one clip per recording.
    srng = np.random.default_rng([seed, 5])
    for k, rec in enumerate(heldout_queries):
        scene, wave = sample_scene(
            srng, {"instrument": [rec]}, "novel-heldout", f"novel-heldout-{k:05d}", kinds=("instrument",), n_events=1
        )
        rel = emit(scene, wave, "novel-heldout")
        manifests.setdefault("heldout/eval/fewshot", []).append(
            {
                "id": scene.id,
                "audio": rel,
                "source": rec.id,
                "sources": [rec.origin],
                "task": "classify",
                "instruction": INSTRUMENT_QUESTION,
                "output": rec.label,
                "options": novel,
            }
        )
    bar.close()
    for name, recs in manifests.items():
        if name.startswith(("eval/", "heldout/")):  # manifest paths resolve against the manifest's own folder
            up = "../" * name.count("/")
            recs = [{**r, "audio": up + r["audio"]} for r in recs]
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        _write(out / f"{name}.jsonl", recs)
    _write(out / "scenes.jsonl", scenes_out)
    summary = {
        "seed": seed,
        "hours_requested": hours,
        "sample_rate": SR,
        "hours": {k: round(v / 3600, 3) for k, v in seconds.items()},
        "manifests": {k: len(v) for k, v in sorted(manifests.items())},
        "known_instruments": known,
        "novel_instruments": novel,
        "recordings": {s: sum(r.split == s for r in bank) for s in sorted({r.split for r in bank})},
        "sources": {
            o: {
                s: sum(r.origin == o and r.split == s for r in bank)
                for s in sorted({r.split for r in bank})
                if any(r.origin == o and r.split == s for r in bank)
            }
            for o in sorted({r.origin for r in bank})
        },
        "recording_splits": {r.id: r.split for r in bank},
    }
    from audioflamingo.data.synth.leaks import text_leaks

    # does a question's wording give its answer away? (a text-only classifier per kind; leaks.py)
    summary["question_leaks"] = text_leaks(manifests.get("train_aqa_all", []))
    (out / "synth.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return summary
