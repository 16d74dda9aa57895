"""Source recordings for the synthetic corpus: real sampled instruments, synthetic voices, packaged
sound effects, and procedural signals, each with exact attributes.

Real sources come from Debian packages installed by `make synth-deps` (needed only to regenerate
the corpus, never to run a model):
- `fluid-soundfont-gm` + `fluidsynth`: FluidR3 General MIDI, sampled acoustic instruments;
- `espeak-ng`: formant speech, male and female variants, four languages;
- `sound-theme-freedesktop`: recorded/produced alert sounds (bell, phone, shutter, chimes).

A *recording* is one rendered phrase, utterance or file; the split (train / val / test / novel) is
decided per recording, so test clips never reuse a recording heard in training.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SR = 16000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")

# name -> (General MIDI program, lowest note, highest note)
KNOWN_INSTRUMENTS = {
    "piano": (0, 36, 96), "harpsichord": (6, 41, 89), "glockenspiel": (9, 72, 105), "organ": (19, 36, 91),
    "guitar": (24, 40, 84), "bass": (32, 28, 55), "violin": (40, 55, 96), "cello": (42, 36, 76),
    "trumpet": (56, 55, 82), "saxophone": (65, 49, 81), "clarinet": (71, 50, 91), "flute": (73, 60, 96),
}
# Never named in training: the few-shot evaluation's new labels.
NOVEL_INSTRUMENTS = {
    "marimba": (12, 45, 96), "accordion": (21, 53, 89), "harmonica": (22, 60, 84), "sitar": (104, 48, 77),
    "banjo": (105, 48, 84), "steel drums": (114, 52, 88),
}
VOICES = {"m1": "male", "m3": "male", "m7": "male", "f1": "female", "f3": "female", "f5": "female"}
LANGUAGES = {"english": "en", "german": "de", "french": "fr", "spanish": "es"}
_WORDS = {
    "english": ("the cat|a farmer|my sister|the old train|our teacher|a small bird|the river|his brother",
                "sees|finds|carries|likes|follows|paints|opens|calls",
                "a red box|the window|the garden|some bread|a letter|the door|a blue boat|the market"),
    "german": ("der Hund|die Katze|mein Vater|das Kind|die Lehrerin|ein Vogel|der Bauer|unsere Oma",
               "sieht|findet|trägt|mag|malt|öffnet|ruft|sucht",
               "das Fenster|den Garten|ein Buch|die Tür|den Zug|einen Brief|das Brot|den Ball"),
    "french": ("le chat|une fille|mon frère|le vieux train|notre professeur|un oiseau|la rivière|ma mère",
               "voit|trouve|porte|aime|suit|peint|ouvre|appelle",
               "la fenêtre|le jardin|du pain|une lettre|la porte|un bateau|le marché|la clé"),
    "spanish": ("el gato|una niña|mi hermano|el viejo tren|nuestro maestro|un pájaro|el río|mi madre",
                "ve|encuentra|lleva|quiere|sigue|pinta|abre|llama",
                "la ventana|el jardín|el pan|una carta|la puerta|un barco|el mercado|la llave"),
}
# freedesktop file stem -> label; chimes are many files, so they are the only alerts in every split.
ALERTS = {"bell": "bell", "phone-incoming-call": "phone ringing", "phone-outgoing-calling": "phone ringing",
          "camera-shutter": "camera shutter", "screen-capture": "camera shutter"}
CHIMES = ("complete", "message", "message-new-instant", "dialog-information", "dialog-warning", "window-attention",
          "service-login", "service-logout", "device-added", "device-removed", "power-plug", "power-unplug",
          "network-connectivity-established", "network-connectivity-lost", "audio-volume-change", "dialog-error",
          "trash-empty", "window-question", "suspend-error", "alarm-clock-elapsed")


@dataclass
class Recording:
    id: str
    kind: str  # instrument | speech | alert
    label: str
    wave: np.ndarray
    split: str
    attrs: dict = field(default_factory=dict)


def split_of(key: str, val: float = 0.1, test: float = 0.15) -> str:
    """A stable split from a recording's identity (not from the seed: a recording keeps its split)."""
    u = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "val" if u < test + val else "train"


def check_tools() -> None:
    missing = [n for n, ok in (("fluidsynth", shutil.which("fluidsynth")), ("espeak-ng", shutil.which("espeak-ng")),
                               (str(SOUNDFONT), SOUNDFONT.is_file()), (str(FREEDESKTOP), FREEDESKTOP.is_dir())) if not ok]
    if missing:
        raise RuntimeError(f"corpus sources missing: {', '.join(missing)} (run `make synth-deps` as root: "
                           "apt-get install fluidsynth fluid-soundfont-gm espeak-ng sound-theme-freedesktop)")


