"""Converters from public dataset layouts to manifests.

Each converter reads the dataset's own metadata file(s) as distributed, finds the audio, and returns
manifest records with paths relative to the manifest's folder. Rows whose audio is missing are
skipped and counted, never fatal (unless none is found).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from audioflamingo.text.templates import DEFAULT_INSTRUCTIONS

AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg")


@dataclass
class Converted:
    records: list[dict] = field(default_factory=list)
    missing_audio: list[str] = field(default_factory=list)


def _read_csv(path: Path, required: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected metadata file not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        lacking = [c for c in required if c not in cols]
        if lacking:
            raise ValueError(f"{path}: missing column(s) {', '.join(lacking)} (found: {', '.join(cols)})")
        return list(reader)


def _rel(audio: Path, out_dir: Path) -> str:
    return os.path.relpath(audio.resolve(), out_dir.resolve())


def _label_text(label: str) -> str:
    return label.replace("_", " ").strip()


def clotho(csv_path: Path, audio_dir: Path, out_dir: Path) -> Converted:
    """Clotho v2 `clotho_captions_<split>.csv`: file_name, caption_1..caption_5 (5 records per clip)."""
    rows = _read_csv(csv_path, ["file_name", "caption_1"])
    res = Converted()
    for row in rows:
        audio = audio_dir / row["file_name"]
        if not audio.is_file():
            res.missing_audio.append(str(audio))
            continue
        for i in range(1, 6):
            cap = (row.get(f"caption_{i}") or "").strip()
            if cap:
                res.records.append(
                    {
                        "id": f"{row['file_name']}#{i}",
                        "audio": _rel(audio, out_dir),
                        "task": "caption",
                        "instruction": DEFAULT_INSTRUCTIONS["caption"],
                        "output": cap,
                        "source": row["file_name"],
                    }
                )
    return res


def _find_audiocaps(audio_dir: Path, row: dict[str, str]) -> Path | None:
    yt, start, cap_id = row["youtube_id"], row.get("start_time", ""), row["audiocap_id"]
    stems = [cap_id, yt, f"Y{yt}", f"{yt}_{start}", f"Y{yt}_{start}"]
    try:
        stems.append(f"{yt}_{float(start):.3f}")
    except ValueError:
        pass
    for stem in stems:
        for ext in AUDIO_EXTS:
            p = audio_dir / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def audiocaps(csv_path: Path, audio_dir: Path, out_dir: Path) -> Converted:
    """AudioCaps `<split>.csv`: audiocap_id, youtube_id, start_time, caption. Audio is looked up as
    <audiocap_id>, <youtube_id>, Y<youtube_id> or <youtube_id>_<start_time> with any common extension."""
    rows = _read_csv(csv_path, ["audiocap_id", "youtube_id", "start_time", "caption"])
    res = Converted()
    for row in rows:
        audio = _find_audiocaps(audio_dir, row)
        if audio is None:
            res.missing_audio.append(f"{audio_dir}/{row['youtube_id']} (audiocap_id {row['audiocap_id']})")
            continue
        res.records.append(
            {
                "id": row["audiocap_id"],
                "audio": _rel(audio, out_dir),
                "task": "caption",
                "instruction": DEFAULT_INSTRUCTIONS["caption"],
                "output": row["caption"].strip(),
                "source": row["youtube_id"],
            }
        )
    return res


def clotho_aqa(csv_path: Path, audio_dir: Path, out_dir: Path) -> Converted:
    """ClothoAQA `clotho_aqa_<split>.csv`: file_name, QuestionText, answer[, confidence]."""
    rows = _read_csv(csv_path, ["file_name", "QuestionText", "answer"])
    res = Converted()
    for n, row in enumerate(rows):
        audio = audio_dir / row["file_name"]
        if not audio.is_file():
            res.missing_audio.append(str(audio))
            continue
        rec = {
            "id": f"{row['file_name']}#{n}",
            "audio": _rel(audio, out_dir),
            "task": "aqa",
            "instruction": row["QuestionText"].strip(),
            "output": row["answer"].strip(),
            "source": row["file_name"],
        }
        if row.get("confidence"):
            rec["confidence"] = row["confidence"]
        res.records.append(rec)
    return res


def label_csv(
    csv_path: Path,
    audio_dir: Path,
    out_dir: Path,
    file_col: str,
    label_col: str,
    source_col: str | None = None,
    fold_col: str | None = None,
    audio_template: str = "{file}",
    folds: set[str] | None = None,
) -> Converted:
    """Generic single-label CSV (ESC-50 / UrbanSound8K style). Options = every label in the file."""
    required = [file_col, label_col] + [c for c in (source_col, fold_col) if c]
    rows = _read_csv(csv_path, required)
    labels = sorted({_label_text(r[label_col]) for r in rows})
    res = Converted()
    for row in rows:
        if folds is not None and fold_col and row[fold_col] not in folds:
            continue
        fields = {"file": row[file_col], **{k: v for k, v in row.items() if k}}
        audio = audio_dir / audio_template.format(**fields)
        if not audio.is_file():
            res.missing_audio.append(str(audio))
            continue
        rec = {
            "id": row[file_col],
            "audio": _rel(audio, out_dir),
            "task": "classify",
            "instruction": DEFAULT_INSTRUCTIONS["classify"],
            "output": _label_text(row[label_col]),
            "options": labels,
            "source": row[source_col] if source_col else row[file_col],
        }
        if fold_col:
            rec["fold"] = row[fold_col]
        res.records.append(rec)
    return res


def esc50(root: Path, out_dir: Path, folds: set[str] | None = None) -> Converted:
    """ESC-50 as distributed: meta/esc50.csv + audio/<filename>."""
    return label_csv(
        root / "meta" / "esc50.csv",
        root / "audio",
        out_dir,
        "filename",
        "category",
        source_col="src_file",
        fold_col="fold",
        folds=folds,
    )


def urbansound8k(root: Path, out_dir: Path, folds: set[str] | None = None) -> Converted:
    """UrbanSound8K as distributed: metadata/UrbanSound8K.csv + audio/fold<k>/<slice_file_name>."""
    return label_csv(
        root / "metadata" / "UrbanSound8K.csv",
        root / "audio",
        out_dir,
        "slice_file_name",
        "class",
        source_col="fsID",
        fold_col="fold",
        audio_template="fold{fold}/{file}",
        folds=folds,
    )
