"""From manifest records to training samples: rendered template + the audio segments it needs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from audioflamingo.data.manifest import Record
from audioflamingo.text.templates import (
    DEFAULT_INSTRUCTIONS,
    TASK_DESCRIPTIONS,
    Example,
    Rendered,
    render_dialogue,
    render_interleaved,
    render_single,
    tokenize,
)


@dataclass(frozen=True)
class AudioRef:
    path: Path
    offset: float = 0.0
    duration: float | None = None


def _ref(r: Record) -> AudioRef:
    return AudioRef(r.audio, r.offset, r.duration)


def _example(r: Record) -> Example:
    instruction = r.instruction or DEFAULT_INSTRUCTIONS.get(r.task, "")
    return Example(instruction, r.output, r.options if r.task == "classify" else None)


def _lower(r: Rendered, lowercase: bool) -> Rendered:
    """The official recipe lower-cases all training text; special tokens keep their spelling."""
    if not lowercase:
        return r
    specials = {"<audio>", "<SEP>", "<EOC>"}
    return Rendered(
        [(t if t in specials or t.startswith("<") and t.endswith(">") else t.lower(), g) for t, g in r.segments]
    )


def render_record(r: Record, tokenizer, shots: Sequence[Record] = (), lowercase: bool = False):
    """(Rendered, [AudioRef]) for one record; with shots, the interleaved ICL template."""
    task = r.task_description or TASK_DESCRIPTIONS[r.task]
    if r.task == "dialogue":
        turns = [(t["user"], t["assistant"]) for t in (r.turns or [])]
        return _lower(render_dialogue(turns, tokenizer, task=task), lowercase), [_ref(r)]
    if r.shots and not shots:  # inline examples (e.g. label-renamed episodes, data/icl.py)
        ex = [
            Example(s.get("instruction", ""), s["output"], s.get("options") if r.task == "classify" else None)
            for s in r.shots
        ]
        rendered = render_interleaved(task, ex, _example(r), tokenizer)
        return _lower(rendered, lowercase), [AudioRef(Path(s["audio"])) for s in r.shots] + [_ref(r)]
    if shots:
        rendered = render_interleaved(task, [_example(s) for s in shots], _example(r), tokenizer)
        return _lower(rendered, lowercase), [_ref(s) for s in shots] + [_ref(r)]
    return _lower(render_single(task, _example(r), tokenizer), lowercase), [_ref(r)]


def tokenized_with_budget(r: Record, tokenizer, shots: Sequence[Record], max_tokens: int, lowercase: bool = False):
    """Drop the farthest shots (retrieved or inline) until the sample fits `max_tokens`; a lone
    sample is cut at the end. Cutting an ICL sample instead would cut off its answer, the only
    token that teaches reading the examples."""
    shots = list(shots)
    while True:
        rendered, refs = render_record(r, tokenizer, shots, lowercase)
        ids, labels = tokenize(rendered, tokenizer)
        if len(ids) <= max_tokens or not (shots or r.shots):
            return ids[:max_tokens], labels[:max_tokens], refs
        if shots:
            shots = shots[1:]
        else:
            r = replace(r, shots=r.shots[1:] or None)