def _read(path: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return soxr.resample(x, sr, SR, quality="HQ").astype(np.float32) if sr != SR else x


def _trim(x: np.ndarray, floor_db: float = -50.0) -> np.ndarray:
    """Cut leading/trailing near-silence so event times in the timeline are exact."""
    env = np.abs(x)
    thr = env.max() * 10 ** (floor_db / 20) if env.size and env.max() > 0 else 0
    idx = np.flatnonzero(env > thr)
    return x[idx[0] : idx[-1] + 1] if idx.size else x[:0]


def _registers(lo: int, hi: int) -> dict[str, tuple[int, int]]:
    mid_note = (lo + hi) // 2
    return {"low": (lo, min(mid_note, 59)), "high": (max(mid_note, 67), hi)}


def pitch_varies(lo: int, hi: int) -> bool:
    """Whether an instrument plays both a low and a high register (else its pitch is its name's)."""
    return all(a <= b for a, b in _registers(lo, hi).values())


def plan_phrase(lo: int, hi: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, float, str, str]:
    """Phrase k of an instrument: (MIDI notes, note length s, tempo, pitch label). Register is k % 2,
    tempo (k // 2) % 2, so every four phrases hold each register x tempo."""
    register = "low" if k % 2 == 0 else "high"
    tempo = "slow" if (k // 2) % 2 == 0 else "fast"
    lo_r, hi_r = _registers(lo, hi)[register]
    if lo_r > hi_r:  # the instrument cannot play in this register: use its own range
        lo_r, hi_r = lo, hi
    note_len = rng.uniform(0.45, 0.7) if tempo == "slow" else rng.uniform(0.14, 0.22)
    n = int(rng.integers(3, 6)) if tempo == "slow" else int(rng.integers(8, 14))
    notes = rng.integers(lo_r, hi_r + 1, size=n)
    mean = float(notes.mean())
    return notes, note_len, tempo, "high" if mean >= 67 else "low" if mean <= 57 else "mid"


def render_phrases(name: str, program: int, lo: int, hi: int, count: int, rng: np.random.Generator,
                   split_fn) -> list[Recording]:
    """`count` phrases of one instrument in one fluidsynth call (a MIDI file with long gaps)."""
    import mido

    tpb, gap = 480, 2.0  # 120 bpm: 960 ticks per second
    mid = mido.MidiFile(ticks_per_beat=tpb)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.Message("program_change", program=program, channel=0, time=0))
    plan, t = [], 0.0
    for k in range(count):
        notes, note_len, tempo, pitch = plan_phrase(lo, hi, k, rng)
        n = notes.size
        ticks = int(note_len * 960)
        first = True
        for note in notes:
            tr.append(mido.Message("note_on", note=int(note), velocity=100, channel=0,
                                   time=int(gap * 960) if (first and k) else 0))
            tr.append(mido.Message("note_off", note=int(note), velocity=0, channel=0, time=ticks))
            first = False
        plan.append((t, n * note_len, pitch, tempo, n))
        t += n * note_len + gap
    with tempfile.TemporaryDirectory() as tmp:
        mp, wp = Path(tmp) / "p.mid", Path(tmp) / "p.wav"
        mid.save(str(mp))
        subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6", "-r", str(SR), "-F", str(wp),
                        str(SOUNDFONT), str(mp)], check=True, capture_output=True)
        x = _read(wp)
    out = []
    for k, (start, dur, pitch, tempo, n) in enumerate(plan):
        seg = _trim(x[int(start * SR) : int((start + dur + 0.5) * SR)])
        rid = f"instrument/{name}/{k}"
        out.append(Recording(rid, "instrument", name, seg, split_fn(rid),
                             {"pitch": pitch, "tempo": tempo, "notes": n, "pitch_varies": pitch_varies(lo, hi)}))
    return out


def render_speech(rng: np.random.Generator, per_voice_language: int) -> list[Recording]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for lang, code in LANGUAGES.items():
            subj, verb, obj = (s.split("|") for s in _WORDS[lang])
            for variant, gender in VOICES.items():
                for _ in range(per_voice_language):
                    sentence = f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}"
                    wp = Path(tmp) / "s.wav"
                    subprocess.run(["espeak-ng", "-v", f"{code}+{variant}", "-s", str(int(rng.integers(130, 175))),
                                    "-w", str(wp), sentence], check=True, capture_output=True)
                    rid = f"speech/{lang}/{sentence}"  # the sentence decides the split: test sentences are new
                    out.append(Recording(f"{rid}/{variant}", "speech", "speech", _trim(_read(wp)), split_of(rid),
                                         {"gender": gender, "language": lang, "sentence": sentence}))
    return out


def load_alerts() -> list[Recording]:
    out = []
    for stem in list(ALERTS) + list(CHIMES):
        p = FREEDESKTOP / f"{stem}.oga"
        if not p.is_file():
            continue
        x = _trim(_read(p))[: int(3.0 * SR)]
        label = ALERTS.get(stem, "chime")
        split = "train" if stem in ALERTS else split_of(f"alert/{stem}", val=0.15, test=0.25)
        out.append(Recording(f"alert/{stem}", "alert", label, x, split))
    return out


def build_bank(rng: np.random.Generator, phrases_per_instrument: int = 40, utterances: int = 6) -> list[Recording]:
    bank = []
    for name, (prog, lo, hi) in KNOWN_INSTRUMENTS.items():
        bank += render_phrases(name, prog, lo, hi, phrases_per_instrument, rng, split_of)
    for name, (prog, lo, hi) in NOVEL_INSTRUMENTS.items():
        # novel instruments: half the phrases are the retrieval datastore, half the queries. Phrase k
        # plays register k % 2 and tempo (k // 2) % 2, so the halves are alternate blocks of four: each
        # half holds every register x tempo (a parity split put all high phrases in the datastore and
        # all low ones among the queries, which measured cross-register retrieval, not few-shot).
        bank += render_phrases(name, prog, lo, hi, 24, rng,
                               lambda rid: "novel-support" if int(rid.rsplit("/", 1)[1]) // 4 % 2 else "novel-test")
    bank += render_speech(rng, utterances)
    bank += load_alerts()
    return bank
