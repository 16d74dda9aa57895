"""Source recordings for the synthetic corpus: sampled and recorded instruments, synthetic and
recorded voices, recorded everyday sounds, and procedural signals, each with exact attributes and
tagged with its source (the sample set, voice or collection it came from).

Every source comes from a Debian package installed by `make synth-deps` (needed only to regenerate
the corpus, never to run a model); SOURCES lists them. Several independent sources per kind:
- instruments: FluidR3 (`fluid-soundfont-gm`, rendered by `fluidsynth`), Freepats (`freepats`,
  rendered by `timidity`), GCompris' recorded instruments (`gcompris-qt-data`);
- speech: `espeak-ng` (six voice variants, six languages), Festival (`festival` + `festvox-*`:
  English, Italian, Russian voices), `flite` (four English voices), and studio-recorded Asterisk
  prompts (`asterisk-core-sounds-it-wav`, `-ru-wav`, `asterisk-prompt-it-menardi-wav`);
- alerts: `sound-theme-freedesktop`; everyday and animal sounds: GCompris' recordings;
- procedural beeps, noise, chirps and ticking, generated fresh for every clip.

A *recording* is one rendered phrase, utterance or file segment. Its split is decided per
recording (train / val / test), so in-source test clips never reuse a recording heard in training;
the sources in HELD_OUT are kept whole for the held-out-source test split ("heldout"): a sample
set, voices and recording collections never heard in training or in the in-source test.
Reserved for independent evaluation and never used here: timgm6mb-soundfont,
musescore-general-soundfont, klettres-data, openttd-opensfx, asterisk-core-sounds-{en,fr,es}-*,
asterisk-prompt-fr-armelle, asterisk-prompt-es-co.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audioflamingo.errors import AudioFlamingoError

SR = 16000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FREEPATS_CFG = Path("/etc/timidity/freepats.cfg")
FREEPATS = Path("/usr/share/midi/freepats/Tone_000")
FREEDESKTOP = Path("/usr/share/sounds/freedesktop/stereo")
GCOMPRIS = Path("/usr/share/gcompris-qt/rcc")
ASTERISK = Path("/usr/share/asterisk/sounds")
FESTIVAL_VOICES = Path("/usr/share/festival/voices")

# name -> (General MIDI program, lowest note, highest note)
KNOWN_INSTRUMENTS = {
    "piano": (0, 36, 96),
    "harpsichord": (6, 41, 89),
    "glockenspiel": (9, 72, 105),
    "organ": (19, 36, 91),
    "guitar": (24, 40, 84),
    "bass": (32, 28, 55),
    "violin": (40, 55, 96),
    "cello": (42, 36, 76),
    "trumpet": (56, 55, 82),
    "saxophone": (65, 49, 81),
    "clarinet": (71, 50, 91),
    "flute": (73, 60, 96),
}
# Never named in training: the few-shot evaluation's new labels.
NOVEL_INSTRUMENTS = {
    "marimba": (12, 45, 96),
    "accordion": (21, 53, 89),
    "harmonica": (22, 60, 84),
    "sitar": (104, 48, 77),
    "banjo": (105, 48, 84),
    "steel drums": (114, 52, 88),
}
VOICES = {"m1": "male", "m3": "male", "m7": "male", "f1": "female", "f3": "female", "f5": "female"}
LANGUAGES = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "russian": "ru"}
_WORDS = {
    "english": (
        "the cat|a farmer|my sister|the old train|our teacher|a small bird|the river|his brother",
        "sees|finds|carries|likes|follows|paints|opens|calls",
        "a red box|the window|the garden|some bread|a letter|the door|a blue boat|the market",
    ),
    "german": (
        "der Hund|die Katze|mein Vater|das Kind|die Lehrerin|ein Vogel|der Bauer|unsere Oma",
        "sieht|findet|trägt|mag|malt|öffnet|ruft|sucht",
        "das Fenster|den Garten|ein Buch|die Tür|den Zug|einen Brief|das Brot|den Ball",
    ),
    "french": (
        "le chat|une fille|mon frère|le vieux train|notre professeur|un oiseau|la rivière|ma mère",
        "voit|trouve|porte|aime|suit|peint|ouvre|appelle",
        "la fenêtre|le jardin|du pain|une lettre|la porte|un bateau|le marché|la clé",
    ),
    "spanish": (
        "el gato|una niña|mi hermano|el viejo tren|nuestro maestro|un pájaro|el río|mi madre",
        "ve|encuentra|lleva|quiere|sigue|pinta|abre|llama",
        "la ventana|el jardín|el pan|una carta|la puerta|un barco|el mercado|la llave",
    ),
    "italian": (
        "il gatto|una ragazza|mio fratello|il vecchio treno|il nostro maestro|un uccello|il fiume|mia madre",
        "vede|trova|porta|ama|segue|dipinge|apre|chiama",
        "la finestra|il giardino|il pane|una lettera|la porta|una barca|il mercato|la chiave",
    ),
    "russian": (
        "кошка|девочка|мой брат|старый поезд|наш учитель|маленькая птица|река|моя мама",
        "видит|находит|несёт|любит|рисует|открывает|зовёт|ищет",
        "окно|сад|хлеб|письмо|дверь|лодку|рынок|ключ",
    ),
}
# Speech engines other than espeak-ng: tag -> (command kind, voice, gender, language)
FESTIVAL = {
    "festival/kal": ("kal_diphone", "male", "english"),
    "festival/ked": ("ked_diphone", "male", "english"),
    "festival/slt": ("cmu_us_slt_arctic_hts", "female", "english"),
    "festival/lp": ("lp_diphone", "female", "italian"),
    "festival/pc": ("pc_diphone", "male", "italian"),
    "festival/nsh": ("msu_ru_nsh_clunits", "male", "russian"),
}
FLITE = {
    "flite/kal": ("kal", "male"),
    "flite/awb": ("awb", "male"),
    "flite/rms": ("rms", "male"),
    "flite/slt": ("slt", "female"),
}
# Recorded prompt collections (the folder names carry the speaker's gender).
RECORDED_SPEECH = {
    "asterisk/it-menardi": ("it_IT_f_Menardi", "female", "italian"),
    "asterisk/it-carlo": ("it_IT_m_Carlo", "male", "italian"),
    "asterisk/ru": ("ru_RU_f_IvrvoiceRU", "female", "russian"),
}
PROMPTS_PER_COLLECTION = 40
# freedesktop file stem -> label; chimes are many files, so they are the only alerts in every split.
ALERTS = {
    "bell": "bell",
    "phone-incoming-call": "phone ringing",
    "phone-outgoing-calling": "phone ringing",
    "camera-shutter": "camera shutter",
    "screen-capture": "camera shutter",
}
CHIMES = (
    "complete",
    "message",
    "message-new-instant",
    "dialog-information",
    "dialog-warning",
    "window-attention",
    "service-login",
    "service-logout",
    "device-added",
    "device-removed",
    "power-plug",
    "power-unplug",
    "network-connectivity-established",
    "network-connectivity-lost",
    "audio-volume-change",
    "dialog-error",
    "trash-empty",
    "window-question",
    "suspend-error",
    "alarm-clock-elapsed",
)
# GCompris recordings: (bundle, file stem) -> label. The label is the answer that names the sound.
GCOMPRIS_INSTRUMENTS = {
    "cello": "cello",
    "clarinet": "clarinet",
    "flute_traversiere": "flute",
    "guitar": "guitar",
    "organ": "organ",
    "piano": "piano",
    "saxophone": "saxophone",
    "trumpet": "trumpet",
    "violin": "violin",
    "accordion": "accordion",
    "banjo": "banjo",
    "harmonica": "harmonica",
}
EVERYDAY = {
    "gcompris-farm": {
        ("explore_farm_animals", s): l
        for s, l in (
            ("cat", "a cat meowing"),
            ("chickens", "chickens clucking"),
            ("cow", "a cow mooing"),
            ("dog", "a dog barking"),
            ("duck", "a duck quacking"),
            ("horse", "a horse neighing"),
            ("owl", "an owl hooting"),
            ("pig", "a pig grunting"),
            ("sheep", "a sheep bleating"),
        )
    },
    "gcompris-effects": {
        ("canal_lock", "door_open"): "a door",
        ("canal_lock", "door_close"): "a door",
        ("traffic", "car"): "a car",
        ("railroad", "train"): "a train",
        ("guessnumber", "helicopter"): "a helicopter",
        ("canal_lock", "water_fill"): "running water",
        ("money", "money1"): "coins",
        ("money", "money2"): "coins",
        ("mining", "pickaxe"): "a pickaxe striking",
        ("target", "arrow"): "an arrow",
    },
    # held out whole: the same labels from another collection
    "gcompris-memory": {
        ("memory-sound", "LRBark_1_LA_cut"): "a dog barking",
        ("memory-sound", "LRBark_3_LA_cut"): "a dog barking",
        ("memory-sound", "LRDoor_Open_2_LA"): "a door",
        ("memory-sound", "LRStartAndStopCarEngine1LACut"): "a car",
        ("memory-sound", "LRTrain_slowing_down_01_LA_cut"): "a train",
    },
}
SEGMENT_SECONDS = 2.5  # recorded files longer than this are cut into pieces of this length

# Kept whole for the held-out-source test split: a sample set, an engine, voices and collections.
HELD_OUT = (
    "freepats",
    "flite/",
    "espeak-ng/m7",
    "espeak-ng/f5",
    "asterisk/it-carlo",
    "festival/ked",
    "gcompris-memory",
)

# source -> (Debian packages, files or commands it needs)
SOURCES = {
    "fluidr3": (("fluidsynth", "fluid-soundfont-gm"), ("fluidsynth", SOUNDFONT)),
    "freepats": (("timidity", "freepats"), ("timidity", FREEPATS_CFG)),
    "gcompris": (("gcompris-qt-data",), (GCOMPRIS / "instruments.rcc",)),
    "espeak-ng": (("espeak-ng",), ("espeak-ng",)),
    "festival": (
        (
            "festival",
            "festvox-kallpc16k",
            "festvox-kdlpc16k",
            "festvox-us-slt-hts",
            "festvox-italp16k",
            "festvox-itapc16k",
            "festvox-ru",
        ),
        (
            "text2wave",
            *(
                FESTIVAL_VOICES / d
                for d in (
                    "english/kal_diphone",
                    "english/ked_diphone",
                    "us/cmu_us_slt_arctic_hts",
                    "italian/lp_diphone",
                    "italian/pc_diphone",
                    "russian/msu_ru_nsh_clunits",
                )
            ),
        ),
    ),
    "flite": (("flite",), ("flite",)),
    "asterisk": (
        ("asterisk-core-sounds-it-wav", "asterisk-core-sounds-ru-wav", "asterisk-prompt-it-menardi-wav"),
        tuple(ASTERISK / d for d, _, _ in RECORDED_SPEECH.values()),
    ),
    "freedesktop": (("sound-theme-freedesktop",), (FREEDESKTOP,)),
}
PACKAGES = tuple(dict.fromkeys(p for pk, _ in SOURCES.values() for p in pk))


@dataclass
class Recording:
    id: str
    kind: str  # instrument | speech | alert | everyday
    label: str
    wave: np.ndarray
    split: str
    attrs: dict = field(default_factory=dict)
    origin: str = ""  # its source: sample set, voice or collection ("fluidr3", "flite/slt", ...)


def held_out(origin: str) -> bool:
    return any(origin == h or (h.endswith("/") and origin.startswith(h)) for h in HELD_OUT)


def split_of(key: str, val: float = 0.1, test: float = 0.15) -> str:
    """A stable split from a recording's identity (not from the seed: a recording keeps its split)."""
    u = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "val" if u < test + val else "train"


