"""The Audio Flamingo paper's benchmarks, read from their public layouts.

Each benchmark has a task (caption, aqa, classify, tagging), the prompt the paper's code uses, its
metrics, the paper's number (AF1, arXiv 2402.01831) and a loader. A loader returns `Item`s; a wrong
layout raises `LayoutError` naming the file or folder it expected.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from audioflamingo.errors import AudioFlamingoError


class LayoutError(AudioFlamingoError):
    pass


@dataclass
class Item:
    id: str
    audio: Path
    instruction: str
    references: list[str]  # captions, accepted answers, or gold label(s)
    options: list[str] | None = None
    history: list[tuple[str, str]] | None = None  # dialogue: the gold turns before `instruction`


@dataclass
class Benchmark:
    name: str
    task: str  # caption | aqa | classify | tagging | dialogue
    prompt: str
    task_description: str
    metrics: list[str]
    paper: dict[str, float]
    layout: str
    loader: Callable[[Path], list[Item]] = field(repr=False)


def _need(path: Path, what: str = "file") -> Path:
    if not path.exists():
        raise LayoutError(f"{path}: expected {what} not found")
    return path


def _rows(path: Path, required: list[str]) -> list[dict[str, str]]:
    with _need(path).open(newline="", encoding="utf-8-sig") as f:
        r = csv.DictReader(f)
        lacking = [c for c in required if c not in (r.fieldnames or [])]
        if lacking:
            raise LayoutError(f"{path}: missing column(s) {', '.join(lacking)}")
        return list(r)


def _label(s: str) -> str:
    return s.replace("_", " ").strip().lower()


def _with_options(items: list[Item]) -> list[Item]:
    labels = sorted({r for it in items for r in it.references})
    for it in items:
        it.options = labels
    return items


# ---------------------------------------------------------------------------- loaders
def clotho(root: Path) -> list[Item]:
    rows = _rows(root / "clotho_captions_evaluation.csv", ["file_name", "caption_1"])
    audio = _need(root / "evaluation", "folder")
    return [
        Item(
            r["file_name"],
            audio / r["file_name"],
            "",
            [r[f"caption_{i}"] for i in range(1, 6) if r.get(f"caption_{i}")],
        )
        for r in rows
    ]


def audiocaps(root: Path) -> list[Item]:
    from audioflamingo.data.converters import _find_audiocaps

    rows = _rows(root / "test.csv", ["audiocap_id", "youtube_id", "start_time", "caption"])
    audio = _need(root / "audio", "folder")
    by_clip: dict[str, Item] = {}
    for r in rows:
        it = by_clip.get(r["youtube_id"])
        if it is None:
            path = _find_audiocaps(audio, r) or audio / f"{r['youtube_id']}.wav"
            it = by_clip[r["youtube_id"]] = Item(r["youtube_id"], path, "", [])
        it.references.append(r["caption"].strip())
    return list(by_clip.values())


def clotho_aqa(root: Path) -> list[Item]:
    rows = _rows(root / "clotho_aqa_test.csv", ["file_name", "QuestionText", "answer"])
    audio = _need(root / "audio_files", "folder")
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        grouped.setdefault((r["file_name"], r["QuestionText"].strip()), []).append(r["answer"].strip())
    items = []
    for n, ((f, q), answers) in enumerate(grouped.items()):
        majority = max(set(answers), key=answers.count)  # the annotators' majority answer
        items.append(Item(f"{f}#{n}", audio / f, q, [majority]))
    return items


def folder_per_class(root: Path, sub: str, pattern: str = "*.wav") -> list[Item]:
    base = _need(root / sub, "folder")
    items = [
        Item(f"{d.name}/{f.name}", f, "", [_label(d.name)])
        for d in sorted(p for p in base.iterdir() if p.is_dir())
        for f in sorted(d.glob(pattern))
    ]
    if not items:
        raise LayoutError(f"{base}: expected one sub-folder of {pattern} files per class")
    return _with_options(items)


def cochlscene(root: Path) -> list[Item]:
    return folder_per_class(root, "Test")


def gtzan(root: Path) -> list[Item]:
    sub = "genres" if (root / "genres").is_dir() else "genres_original"
    return folder_per_class(root, sub, "*.wav")


def nonspeech7k(root: Path) -> list[Item]:
    rows = _rows(root / "metadata of test set.csv", ["Filename", "Classname"])
    audio = _need(root / "test", "folder")
    return _with_options([Item(r["Filename"], audio / r["Filename"], "", [_label(r["Classname"])]) for r in rows])


def _nsynth(root: Path, key: str) -> list[Item]:
    meta = json.loads(_need(root / "nsynth-test" / "examples.json").read_text())
    audio = _need(root / "nsynth-test" / "audio", "folder")
    items = []
    for note, m in sorted(meta.items()):
        value = m[key]
        refs = [_label(v) for v in value] if isinstance(value, list) else [_label(value)]
        items.append(Item(note, audio / f"{note}.wav", "", refs))
    return items if key == "qualities_str" else _with_options(items)


def urbansound8k(root: Path) -> list[Item]:
    rows = _rows(root / "metadata" / "UrbanSound8K.csv", ["slice_file_name", "fold", "class"])
    return _with_options(
        [
            Item(
                r["slice_file_name"],
                root / "audio" / f"fold{r['fold']}" / r["slice_file_name"],
                "",
                [_label(r["class"])],
            )
            for r in rows
        ]
    )


CREMA = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
RAVDESS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}


def crema_d(root: Path) -> list[Item]:
    base = _need(root / "AudioWAV", "folder")
    items = []
    for f in sorted(base.glob("*.wav")):
        parts = f.stem.split("_")
        if len(parts) == 4 and parts[2] in CREMA:
            items.append(Item(f.name, f, "", [CREMA[parts[2]]]))
    if not items:
        raise LayoutError(f"{base}: expected files named <actor>_<sentence>_<EMOTION>_<level>.wav")
    return _with_options(items)


def ravdess(root: Path) -> list[Item]:
    files = sorted(root.glob("Actor_*/*.wav"))
    if not files:
        raise LayoutError(f"{root}/Actor_*/: expected RAVDESS Actor_XX folders of .wav files")
    items = [
        Item(f.name, f, "", [RAVDESS[f.stem.split("-")[2]]])
        for f in files
        if len(f.stem.split("-")) == 7 and f.stem.split("-")[2] in RAVDESS
    ]
    return _with_options(items)


def medley_solos(root: Path) -> list[Item]:
    rows = _rows(root / "Medley-solos-DB_metadata.csv", ["subset", "instrument", "instrument_id", "uuid4"])
    audio = _need(root / "audio", "folder")
    items = [
        Item(
            r["uuid4"],
            audio / f"Medley-solos-DB_{r['subset']}-{r['instrument_id']}_{r['uuid4']}.wav",
            "",
            [_label(r["instrument"])],
        )
        for r in rows
        if r["subset"] == "test"
    ]
    return _with_options(items)


def fsd50k(root: Path) -> list[Item]:
    rows = _rows(root / "FSD50K.ground_truth" / "eval.csv", ["fname", "labels"])
    audio = _need(root / "FSD50K.eval_audio", "folder")
    return [
        Item(r["fname"], audio / f"{r['fname']}.wav", "", [_label(l) for l in r["labels"].split(",")]) for r in rows
    ]


def _json(path: Path):
    try:
        return json.loads(_need(path).read_text())
    except ValueError as err:
        raise LayoutError(f"{path}: not valid JSON ({err})") from None


def music_aqa(root: Path) -> list[Item]:
    """MUSIC-AVQA's test annotations, audio questions only (what AF1 calls MusicAQA): `avqa-test.json`
    as released (question_content with <Object>/<...> slots filled from templ_values in order, the
    answer under its released key `anser`) and the audio of each video as `audio/<video_id>.wav`."""
    import ast

    audio = _need(root / "audio", "folder")
    items = []
    for n, r in enumerate(_json(root / "avqa-test.json")):
        kind = r.get("type", "[]")
        kind = ast.literal_eval(kind) if isinstance(kind, str) else kind
        if not kind or kind[0] != "Audio":
            continue  # visual and audio-visual questions need the video
        values = r.get("templ_values", "[]")
        values = ast.literal_eval(values) if isinstance(values, str) else values
        question = r["question_content"]
        for v in values:
            question = re.sub(r"<[^>]+>", str(v), question, count=1)
        items.append(Item(f"{r.get('question_id', n)}", audio / f"{r['video_id']}.wav", question, [r["anser"]]))
    return items


def audio_dialogues(root: Path, json_name: str) -> list[Item]:
    """Audio Dialogues (the AF1 chat model's data, Goel et al. 2024) as released: a JSON list of
    {"audio_id": file, "dialogue": [{"user", "assistant"}, ...]} with the audio files beside it.
    Every assistant turn is one item, asked after the gold turns before it."""
    items = []
    for n, r in enumerate(_json(root / json_name)):
        turns = [(t["user"], t["assistant"]) for t in r["dialogue"]]
        for k, (user, assistant) in enumerate(turns):
            items.append(Item(f"{r['audio_id']}#{n}.{k}", root / r["audio_id"], user, [assistant], history=turns[:k]))
    return items


def synth(root: Path, name: str) -> list[Item]:
    """The default model's held-out split (`audioflamingo data synth`): <root>/eval/<name>.jsonl."""
    from audioflamingo.data.manifest import load_manifest

    items = []
    for r in load_manifest(_need(root / "eval" / f"{name}.jsonl"), needs_audio="evaluation"):
        if r.task == "dialogue":
            turns = [(t["user"], t["assistant"]) for t in r.turns or []]
            items.append(Item(r.id, r.audio, turns[-1][0], [turns[-1][1]], history=turns[:-1]))
        else:
            items.append(Item(r.id, r.audio, r.instruction, [r.output, *(r.positives or [])], r.options))
    return items


# ---------------------------------------------------------------------------- registry
CAP = ["CIDEr-D", "BLEU-4", "METEOR", "ROUGE-L", "SPIDEr"]


def _b(name, task, prompt, desc, metrics, paper, layout, loader):
    return Benchmark(name, task, prompt, desc, metrics, paper, layout, loader)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        _b(
            "clotho-v2",
            "caption",
            "Describe the sound in a sentence.",
            "The task is audio captioning.",
            CAP,
            {"CIDEr-D": 0.465},
            "clotho_captions_evaluation.csv + evaluation/",
            clotho,
        ),
        _b(
            "audiocaps",
            "caption",
            "Describe the sound in a sentence.",
            "The task is audio captioning.",
            CAP,
            {"CIDEr-D": 0.502},
            "test.csv + audio/",
            audiocaps,
        ),
        _b(
            "clotho-aqa",
            "aqa",
            "{question}",
            "The task is audio question answering.",
            ["accuracy"],
            {"accuracy": 0.869},
            "clotho_aqa_test.csv + audio_files/",
            clotho_aqa,
        ),
        _b(
            "cochlscene",
            "classify",
            "This acoustic scene is",
            "The task is scene classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.830},
            "Test/<Class>/*.wav",
            cochlscene,
        ),
        _b(
            "nonspeech7k",
            "classify",
            "Classify this sound.",
            "The task is event classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.851},
            "metadata of test set.csv + test/",
            nonspeech7k,
        ),
        _b(
            "nsynth-instrument",
            "classify",
            "What is the instrument of this music?",
            "The task is instrument classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.771},
            "nsynth-test/examples.json + nsynth-test/audio/",
            lambda r: _nsynth(r, "instrument_family_str"),
        ),
        _b(
            "nsynth-quality",
            "tagging",
            "What are the qualities of the music?",
            "The task is music tagging.",
            ["approx-F1"],
            {"approx-F1": 0.667},
            "nsynth-test/examples.json + nsynth-test/audio/",
            lambda r: _nsynth(r, "qualities_str"),
        ),
        _b(
            "nsynth-source",
            "classify",
            "What is the source of this music?",
            "The task is music source classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.787},
            "nsynth-test/examples.json + nsynth-test/audio/",
            lambda r: _nsynth(r, "instrument_source_str"),
        ),
        _b(
            "urbansound8k",
            "classify",
            "Classify this sound.",
            "The task is event classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.750},
            "metadata/UrbanSound8K.csv + audio/fold<k>/",
            urbansound8k,
        ),
        _b(
            "gtzan",
            "classify",
            "What is the genre of this music?",
            "The task is genre classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.679},
            "genres/<genre>/*.wav",
            gtzan,
        ),
        _b(
            "crema-d",
            "classify",
            "What is the emotion of this speech?",
            "The task is emotion classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.265},
            "AudioWAV/<id>_<sent>_<EMO>_<lvl>.wav",
            crema_d,
        ),
        _b(
            "ravdess",
            "classify",
            "What is the emotion of this speech?",
            "The task is emotion classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.209},
            "Actor_XX/03-01-<emo>-...wav",
            ravdess,
        ),
        _b(
            "medley-solos-db",
            "classify",
            "What is the instrument of this music?",
            "The task is instrument classification.",
            ["accuracy", "macro-F1"],
            {"accuracy": 0.927},
            "Medley-solos-DB_metadata.csv + audio/",
            medley_solos,
        ),
        _b(
            "synth-caption",
            "caption",
            "Describe the sound in a sentence.",
            "The task is audio captioning.",
            CAP,
            {},
            "eval/caption.jsonl (audioflamingo data synth)",
            lambda r: synth(r, "caption"),
        ),
        _b(
            "synth-aqa",
            "aqa",
            "{question}",
            "The task is audio question answering.",
            ["accuracy"],
            {},
            "eval/aqa.jsonl (audioflamingo data synth)",
            lambda r: synth(r, "aqa"),
        ),
        _b(
            "synth-instrument",
            "classify",
            "Which instrument is playing?",
            "The task is audio classification.",
            ["accuracy", "macro-F1"],
            {},
            "eval/instrument.jsonl (audioflamingo data synth)",
            lambda r: synth(r, "instrument"),
        ),
        _b(
            "synth-fewshot",
            "classify",
            "Which instrument is playing?",
            "The task is audio classification.",
            ["accuracy", "macro-F1"],
            {},
            "eval/fewshot.jsonl (+ --rag eval/fewshot_support.jsonl)",
            lambda r: synth(r, "fewshot"),
        ),
        _b(
            "synth-dialogue",
            "dialogue",
            "{question}",
            "The task is dialogue.",
            ["accuracy"],
            {},
            "eval/dialogue.jsonl (audioflamingo data synth)",
            lambda r: synth(r, "dialogue"),
        ),
        _b(
            "musicaqa",
            "aqa",
            "{question}",
            "The task is audio question answering.",
            ["accuracy"],
            {"accuracy": 0.716},
            "avqa-test.json (MUSIC-AVQA, audio questions) + audio/<video_id>.wav",
            music_aqa,
        ),
        # The dialogue numbers are the AF1 chat model's (fine-tuned on Audio Dialogues' training split).
        _b(
            "audio-dialogues-audioset",
            "dialogue",
            "{question}",
            "The task is dialogue.",
            CAP,
            {"CIDEr-D": 1.622},
            "dialogues_audioset_thresholded.json + the audio files beside it",
            lambda r: audio_dialogues(r, "dialogues_audioset_thresholded.json"),
        ),
        _b(
            "audio-dialogues-musiccaps",
            "dialogue",
            "{question}",
            "The task is dialogue.",
            CAP,
            {"CIDEr-D": 1.143},
            "dialogues_musiccaps_thresholded.json + the audio files beside it",
            lambda r: audio_dialogues(r, "dialogues_musiccaps_thresholded.json"),
        ),
        _b(
            "fsd50k",
            "tagging",
            "Use a few labels to describe this sound.",
            "The task is sound tagging.",
            ["approx-F1"],
            # The seed's results table spells it "PSD50k" (F_approx 69.7%): AF1's FSD50k row.
            {"approx-F1": 0.697},
            "FSD50K.ground_truth/eval.csv + FSD50K.eval_audio/",
            fsd50k,
        ),
    ]
}


def get(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise LayoutError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
