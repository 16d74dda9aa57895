"""Text from a scene's exact timeline: captions in several phrasings, question-answer pairs,
multi-turn dialogues whose follow-ups refer back to earlier turns, and CLAP negatives (the same
words with order or attribute binding altered)."""

from __future__ import annotations

import copy

import numpy as np

from audioflamingo.data.synth.scenes import Event, Scene

NUMBERS = ["zero", "one", "two", "three", "four"]
PHRASINGS = 3


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _pitch(e: Event) -> str:
    return "" if e.attrs.get("pitch") in (None, "mid") else e.attrs["pitch"] + " "


def phrase(e: Event, v: int) -> str:
    """A noun phrase for one event, phrasing v (0..2)."""
    a = e.attrs
    if e.kind == "instrument" and "tempo" not in a:  # a recording: no known tempo or register
        return [f"{_a(e.label)} playing", f"the sound of {_a(e.label)}", f"{_a(e.label)} being played"][v]
    if e.kind == "instrument":
        p, t = _pitch(e), a["tempo"]
        return [f"a {t} {p}{e.label} melody", f"{_a(e.label)} playing a {t} {p}tune", f"{t} {p}notes on {_a(e.label)}"][
            v
        ]
    if e.kind == "speech":
        who = "man" if a["gender"] == "male" else "woman"
        lang = a["language"].capitalize()
        return [
            f"a {who} speaking {lang}",
            f"a {a['gender']} voice talking in {lang}",
            f"a {who} saying something in {lang}",
        ][v]
    if e.kind == "everyday":
        return [e.label, f"the sound of {e.label}", f"{e.label} in the recording"][v]
    if e.kind == "alert":
        return {
            "bell": ["a bell ringing", "a ringing bell", "the sound of a bell"],
            "phone ringing": ["a phone ringing", "a ringing telephone", "the ring of a phone"],
            "camera shutter": ["a camera shutter clicking", "the click of a camera shutter", "a camera shutter"],
            "chime": ["a notification chime", "an electronic chime", "a short chime"],
        }[e.label][v]
    if e.kind == "beep":
        ln, p = a["length"], a["pitch"]
        return [
            f"a {ln} {p} beep",
            f"a {'brief' if ln == 'short' else 'long'} {p}-pitched beep",
            f"one {ln}, {p} beep",
        ][v]
    if e.kind == "noise":
        c = a["colour"]
        return [f"a burst of {c} noise", f"{c} noise hissing", f"a short hiss of {c} noise"][v]
    if e.kind == "chirp":
        d = a["direction"]
        way = "upward" if d == "rising" else "downward"
        return [f"a {d} chirp", f"a tone sweeping {way}", f"an {way} sweeping chirp"][v]
    if e.kind == "ticking":
        t = a["tempo"]
        return [f"{t} ticking", f"a {t} clicking sound", f"something ticking {'quickly' if t == 'fast' else 'slowly'}"][
            v
        ]
    raise ValueError(e.kind)


_JOIN = {
    1: ["{0}", "the recording contains {0}", "there is {0}"],
    2: ["{0}, then {1}", "first {0}, followed by {1}", "{0}, and after that {1}"],
    3: ["{0}, then {1}, then {2}", "first {0}, followed by {1} and then {2}", "{0}, after that {1}, and finally {2}"],
}
_LEAD = ["after a short silence, ", "following a pause, ", "after a moment of silence, "]
_BED = [" over faint background noise", " with a faint hiss in the background", " over a quiet noise bed"]


def caption(scene: Scene, v: int, events: list[Event] | None = None) -> str:
    events = scene.events if events is None else events
    text = _JOIN[len(events)][v].format(*[phrase(e, v) for e in events])
    if scene.lead_silence >= 1.0:
        text = _LEAD[v] + text
    if scene.background:
        text += _BED[v]
    return text[0].upper() + text[1:] + "."


def ident(e: Event) -> str:
    """The short answer naming an event."""
    if e.kind == "instrument":
        return _a(e.label)
    if e.kind == "speech":
        return "a man speaking" if e.attrs["gender"] == "male" else "a woman speaking"
    if e.kind == "everyday":
        return e.label
    return {
        "bell": "a bell",
        "phone ringing": "a phone ringing",
        "camera shutter": "a camera shutter",
        "chime": "a chime",
        "beep": "a beep",
        "noise": "noise",
        "chirp": "a chirp",
        "ticking": "ticking",
    }[e.label]


def _unique(scene: Scene, e: Event) -> bool:
    return sum(ident(x) == ident(e) for x in scene.events) == 1


