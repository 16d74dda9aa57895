"""`audioflamingo data validate`: every problem of a manifest at once, as `file:line: problem`.

Beyond the schema: invalid UTF-8 lines, an empty manifest, duplicate ids, audio that is missing, a
directory, a symlink loop or a broken link, unreadable, empty, shorter than its offset, or holding
NaN/infinite samples, and audio paths that resolve outside the data root.

Data root: audio paths (relative ones resolve against the manifest's folder; absolute ones are
allowed) must resolve, symlinks followed, inside the manifest's folder, or inside `root` when one is
given (`--root DIR`: a corpus whose manifests sit in subfolders next to its audio). A manifest
from elsewhere that points at `../../home/you/.ssh/...` or `/etc/...` is flagged before any command
reads those files. Training and inference read the paths as written; validating is the check.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audioflamingo.data.manifest import Report, _explain, _record, _schema_validator
from audioflamingo.files import missing_reason

BLOCK = 1 << 16  # samples per channel read at a time when scanning for NaN/inf


def _decoded_lines(raw: bytes, p: Path, rep: Report):
    """(line number, text) of each line; a line that is not UTF-8 is a problem, not a crash."""
    for n, line in enumerate(raw.split(b"\n"), 1):
        try:
            yield n, line.decode("utf-8")
        except UnicodeDecodeError as err:
            rep.problems.append(f"{p}:{n}: not valid UTF-8 (byte {err.start + 1} of the line)")


def _outside(audio: Path, root: Path) -> str | None:
    """Where `audio` really is, when that is outside `root` (None when inside)."""
    try:
        real = audio.resolve()
    except (OSError, RuntimeError):  # a symlink loop: reported by the existence check
        return None
    return None if real == root or root in real.parents else str(real)


def _non_finite(path: Path, info, offset: float, duration: float | None) -> bool:
    """Whether the samples the record uses hold NaN or inf (only float files can)."""
    import soundfile as sf

    if info.subtype not in ("FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III"):
        return False
    start = int(round(offset * info.samplerate))
    frames = -1 if duration is None else int(round(duration * info.samplerate))
    for block in sf.blocks(str(path), blocksize=BLOCK, start=start, frames=frames, dtype="float32", always_2d=True):
        if not np.isfinite(block).all():
            return True
    return False


def _check_audio(p: Path, n: int, audio: Path, rec, rep: Report) -> None:
    import soundfile as sf

    reason = missing_reason(audio)
    if reason:
        what = {
            "file not found": "audio file not found",
            "is a directory, not a file": "audio path is a directory, not a file",
        }.get(reason, f"audio path is a {reason}" if reason.startswith(("symlink", "broken")) else f"audio {reason}")
        rep.problems.append(f"{p}:{n}: {what}: {audio}")
        return
    try:
        info = sf.info(str(audio))
    except Exception:  # noqa: BLE001 - libsndfile reports every parse failure alike
        rep.problems.append(f"{p}:{n}: unreadable audio: {audio}")
        return
    length = info.frames / info.samplerate if info.samplerate else 0
    if info.frames == 0:
        rep.problems.append(f"{p}:{n}: zero-length audio: {audio}")
    elif rec.offset >= length:
        rep.problems.append(f"{p}:{n}: offset {rec.offset} s is past the end ({length:.2f} s) of {audio}")
    else:
        try:
            bad = _non_finite(audio, info, rec.offset, rec.duration)
        except Exception:  # noqa: BLE001 - damage past the header
            rep.problems.append(f"{p}:{n}: unreadable audio (fails part-way through): {audio}")
            return
        if bad:
            rep.problems.append(f"{p}:{n}: audio contains NaN or infinite samples: {audio}")


def validate_manifest(
    path: str | Path, check_audio: bool = True, progress: bool = False, root: str | Path | None = None
) -> Report:
    """Every problem of a manifest at once, as `file:line: problem`, plus counts per task."""
    from tqdm import tqdm

    p = Path(path)
    rep = Report(str(p))
    reason = missing_reason(p)
    if reason:
        rep.problems.append(f"{p}: {reason}")
        return rep
    base = Path(root) if root else p.parent
    where = "the manifest's folder" if root is None else f"--root {root}"
    base = base.resolve()
    validator = _schema_validator()
    seen: dict[str, int] = {}
    lines = list(_decoded_lines(p.read_bytes(), p, rep))
    for n, line in tqdm(lines, desc="validate", unit="line", disable=not progress):
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
        audios = ([rec.audio] if rec.audio is not None else []) + [Path(s["audio"]) for s in rec.shots or []]
        for audio in audios:
            real = _outside(audio, base)
            if real is not None:
                rep.problems.append(
                    f"{p}:{n}: audio {audio} resolves to {real}, outside {where} "
                    "(pass --root DIR to accept audio under DIR)"
                )
            elif check_audio and audio == rec.audio:
                _check_audio(p, n, audio, rec, rep)
    if rep.records == 0:
        rep.problems.append(
            f"{p}: no records"
            + (" (the file is empty)" if not any(l.strip() for _, l in lines) else " that pass the schema")
        )
    return rep
