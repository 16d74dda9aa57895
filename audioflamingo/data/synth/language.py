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
    if e.kind == "instrument":
        p, t = _pitch(e), a["tempo"]
        return [f"a {t} {p}{e.label} melody", f"{_a(e.label)} playing a {t} {p}tune",
                f"{t} {p}notes on {_a(e.label)}"][v]
    if e.kind == "speech":
        who = "man" if a["gender"] == "male" else "woman"
        lang = a["language"].capitalize()
        return [f"a {who} speaking {lang}", f"a {a['gender']} voice talking in {lang}",
                f"a {who} saying something in {lang}"][v]
    if e.kind == "alert":
        return {"bell": ["a bell ringing", "a ringing bell", "the sound of a bell"],
                "phone ringing": ["a phone ringing", "a ringing telephone", "the ring of a phone"],
                "camera shutter": ["a camera shutter clicking", "the click of a camera shutter", "a camera shutter"],
                "chime": ["a notification chime", "an electronic chime", "a short chime"]}[e.label][v]
    if e.kind == "beep":
        ln, p = a["length"], a["pitch"]
        return [f"a {ln} {p} beep", f"a {'brief' if ln == 'short' else 'long'} {p}-pitched beep",
                f"one {ln}, {p} beep"][v]
    if e.kind == "noise":
        c = a["colour"]
        return [f"a burst of {c} noise", f"{c} noise hissing", f"a short hiss of {c} noise"][v]
    if e.kind == "chirp":
        d = a["direction"]
        way = "upward" if d == "rising" else "downward"
        return [f"a {d} chirp", f"a tone sweeping {way}", f"an {way} sweeping chirp"][v]
    if e.kind == "ticking":
        t = a["tempo"]
        return [f"{t} ticking", f"a {t} clicking sound", f"something ticking {'quickly' if t == 'fast' else 'slowly'}"][v]
    raise ValueError(e.kind)


_JOIN = {1: ["{0}", "the recording contains {0}", "there is {0}"],
         2: ["{0}, then {1}", "first {0}, followed by {1}", "{0}, and after that {1}"],
         3: ["{0}, then {1}, then {2}", "first {0}, followed by {1} and then {2}", "{0}, after that {1}, and finally {2}"]}
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
    return {"bell": "a bell", "phone ringing": "a phone ringing", "camera shutter": "a camera shutter",
            "chime": "a chime", "beep": "a beep", "noise": "noise", "chirp": "a chirp", "ticking": "ticking"}[e.label]


def _unique(scene: Scene, e: Event) -> bool:
    return sum(ident(x) == ident(e) for x in scene.events) == 1


def _attribute_questions(e: Event, ref: str) -> list[tuple[str, str]]:
    """Questions about one event; `ref` is how the question names it ("the violin", "it")."""
    a, out = e.attrs, []
    if e.kind in ("instrument", "beep") and a.get("pitch") in ("high", "low"):
        out.append((f"Is {ref} high or low?", a["pitch"]))
    if e.kind in ("instrument", "ticking"):
        out.append((f"Is {ref} fast or slow?", a["tempo"]))
    if e.kind == "beep":
        out.append((f"Is {ref} short or long?", a["length"]))
    if e.kind == "chirp":
        out.append((f"Is {ref} rising or falling?", a["direction"]))
    if e.kind == "noise":
        out.append((f"What colour of noise is {ref}?" if ref != "it" else "What colour of noise is it?", a["colour"]))
    if e.kind == "speech":
        out.append(("Is the voice male or female?", a["gender"]))
        out.append(("What language is spoken?", a["language"]))
    return out


def questions(scene: Scene) -> list[tuple[str, str]]:
    ev, out = scene.events, []
    n = len(ev)
    out.append((["How many sounds are there?", "How many distinct sounds can you hear?"][n % 2], NUMBERS[n]))
    out.append(("What do you hear first?", ident(ev[0])))
    if n > 1:
        out.append(("What is the last sound?", ident(ev[-1])))
    inst = [e.label for e in ev if e.kind == "instrument"]
    out.append(("Which instruments can you hear?", " and ".join(inst) if inst else "none"))
    speech = [e for e in ev if e.kind == "speech"]
    out.append(("Is anyone speaking?", "yes" if speech else "no"))
    out.append(("Does the recording begin with silence?", "yes" if scene.lead_silence >= 1.0 else "no"))
    out.append(("How long is the recording?", f"about {NUMBERS[int(round(scene.duration))] if round(scene.duration) < 5 else int(round(scene.duration))} seconds"))
    for i, e in enumerate(ev):
        if not _unique(scene, e):
            continue
        ref = "the " + ident(e).split(" ", 1)[-1] if e.kind != "speech" else "the speaker"
        if e.kind != "speech":
            out += _attribute_questions(e, ref)
        elif len(speech) == 1:
            out += _attribute_questions(e, ref)
        if e.kind != "speech":
            out.append((f"What comes after {ref}?", ident(ev[i + 1]) if i + 1 < n else "nothing"))
    if n >= 2 and _unique(scene, ev[0]) and _unique(scene, ev[1]) and abs(ev[0].level_db - ev[1].level_db) >= 8:
        louder = ev[0] if ev[0].level_db > ev[1].level_db else ev[1]
        out.append((f"Which is louder, {ident(ev[0])} or {ident(ev[1])}?", ident(louder)))
    return out


def dialogue(scene: Scene, rng: np.random.Generator) -> list[dict[str, str]]:
    """Turn 1 names an event; the follow-ups ask about "it" or what surrounds it."""
    ev = scene.events
    options = [("What do you hear first?", 0)]
    if len(ev) > 1:
        options += [("What is the second sound?", 1), ("What is the last sound?", len(ev) - 1)]
    q, i = options[int(rng.integers(len(options)))]
    e = ev[i]
    turns = [{"user": q, "assistant": ident(e)}]
    follow = _attribute_questions(e, "it")
    follow.append(("What comes after it?", ident(ev[i + 1]) if i + 1 < len(ev) else "nothing"))
    follow.append(("What comes before it?", ident(ev[i - 1]) if i > 0 else "nothing"))
    for k in rng.permutation(len(follow))[: int(rng.integers(1, 3))]:
        turns.append({"user": follow[k][0], "assistant": follow[k][1]})
    return turns


_FLIP = {"pitch": {"high": "low", "low": "high"}, "tempo": {"fast": "slow", "slow": "fast"},
         "gender": {"male": "female", "female": "male"}, "direction": {"rising": "falling", "falling": "rising"},
         "length": {"short": "long", "long": "short"}}


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