# Question templates per kind. The phrasing is drawn with the corpus' rng, never from the answer
# (the first corpus asked "How many sounds are there?" for even counts and "How many distinct sounds
# can you hear?" for odd ones, and the model learnt the phrasing). Options named in a question are
# shuffled for the same reason. Template 0 is the canonical phrasing (what `questions(scene)` gives
# without an rng).
TEMPLATES: dict[str, list[str]] = {
    "count": [
        "How many sounds are there?",
        "How many distinct sounds can you hear?",
        "How many separate sounds does the recording contain?",
        "Count the sounds: how many are there?",
    ],
    "first": [
        "What do you hear first?",
        "What is the first sound?",
        "Which sound comes first?",
        "What sound opens the recording?",
    ],
    "second": ["What is the second sound?", "What do you hear second?", "Which sound comes second?"],
    "last": [
        "What is the last sound?",
        "What do you hear last?",
        "Which sound comes last?",
        "What sound ends the recording?",
    ],
    "instruments": [
        "Which instruments can you hear?",
        "What instruments are playing?",
        "Name the instruments you hear.",
        "Which musical instruments are in the recording?",
    ],
    "speaking": [
        "Is anyone speaking?",
        "Can you hear someone speak?",
        "Is there speech in the recording?",
        "Does anyone talk in this clip?",
    ],
    "silence": [
        "Does the recording begin with silence?",
        "Is the start of the clip silent?",
        "Is there silence before the first sound?",
        "Does the clip open with a pause?",
    ],
    "duration": [
        "How long is the recording?",
        "What is the length of the clip?",
        "How many seconds does the recording last?",
        "How long does the clip last?",
    ],
    "pitch": ["Is {ref} {x} or {y}?", "Is {ref} {x}-pitched or {y}-pitched?", "Does {ref} sound {x} or {y}?"],
    "tempo": ["Is {ref} {x} or {y}?", "Is the pace of {ref} {x} or {y}?", "Does {ref} sound {x} or {y}?"],
    "length": ["Is {ref} {x} or {y}?", "Does {ref} last a {x} or a {y} time?", "Would you call {ref} {x} or {y}?"],
    "direction": ["Is {ref} {x} or {y}?", "Is the pitch of {ref} {x} or {y}?", "Does {ref} sound {x} or {y}?"],
    "colour": [
        "What colour of noise is {ref}?",
        "Is {ref} white, pink or brown noise?",
        "Which colour of noise do you hear in {ref}?",
    ],
    "gender": ["Is the voice {x} or {y}?", "Does the speaker sound {x} or {y}?", "Is the speaker's voice {x} or {y}?"],
    "language": [
        "What language is spoken?",
        "Which language is the speaker using?",
        "In what language is the speech?",
        "What language do you hear?",
    ],
    "after": [
        "What comes after {ref}?",
        "What do you hear after {ref}?",
        "Which sound follows {ref}?",
        "What is heard right after {ref}?",
    ],
    "before": ["What comes before {ref}?", "What do you hear before {ref}?", "Which sound precedes {ref}?"],
    "louder": ["Which is louder, {x} or {y}?", "Which sounds louder: {x} or {y}?", "Of {x} and {y}, which is louder?"],
}
# The two options a binary question names, in canonical order.
_OPTIONS = {
    "pitch": ("high", "low"),
    "tempo": ("fast", "slow"),
    "length": ("short", "long"),
    "direction": ("rising", "falling"),
    "gender": ("male", "female"),
}


def ask(
    kind: str, rng: np.random.Generator | None = None, ref: str = "", options: tuple[str, str] | None = None
) -> str:
    """One question of `kind`: phrasing and option order drawn from rng (canonical without one)."""
    templates = TEMPLATES[kind]
    text = templates[int(rng.integers(len(templates))) if rng is not None else 0]
    x, y = options or _OPTIONS.get(kind, ("", ""))
    if rng is not None and rng.random() < 0.5:
        x, y = y, x
    return text.format(ref=ref, x=x, y=y)


def _attribute_questions(e: Event, ref: str, rng: np.random.Generator | None = None) -> list[tuple[str, str, str]]:
    """(question, answer, kind) about one event; `ref` is how the question names it ("the violin", "it").

    Pitch is asked only of a source that plays both registers: an instrument heard only high (or
    only low) would let the question's instrument name carry the answer."""
    a, out = e.attrs, []
    if e.kind in ("instrument", "beep") and a.get("pitch") in ("high", "low") and a.get("pitch_varies", True):
        out.append((ask("pitch", rng, ref), a["pitch"], "pitch"))
    if e.kind in ("instrument", "ticking") and "tempo" in a:
        out.append((ask("tempo", rng, ref), a["tempo"], "tempo"))
    if e.kind == "beep":
        out.append((ask("length", rng, ref), a["length"], "length"))
    if e.kind == "chirp":
        out.append((ask("direction", rng, ref), a["direction"], "direction"))
    if e.kind == "noise":
        out.append((ask("colour", rng, ref), a["colour"], "colour"))
    if e.kind == "speech":
        out.append((ask("gender", rng), a["gender"], "gender"))
        out.append((ask("language", rng), a["language"], "language"))
    return out


