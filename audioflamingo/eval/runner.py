"""`audioflamingo eval`: run a model over a benchmark, resumably, and score it on the whole split.

Predictions are appended to `<out>/predictions.jsonl` batch by batch, so a rerun skips what is
done. Metrics are computed over every prediction at once (`<out>/metrics.json`), with the decoding
settings, prompt, shot count and missing-file counts recorded beside them.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from audioflamingo.eval import metrics as M
from audioflamingo.eval.benchmarks import Benchmark, Item, LayoutError, get
from audioflamingo.tasks import AudioFlamingoPipeline, GenerationSettings, Query


def _load_done(path: Path) -> dict[str, dict]:
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: that item is simply redone
            done[r["id"]] = r
    return done


def _shots(pool, pipe, it: Item, k: int):
    if not k or pool is None:
        return [], []
    wave, _ = pipe._wave(it.audio)
    shots, hits = pool.shots(wave, k, exclude=it.audio)
    return shots, [h.record.id for h in hits]


def predict(
    pipe: AudioFlamingoPipeline,
    bench: Benchmark,
    items: list[Item],
    settings: GenerationSettings,
    cls_mode: str,
    shots: int = 0,
    pool=None,
) -> list[dict]:
    out = []
    if bench.task == "classify" and cls_mode in ("likelihood", "calibrated"):
        for it in items:
            sh, ids = _shots(pool, pipe, it, shots)
            ranked = pipe.classify(
                it.audio,
                it.options,
                instruction=bench.prompt,
                task_description=bench.task_description,
                shots=sh,
                calibrate=cls_mode == "calibrated",
            )
            out.append(
                {
                    "id": it.id,
                    "prediction": ranked[0]["label"],
                    "references": it.references,
                    "scores": {r["label"]: round(r.get("calibrated", r["logprob"]), 4) for r in ranked},
                    "shots": ids,
                }
            )
        return out
    if bench.task == "dialogue":  # each item: the gold turns so far, then the question to answer
        from audioflamingo.text.templates import render_dialogue

        prompts = [
            render_dialogue([*(it.history or []), (it.instruction, None)], pipe.tokenizer, style=pipe.style)
            for it in items
        ]
        texts = pipe._generate(prompts, [[it.audio] for it in items], settings)
        return [{"id": it.id, "prediction": t, "references": it.references, "shots": []} for it, t in zip(items, texts)]
    queries, shot_ids = [], []
    for it in items:
        sh, ids = _shots(pool, pipe, it, shots)
        instruction = bench.prompt.format(question=it.instruction) if "{question}" in bench.prompt else bench.prompt
        options = it.options if bench.task == "classify" else None
        queries.append(Query(it.audio, instruction, bench.task_description, options, sh))
        shot_ids.append(ids)
    texts = pipe.answer(queries, settings)
    return [
        {"id": it.id, "prediction": t, "references": it.references, "shots": ids}
        for it, t, ids in zip(items, texts, shot_ids)
    ]


def score(bench: Benchmark, records: list[dict], vocabulary: list[str]) -> dict:
    preds = {r["id"]: r["prediction"] for r in records}
    refs = {r["id"]: r["references"] for r in records}
    if bench.task == "caption" or bench.metrics[0] == "CIDEr-D":  # captions, and free-form dialogue turns
        return M.caption_metrics(preds, refs)
    if bench.task == "tagging":
        return {"approx-F1": M.approx_f1(preds, refs, vocabulary)}
    out = {"accuracy": M.accuracy(preds, refs)}
    if bench.task == "classify":
        out["macro-F1"] = M.macro_f1(preds, {i: r[0] for i, r in refs.items()}, vocabulary)
    return out


def run_eval(
    bench_name: str,
    model_dir,
    data_dir,
    out_dir=None,
    shots: int = 0,
    rag=None,
    batch_size: int = 8,
    settings: GenerationSettings | None = None,
    cls_mode: str = "likelihood",
    limit: int | None = None,
    progress: bool = False,
    device: str = "cpu",
) -> dict:
    from audioflamingo.progress import progress_bar

    bench = get(bench_name)
    data = Path(data_dir)
    if not data.is_dir():
        raise LayoutError(f"{data}: data folder not found (expected layout: {bench.layout})")
    items = bench.loader(data)
    if limit:
        items = items[:limit]
    present = [it for it in items if it.audio.is_file()]
    missing = [str(it.audio) for it in items if not it.audio.is_file()]
    if not present:
        raise LayoutError(
            f"{data}: none of the {len(items)} audio files exist (first expected: "
            f"{items[0].audio if items else bench.layout})"
        )
    if shots and rag is None:
        raise ValueError("--shots needs --rag MANIFEST (the labelled examples to retrieve from)")
    settings = settings or GenerationSettings()
    out = Path(out_dir or Path("runs") / "eval" / f"{bench.name}-{shots}shot")
    out.mkdir(parents=True, exist_ok=True)
    pred_file = out / "predictions.jsonl"
    done = _load_done(pred_file)
    todo = [it for it in present if it.id not in done]
    pipe = AudioFlamingoPipeline.load(model_dir, device=device, batch_size=batch_size)
    pool = None
    if shots:
        pool = pipe.retriever(rag)
    t0 = time.perf_counter()
    bar = progress_bar(len(present), bench.name, "clip", enabled=progress, initial=len(present) - len(todo))
    with pred_file.open("a", encoding="utf-8") as f:
        for s in range(0, len(todo), batch_size):
            chunk = todo[s : s + batch_size]
            for rec in predict(pipe, bench, chunk, settings, cls_mode, shots, pool):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                done[rec["id"]] = rec
            f.flush()
            bar.update(len(chunk))
    bar.close()
    elapsed = time.perf_counter() - t0
    records = [done[it.id] for it in present]
    vocab = sorted({r for it in items for r in it.references})
    result = {
        "benchmark": bench.name,
        "task": bench.task,
        "model": str(model_dir or "default"),
        "shots": shots,
        "rag": str(rag) if rag else None,
        "prompt": bench.prompt,
        "task_description": bench.task_description,
        "classification_mode": cls_mode if bench.task == "classify" else None,
        "decoding": asdict(settings),
        "items": len(present),
        "missing_audio": len(missing),
        "missing_examples": missing[:20],
        "newly_predicted": len(todo),
        "clips_per_s": (len(todo) / elapsed) if todo and elapsed > 0 else None,
        "metrics": score(bench, records, vocab),
        "paper": bench.paper,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