def missing_sources(names=None) -> dict[str, str]:
    """source -> what is missing of it, for the sources named (all by default)."""
    out = {}
    for name in names or SOURCES:
        packages, needs = SOURCES[name]
        gone = [str(n) for n in needs if not (shutil.which(n) if isinstance(n, str) else Path(n).exists())]
        if gone:
            out[name] = f"{name} ({' '.join(packages)}: {', '.join(gone)} missing)"
    return out


class SourcesMissing(AudioFlamingoError, RuntimeError):
    """Corpus sources not installed: the CLI prints the one-line message, no traceback."""


def check_tools(names=None) -> None:
    missing = missing_sources(names)
    if missing:
        raise SourcesMissing(
            "corpus sources missing: " + "; ".join(missing.values()) + " - run `make synth-deps` as root"
        )


def _read(path: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return soxr.resample(x, sr, SR, quality="HQ").astype(np.float32) if sr != SR else x


def _read_bytes(blob: bytes) -> np.ndarray:
    import io

    import soundfile as sf
    import soxr

    x, sr = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
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


def has_program(synth: str, program: int) -> bool:
    return synth == "fluidr3" or any(FREEPATS.glob(f"{program:03d}_*.pat"))


def render_phrases(
    name: str, program: int, lo: int, hi: int, count: int, rng: np.random.Generator, split_fn, synth: str = "fluidr3"
) -> list[Recording]:
    """`count` phrases of one instrument in one synthesiser call (a MIDI file with long gaps):
    FluidR3 through fluidsynth, or Freepats through timidity."""
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
            tr.append(
                mido.Message(
                    "note_on", note=int(note), velocity=100, channel=0, time=int(gap * 960) if (first and k) else 0
                )
            )
            tr.append(mido.Message("note_off", note=int(note), velocity=0, channel=0, time=ticks))
            first = False
        plan.append((t, n * note_len, pitch, tempo, n))
        t += n * note_len + gap
    with tempfile.TemporaryDirectory() as tmp:
        mp, wp = Path(tmp) / "p.mid", Path(tmp) / "p.wav"
        mid.save(str(mp))
        cmd = (
            [
                "fluidsynth",
                "-ni",
                "-q",
                "-R",
                "0",
                "-C",
                "0",
                "-g",
                "0.6",
                "-r",
                str(SR),
                "-F",
                str(wp),
                str(SOUNDFONT),
                str(mp),
            ]
            if synth == "fluidr3"
            else ["timidity", "-c", str(FREEPATS_CFG), "-Ow", "-s", str(SR), "-o", str(wp), str(mp)]
        )
        subprocess.run(cmd, check=True, capture_output=True)
        x = _read(wp)
    out = []
    for k, (start, dur, pitch, tempo, n) in enumerate(plan):
        seg = _trim(x[int(start * SR) : int((start + dur + 0.5) * SR)])
        rid = f"instrument/{synth}/{name}/{k}"
        out.append(
            Recording(
                rid,
                "instrument",
                name,
                seg,
                split_fn(rid),
                {"pitch": pitch, "tempo": tempo, "notes": n, "pitch_varies": pitch_varies(lo, hi)},
                synth,
            )
        )
    return out


def _sentence(rng: np.random.Generator, lang: str) -> str:
    subj, verb, obj = (w.split("|") for w in _WORDS[lang])
    return f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}"