def questions(scene: Scene, rng: np.random.Generator | None = None) -> list[tuple[str, str, str]]:
    """Every (question, answer, kind) the timeline answers; phrasings drawn from rng, never from the answer."""
    ev, out = scene.events, []
    n = len(ev)
    out.append((ask("count", rng), NUMBERS[n], "count"))
    out.append((ask("first", rng), ident(ev[0]), "first"))
    if n > 1:
        out.append((ask("last", rng), ident(ev[-1]), "last"))
    inst = [e.label for e in ev if e.kind == "instrument"]
    out.append((ask("instruments", rng), " and ".join(inst) if inst else "none", "instruments"))
    speech = [e for e in ev if e.kind == "speech"]
    out.append((ask("speaking", rng), "yes" if speech else "no", "speaking"))
    out.append((ask("silence", rng), "yes" if scene.lead_silence >= 1.0 else "no", "silence"))
    secs = int(round(scene.duration))
    out.append((ask("duration", rng), f"about {NUMBERS[secs] if secs < 5 else secs} seconds", "duration"))
    for i, e in enumerate(ev):
        if not _unique(scene, e):
            continue
        name = ident(e)
        ref = (
            "the " + (name.split(" ", 1)[1] if name.startswith(("a ", "an ")) else name)
            if e.kind != "speech"
            else "the speaker"
        )
        if e.kind != "speech" or len(speech) == 1:
            out += _attribute_questions(e, ref, rng)
        if e.kind != "speech":
            out.append((ask("after", rng, ref), ident(ev[i + 1]) if i + 1 < n else "nothing", "after"))
    if n >= 2 and _unique(scene, ev[0]) and _unique(scene, ev[1]) and abs(ev[0].level_db - ev[1].level_db) >= 8:
        louder = ev[0] if ev[0].level_db > ev[1].level_db else ev[1]
        out.append((ask("louder", rng, options=(ident(ev[0]), ident(ev[1]))), ident(louder), "louder"))
    return out


def dialogue(scene: Scene, rng: np.random.Generator, kinds: bool = False) -> list[dict[str, str]]:
    """Turn 1 names an event; the follow-ups ask about "it" or what surrounds it. kinds: each turn
    also carries its question kind (for checks; manifests hold user/assistant only)."""
    ev = scene.events
    options = [("first", 0)]
    if len(ev) > 1:
        options += [("second", 1), ("last", len(ev) - 1)]
    kind, i = options[int(rng.integers(len(options)))]
    e = ev[i]
    turns = [{"user": ask(kind, rng), "assistant": ident(e), "kind": kind}]
    follow = _attribute_questions(e, "it", rng)
    follow.append((ask("after", rng, "it"), ident(ev[i + 1]) if i + 1 < len(ev) else "nothing", "after"))
    follow.append((ask("before", rng, "it"), ident(ev[i - 1]) if i > 0 else "nothing", "before"))
    for k in rng.permutation(len(follow))[: int(rng.integers(1, 3))]:
        turns.append({"user": follow[k][0], "assistant": follow[k][1], "kind": follow[k][2]})
    return turns if kinds else [{"user": t["user"], "assistant": t["assistant"]} for t in turns]


_FLIP = {
    "pitch": {"high": "low", "low": "high"},
    "tempo": {"fast": "slow", "slow": "fast"},
    "gender": {"male": "female", "female": "male"},
    "direction": {"rising": "falling", "falling": "rising"},
    "length": {"short": "long", "long": "short"},
}


def negatives(scene: Scene, rng: np.random.Generator, instruments: list[str], per_phrasing: int = 2) -> list[str]:
    """Compositional negatives: order swapped, one attribute flipped, or an instrument replaced."""
    variants = []
    if len(scene.events) >= 2:
        ev = list(scene.events)
        ev[0], ev[1] = ev[1], ev[0]
        variants.append(ev)
    for k, e in enumerate(scene.events):
        for key, flip in _FLIP.items():
            if e.attrs.get(key) in flip:
                ev = copy.deepcopy(scene.events)
                ev[k].attrs[key] = flip[e.attrs[key]]
                variants.append(ev)
        if e.kind == "instrument":
            ev = copy.deepcopy(scene.events)
            ev[k].label = str(rng.choice([x for x in instruments if x != e.label]))
            variants.append(ev)
    rng.shuffle(variants)
    return [caption(scene, v, ev) for ev in variants[:per_phrasing] for v in range(PHRASINGS)]
