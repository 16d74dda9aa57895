"""The paper's three prompt templates, rendered as segments so the loss mask is exact.

    single:      <s>{task}<audio>{instruction}[\nOptions:\n- a\n- b\n]<SEP>{output}<EOC></s>
    dialogue:    <s>The task is dialogue.<audio>\nuser: {i1}\nassistant: <SEP>{o1}<EOC>\nuser: ...</s>
    interleaved: <s>{task}Here are similar samples.\n<audio>{i1}<SEP>{o1}<EOC>\n...<audio>{i}<SEP>{o}<EOC></s>

`<s>`/`</s>` stand for the tokenizer's own BOS/EOS (omitted where it has none). Loss covers every
output, its `<EOC>`, and the final EOS; nothing else. An inference prompt is the same rendering cut
right after the last `<SEP>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from audioflamingo.text.tokenizer import AUDIO, EOC, SEP

TASK_DESCRIPTIONS = {
    "caption": "The task is audio captioning.",
    "aqa": "The task is audio question answering.",
    "classify": "The task is audio classification.",
    "dialogue": "The task is dialogue.",
}
DEFAULT_INSTRUCTIONS = {
    "caption": "Describe the sound in a sentence.",
    "classify": "Which label best describes the sound?",
}
ICL_HEADER = "Here are similar samples.\n"
IGNORE = -100
# The official AF1 inference prompts (REFERENCE.md 8), for converted official checkpoints:
#   single:   <s>{task description, lower-cased} <audio>{instruction, lower-cased}\nanswer:<SEP>
#   dialogue: <s>the task is dialog.<audio>user: {u} \nassistant: <SEP>{a}<|endofchunk|>...
STYLES = ("paper", "af1")
OFFICIAL_EOC = "<|endofchunk|>"


@dataclass
class Example:
    """One (audio, instruction, output) item; `output=None` marks the item to be generated."""

    instruction: str
    output: str | None = None
    options: Sequence[str] | None = None


@dataclass
class Rendered:
    segments: list[tuple[str, bool]] = field(default_factory=list)  # (text, counts in the loss)

    @property
    def text(self) -> str:
        return "".join(s for s, _ in self.segments)

    def add(self, text: str, target: bool = False) -> None:
        if text:
            self.segments.append((text, target))


def options_block(options: Sequence[str] | None) -> str:
    if not options:
        return ""
    return "\nOptions:\n" + "".join(f"- {o}\n" for o in options)


def _bos(r: Rendered, tokenizer) -> None:
    if tokenizer is not None and tokenizer.bos_token is not None:
        r.add(tokenizer.bos_token)


def _answer(r: Rendered, output: str | None, tokenizer, last: bool) -> bool:
    """Append `<SEP>{output}<EOC>` (and EOS if last); return False when this is the open prompt."""
    r.add(SEP)
    if output is None:
        return False
    r.add(output, True)
    r.add(EOC, True)
    if last and tokenizer is not None and tokenizer.eos_token is not None:
        r.add(tokenizer.eos_token, True)
    return True


def render_single(task: str, ex: Example, tokenizer=None, style: str = "paper") -> Rendered:
    r = Rendered()
    _bos(r, tokenizer)
    if style == "af1":
        r.add(task.lower() + " ")
        r.add(AUDIO)
        r.add((ex.instruction + options_block(ex.options)).lower() + "\nanswer:")
    else:
        r.add(task)
        r.add(AUDIO)
        r.add(ex.instruction + options_block(ex.options))
    _answer(r, ex.output, tokenizer, last=True)
    return r


def render_interleaved(task: str, shots: Sequence[Example], query: Example, tokenizer=None) -> Rendered:
    """The ICL template: k retrieved examples, each with its own audio, then the query."""
    r = Rendered()
    _bos(r, tokenizer)
    r.add(task + ICL_HEADER)
    for ex in shots:
        if ex.output is None:
            raise ValueError("in-context examples need an output")
        r.add(AUDIO)
        r.add(ex.instruction + options_block(ex.options))
        r.add(SEP)
        r.add(ex.output, True)
        r.add(EOC, True)
        r.add("\n")
    r.add(AUDIO)
    r.add(query.instruction + options_block(query.options))
    _answer(r, query.output, tokenizer, last=True)
    return r


def render_dialogue(
    turns: Sequence[tuple[str, str | None]],
    tokenizer=None,
    task: str = TASK_DESCRIPTIONS["dialogue"],
    style: str = "paper",
) -> Rendered:
    """turns: (user, assistant) pairs; the last assistant may be None (the turn to generate)."""
    r = Rendered()
    _bos(r, tokenizer)
    r.add("the task is dialog." if style == "af1" else task)
    r.add(AUDIO)
    for n, (user, assistant) in enumerate(turns):
        last = n == len(turns) - 1
        if assistant is None and not last:
            raise ValueError("only the last dialogue turn may be unanswered")
        if style == "af1":
            r.add(f"{'' if n == 0 else chr(10)}user: {user} \nassistant: ")
        else:
            r.add(f"\nuser: {user}\nassistant: ")
        _answer(r, assistant, tokenizer, last=last)
    return r


def in_vocab(tokenizer, token: str) -> bool:
    """Whether `token` is one token of the vocabulary. Asked by id, not through `get_vocab()`, which
    builds a fresh dict of the whole vocabulary (30 ms for SmolLM2's 49k tokens) on every call."""
    i = tokenizer.convert_tokens_to_ids(token)
    return i is not None and (i != tokenizer.unk_token_id or token == tokenizer.unk_token)


def tokenize(rendered: Rendered, tokenizer) -> tuple[list[int], list[int]]:
    """Token ids and labels (IGNORE outside outputs). Segments meet at special tokens, so encoding
    them one by one gives the same ids as encoding the whole string."""
    ids: list[int] = []
    labels: list[int] = []
    for text, target in rendered.segments:
        if text == EOC and not in_vocab(tokenizer, EOC) and in_vocab(tokenizer, OFFICIAL_EOC):
            text = OFFICIAL_EOC  # official checkpoints spell it so
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        labels.extend(piece if target else [IGNORE] * len(piece))
    return ids, labels
