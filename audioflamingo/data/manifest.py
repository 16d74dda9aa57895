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
        id=str(obj.get("id", line)), audio=audio if audio is None or audio.is_absolute() else base / audio,
        task=obj["task"],
        instruction=obj.get("instruction", ""), output=obj.get("output", ""), options=obj.get("options"),
        turns=obj.get("turns"), offset=float(obj.get("offset", 0.0)), duration=obj.get("duration"),
        source=obj.get("source", ""), task_description=obj.get("task_description"),
        positives=obj.get("positives"), negatives=obj.get("negatives"), line=line,
        shots=[{**sh, "audio": str(Path(sh["audio"]) if Path(sh["audio"]).is_absolute() else base / sh["audio"])}
               for sh in obj["shots"]] if obj.get("shots") else None,
    )


def load_manifest(path: str | Path, needs_audio: str | None = None) -> list[Record]:
    """Parse and schema-check a manifest; the first bad line raises ValueError naming file:line.

    needs_audio: what the records are for ("CLAP training", ...); text records (task 'text', no
    audio) are then refused with one line naming the first of them."""
    p = Path(path)
    validator = _schema_validator()
    out = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
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
                raise ValueError(f"{p}:{n}: a text record (task 'text', no audio); {needs_audio} needs audio "
                                 "records (text records only train `kind: lm` stages)")
    return out


def _explain(err) -> str:
    where = ".".join(str(x) for x in err.path)
    return f"{where}: {err.message}" if where else err.message


def validate_manifest(path: str | Path, check_audio: bool = True, progress: bool = False) -> Report:
    """Every problem of a manifest at once, as `file:line: problem`, plus counts per task."""
    import soundfile as sf
    from tqdm import tqdm

    p = Path(path)
    rep = Report(str(p))
    if not p.is_file():
        rep.problems.append(f"{p}: file not found")
        return rep
    validator = _schema_validator()
    seen: dict[str, int] = {}
    lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    for n, line in enumerate(tqdm(lines, desc="validate", unit="line", disable=not progress), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            rep.problems.append(f"{p}:{n}: invalid JSON ({err.msg})")
            continue
        errors = list(validator.iter_errors(obj))
        if errors:
            rep.problems.extend(f"{p}:{n}: {_explain(e)}" for e in errors)
            continue
        rec = _record(obj, p.parent, n)
        rep.records += 1
        rep.tasks[rec.task] = rep.tasks.get(rec.task, 0) + 1
        if rec.id in seen:
            rep.problems.append(f"{p}:{n}: duplicate id {rec.id!r} (first on line {seen[rec.id]})")
        seen.setdefault(rec.id, n)
        if rec.task == "classify" and rec.output not in (rec.options or []):
            rep.problems.append(f"{p}:{n}: output {rec.output!r} is not one of the options")
        if check_audio and rec.audio is not None:
            if not rec.audio.is_file():
                rep.problems.append(f"{p}:{n}: audio file not found: {rec.audio}")
                continue
            try:
                info = sf.info(str(rec.audio))
            except Exception:
                rep.problems.append(f"{p}:{n}: unreadable audio: {rec.audio}")
                continue
            length = info.frames / info.samplerate if info.samplerate else 0
            if info.frames == 0:
                rep.problems.append(f"{p}:{n}: zero-length audio: {rec.audio}")
            elif rec.offset >= length:
                rep.problems.append(f"{p}:{n}: offset {rec.offset} s is past the end ({length:.2f} s) of {rec.audio}")
    return rep


def write_manifest(records: list[dict[str, Any]], path: str | Path) -> None:
    """Write records atomically (a temp file renamed into place)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(p)
