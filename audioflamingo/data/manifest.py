"""Data manifests: JSON Lines, one training sample per line (schema: manifest.schema.json).

{"audio": "clips/dog.wav", "task": "caption", "output": "A dog barks twice."}
{"audio": "a.flac", "offset": 3.0, "duration": 7.0, "task": "aqa", "instruction": "How many?", "output": "Two."}
{"audio": "b.wav", "task": "classify", "output": "dog", "options": ["dog", "cat", "rain"]}
{"audio": "c.wav", "task": "dialogue", "turns": [{"user": "What is it?", "assistant": "A bell."}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


@dataclass
class Record:
    id: str
    audio: Path | None  # resolved against the manifest's folder; None for task 'text'
    task: str
    instruction: str = ""
    output: str = ""
    options: list[str] | None = None
    turns: list[dict[str, str]] | None = None
    offset: float = 0.0
    duration: float | None = None
    source: str = ""
    task_description: str | None = None
    positives: list[str] | None = None  # CLAP: paraphrases of `output`
    negatives: list[str] | None = None  # CLAP: compositional negatives (order / binding altered)
    shots: list[dict] | None = None  # inline in-context examples {audio, instruction, output, options}
    question: str | None = None  # the kind of question asked (the synth corpus: first, last, count, ...)
    line: int = 0

    @property
    def group(self) -> str:
        """Segments of one recording share a group: kNN never pairs them, splits never separate them."""
        return self.source or str(self.audio)


@dataclass
class Report:
    path: str
    records: int = 0
    problems: list[str] = field(default_factory=list)
    tasks: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _schema_validator():
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def _record(obj: dict[str, Any], base: Path, line: int) -> Record:
    audio = Path(obj["audio"]) if obj.get("audio") else None  # None: a text record (lm stages)
    return Record(
        id=str(obj.get("id", line)),
        audio=audio if audio is None or audio.is_absolute() else base / audio,
        task=obj["task"],
        instruction=obj.get("instruction", ""),
        output=obj.get("output", ""),
        options=obj.get("options"),
        turns=obj.get("turns"),
        offset=float(obj.get("offset", 0.0)),
        duration=obj.get("duration"),
        source=obj.get("source", ""),
        task_description=obj.get("task_description"),
        positives=obj.get("positives"),
        negatives=obj.get("negatives"),
        question=obj.get("question"),
        line=line,
        shots=[
            {**sh, "audio": str(Path(sh["audio"]) if Path(sh["audio"]).is_absolute() else base / sh["audio"])}
            for sh in obj["shots"]
        ]
        if obj.get("shots")
        else None,
    )


def load_manifest(path: str | Path, needs_audio: str | None = None) -> list[Record]:
    """Parse and schema-check a manifest; the first bad line raises ValueError naming file:line.

    needs_audio: what the records are for ("CLAP training", ...); text records (task 'text', no
    audio) are then refused with one line naming the first of them."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, not a manifest file")
    validator = _schema_validator()
    out = []
    with p.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{p}:{n}: not valid UTF-8 (byte {err.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{p}:{n}: invalid JSON ({err.msg})") from None
            errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
            if errors:
                raise ValueError(f"{p}:{n}: {_explain(errors[0])}")
            out.append(_record(obj, p.parent, n))
            if needs_audio and out[-1].audio is None:
                raise ValueError(
                    f"{p}:{n}: a text record (task 'text', no audio); {needs_audio} needs audio "
                    "records (text records only train `kind: lm` stages)"
                )
    return out


def _explain(err) -> str:
    where = ".".join(str(x) for x in err.path)
    return f"{where}: {err.message}" if where else err.message


def validate_manifest(
    path: str | Path, check_audio: bool = True, progress: bool = False, root: str | Path | None = None
) -> Report:
    """Every problem of a manifest at once (data/validate.py)."""
    from audioflamingo.data.validate import validate_manifest as validate

    return validate(path, check_audio=check_audio, progress=progress, root=root)


def write_manifest(records: list[dict[str, Any]], path: str | Path) -> None:
    """Write records atomically (a temp file renamed into place)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(p)