def _speech(rid_key: str, origin: str, wave: np.ndarray, gender: str, lang: str, text: str) -> Recording:
    # the sentence (or prompt) decides the in-source split: test sentences are new
    split = "heldout" if held_out(origin) else split_of(rid_key)
    return Recording(
        f"{rid_key}/{origin}",
        "speech",
        "speech",
        _trim(wave),
        split,
        {"gender": gender, "language": lang, "sentence": text},
        origin,
    )


def render_speech(rng: np.random.Generator, per_voice_language: int) -> list[Recording]:
    """espeak-ng (every voice variant x language), Festival and flite voices: `per_voice_language`
    sentences each, rate and sentence drawn from rng."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        wp, tp = Path(tmp) / "s.wav", Path(tmp) / "s.txt"
        for lang, code in LANGUAGES.items():
            for variant, gender in VOICES.items():
                for _ in range(per_voice_language):
                    sentence = _sentence(rng, lang)
                    subprocess.run(
                        [
                            "espeak-ng",
                            "-v",
                            f"{code}+{variant}",
                            "-s",
                            str(int(rng.integers(130, 175))),
                            "-w",
                            str(wp),
                            sentence,
                        ],
                        check=True,
                        capture_output=True,
                    )
                    out.append(
                        _speech(f"speech/{lang}/{sentence}", f"espeak-ng/{variant}", _read(wp), gender, lang, sentence)
                    )
        for origin, (voice, gender, lang) in FESTIVAL.items():
            for _ in range(per_voice_language):
                sentence = _sentence(rng, lang)
                stretch = float(rng.uniform(0.9, 1.15))
                tp.write_text(sentence + "\n", encoding="utf-8")
                subprocess.run(
                    [
                        "text2wave",
                        "-eval",
                        f"(voice_{voice})",
                        "-eval",
                        f"(Parameter.set 'Duration_Stretch {stretch:.2f})",
                        str(tp),
                        "-o",
                        str(wp),
                    ],
                    check=True,
                    capture_output=True,
                )
                out.append(_speech(f"speech/{lang}/{sentence}", origin, _read(wp), gender, lang, sentence))
        for origin, (voice, gender) in FLITE.items():
            for _ in range(per_voice_language):
                sentence = _sentence(rng, "english")
                subprocess.run(
                    [
                        "flite",
                        "-voice",
                        voice,
                        "--setf",
                        f"duration_stretch={rng.uniform(0.9, 1.15):.2f}",
                        "-t",
                        sentence,
                        "-o",
                        str(wp),
                    ],
                    check=True,
                    capture_output=True,
                )
                out.append(_speech(f"speech/english/{sentence}", origin, _read(wp), gender, "english", sentence))
    return out


def load_recorded_speech(per_collection: int = PROMPTS_PER_COLLECTION) -> list[Recording]:
    """Asterisk's studio-recorded prompts (8 kHz): per collection, the prompts of 0.8-4 s in a fixed
    hashed order (not the alphabet: a collection's first files are one topic)."""
    out = []
    for origin, (folder, gender, lang) in RECORDED_SPEECH.items():
        files = sorted((ASTERISK / folder).glob("*.wav"), key=lambda f: hashlib.sha1(f.stem.encode()).hexdigest())
        taken = 0
        for f in files:
            x = _trim(_read(f))
            if not 0.8 * SR <= x.size <= 4.0 * SR:
                continue
            out.append(_speech(f"speech/{lang}/prompt:{f.stem}", origin, x, gender, lang, f.stem))
            taken += 1
            if taken == per_collection:
                break
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
        out.append(Recording(f"alert/{stem}", "alert", label, x, split, {}, "freedesktop"))
    return out


def _segments(x: np.ndarray, seconds: float = SEGMENT_SECONDS, most: int = 4) -> list[np.ndarray]:
    """A long recording cut into up to `most` trimmed pieces of about `seconds`."""
    step = int(seconds * SR)
    if x.size <= int(1.5 * step):
        return [x]
    pieces = [_trim(x[k : k + step]) for k in range(0, x.size - step // 2, step)][:most]
    return [p for p in pieces if p.size > 0.4 * SR]


def load_gcompris() -> list[Recording]:
    """GCompris' recorded instruments (known labels; novel ones go to the few-shot split) and
    everyday and animal sounds, read from the Qt resource bundles. Each piece is a recording."""
    from audioflamingo.data.synth.rcc import read_rcc

    out, bundles = [], {}

    def blob(bundle: str, stem: str) -> bytes | None:
        if bundle not in bundles:
            path = GCOMPRIS / f"{bundle}.rcc"
            bundles[bundle] = read_rcc(path) if path.is_file() else {}
        for k, v in bundles[bundle].items():
            if k.rsplit("/", 1)[-1].rsplit(".", 1)[0] == stem and k.endswith((".ogg", ".wav")):
                return v
        return None

    for stem, label in GCOMPRIS_INSTRUMENTS.items():
        data = blob("instruments", stem)
        if data is None:
            continue
        for k, seg in enumerate(_segments(_trim(_read_bytes(data)))):
            rid = f"instrument/gcompris/{label}/{k}"
            split = (
                "novel-heldout"
                if label in NOVEL_INSTRUMENTS
                else "heldout"
                if held_out("gcompris-instruments")
                else split_of(rid)
            )
            out.append(Recording(rid, "instrument", label, seg, split, {}, "gcompris-instruments"))
    for origin, files in EVERYDAY.items():
        for (bundle, stem), label in files.items():
            data = blob(bundle, stem)
            if data is None:
                continue
            for k, seg in enumerate(_segments(_trim(_read_bytes(data)))):
                rid = f"everyday/{origin}/{stem}/{k}"
                out.append(
                    Recording(
                        rid,
                        "everyday",
                        label,
                        seg,
                        "heldout" if held_out(origin) else split_of(rid, val=0.1, test=0.2),
                        {},
                        origin,
                    )
                )
    return out


def build_bank(
    rng: np.random.Generator,
    phrases_per_instrument: int = 40,
    utterances: int = 6,
    novel_phrases: int = 24,
    prompts: int = PROMPTS_PER_COLLECTION,
    progress=None,
) -> list[Recording]:
    """Every source's recordings, in a fixed order (each source draws from rng in turn). progress:
    called with a step's name after each of BANK_STEPS steps."""
    bank = []
    step = progress or (lambda name: None)

    def in_source(rid: str) -> str:
        return split_of(rid)

    for synth in ("fluidr3", "freepats"):
        for name, (prog, lo, hi) in KNOWN_INSTRUMENTS.items():
            if has_program(synth, prog):
                bank += render_phrases(
                    name,
                    prog,
                    lo,
                    hi,
                    phrases_per_instrument // 2 if synth != "fluidr3" else phrases_per_instrument,
                    rng,
                    (lambda rid: "heldout") if held_out(synth) else in_source,
                    synth,
                )
        step(synth)
    for name, (prog, lo, hi) in NOVEL_INSTRUMENTS.items():
        # novel instruments: half the phrases are the retrieval datastore, half the queries. Phrase k
        # plays register k % 2 and tempo (k // 2) % 2, so the halves are alternate blocks of four: each
        # half holds every register x tempo (a parity split put all high phrases in the datastore and
        # all low ones among the queries, which measured cross-register retrieval, not few-shot).
        bank += render_phrases(
            name,
            prog,
            lo,
            hi,
            novel_phrases,
            rng,
            lambda rid: "novel-support" if int(rid.rsplit("/", 1)[1]) // 4 % 2 else "novel-test",
        )
        if has_program("freepats", prog):  # queries from another sample set than the datastore's
            bank += render_phrases(
                name, prog, lo, hi, max(4, novel_phrases // 3), rng, lambda rid: "novel-heldout", "freepats"
            )
    step("novel instruments")
    bank += render_speech(rng, utterances)
    step("voices")
    bank += load_recorded_speech(prompts)
    step("recorded speech")
    bank += load_alerts()
    bank += load_gcompris()
    step("recorded sounds")
    return bank


BANK_STEPS = 6
