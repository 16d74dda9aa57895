"""`audioflamingo data synth-voices`: extra training voices beside the corpus, for male/female.

The corpus trains on 11 voices (espeak-ng m1, m3, f1, f3; five Festival voices; two Asterisk
collections); a model that learns gender from 11 voices learns those voices. espeak-ng ships 60+
voice variants; this renders every one that declares a gender, except the corpus' own and the
held-out ones (HELD_OUT: m7, f5), in the corpus' six languages, with training sentences only (a
sentence's split is its hash, as in the corpus, so the in-source test's sentences stay unheard),
and mixes them into training scenes with the corpus' scene sampler and recording chains.

With `recorded=True` it adds 0 A.D.'s recorded unit voices (Debian `0ad-data`, CC BY-SA; the file
names say civ_male_* / civ_female_*): the corpus' recorded training voices are all female, so
"recorded" alone predicted "female" there. They speak Latin, ancient Greek, Old Persian and
Meroitic, languages the corpus does not ask about: their scenes get no language question.

Writes, under OUT: clips/train/<id>.flac, scenes.jsonl, train_aqa_all.jsonl (every question of each
timeline, as the corpus' file of that name), voices.json (counts, and the voices used).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from audioflamingo.data.synth.sources import (
    LANGUAGES,
    SR,
    Recording,
    SourcesMissing,
    VOICES,
    _read,
    _read_bytes,
    _sentence,
    _speech,
    held_out,
    load_alerts,
    load_gcompris,
    split_of,
)

OAD_ZIP = Path("/usr/share/games/0ad/mods/public/public.zip")
VOICE_PACKAGES = ("0ad-data",)  # `make synth-voices-deps`; not in SYNTH_PACKAGES (3.2 GB installed)
OAD_LANGUAGES = {"latin": "latin", "greek": "ancient greek", "persian": "old persian", "napatan": "meroitic"}
# Variants named by a gender line in their file; odd timbres (whisper, croak, robots, "Demonic") left
# out: their gender is a parameter setting, not a voice.
ODD = {"whisper", "whisperf", "croak", "Demonic", "UniRobot", "anikaRobot"}
SCENE_KINDS = ("speech", "speech", "speech", "instrument", "alert", "everyday")


def variant_dir() -> Path:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/x86_64-linux-gnu/espeak-ng-data"
    return Path(out.split("Data at:")[1].strip()) / "voices" / "!v"


def extra_variants(folder: Path | None = None) -> dict[str, str]:
    """variant -> gender, for every variant file that declares one, minus the corpus' and held-out ones."""
    out = {}
    for f in sorted((folder or variant_dir()).iterdir()):
        words = [ln.split() for ln in f.read_text(errors="replace").splitlines()]
        gender = next((w[1].lower() for w in words if len(w) >= 2 and w[0].lower() == "gender"), None)
        name = f.name
        if gender not in ("male", "female") or name in ODD or name in VOICES or held_out(f"espeak-ng/{name}"):
            continue
        out[name] = gender
    return out


def render_variants(rng: np.random.Generator, variants: dict[str, str], per_voice_language: int) -> list:
    """`per_voice_language` training sentences per variant and language (test/val sentences redrawn)."""
    recs = []
    with tempfile.TemporaryDirectory() as tmp:
        wp = Path(tmp) / "s.wav"
        for lang, code in LANGUAGES.items():
            for variant, gender in variants.items():
                for _ in range(per_voice_language):
                    sentence = _sentence(rng, lang)
                    for _ in range(50):  # the corpus' test sentences stay unheard
                        if split_of(f"speech/{lang}/{sentence}") == "train":
                            break
                        sentence = _sentence(rng, lang)
                    else:
                        continue
                    rate = str(int(rng.integers(130, 175)))
                    cmd = ["espeak-ng", "-v", f"{code}+{variant}", "-s", rate, "-w", str(wp), sentence]
                    subprocess.run(cmd, check=True, capture_output=True)
                    rec = _speech(
                        f"speech/{lang}/{sentence}", f"espeak-ng/{variant}", _read(wp), gender, lang, sentence
                    )
                    recs.append(rec)
    return recs


def load_0ad_voices(path: Path | None = None) -> list[Recording]:
    """Every civ_male_* / civ_female_* voice line of 0 A.D.'s public mod, in file-name order."""
    import zipfile

    out = []
    with zipfile.ZipFile(path or OAD_ZIP) as z:
        for name in sorted(z.namelist()):
            parts = name.split("/")
            if not (name.startswith("audio/voice/") and name.endswith(".ogg") and parts[2] in OAD_LANGUAGES):
                continue
            stem = parts[-1][: -len(".ogg")]
            gender = "female" if "_female_" in stem else "male" if "_male_" in stem else None
            if gender is None:
                continue
            wave = _read_bytes(z.read(name))
            attrs = {"gender": gender, "language": OAD_LANGUAGES[parts[2]], "sentence": stem}
            out.append(
                Recording(f"speech/0ad/{parts[2]}/{stem}", "speech", "speech", wave, "train", attrs, f"0ad/{parts[2]}")
            )
    return out


def synthesize_voices(
    out: str | Path,
    scenes: int = 800,
    per_voice_language: int = 3,
    seed: int = 0,
    progress=True,
    recorded: bool = False,
):
    import soundfile as sf
    from tqdm import tqdm

    from audioflamingo.data.synth import _scene_records, _write
    from audioflamingo.data.synth.scenes import sample_scene
    from audioflamingo.data.synth.sources import KNOWN_INSTRUMENTS

    out = Path(out)
    rng = np.random.default_rng([seed, 7])
    variants = extra_variants()
    speech = render_variants(rng, variants, per_voice_language)
    if recorded:
        if not OAD_ZIP.exists():
            raise SourcesMissing(
                f"0 A.D. voices missing ({OAD_ZIP}; Debian {' '.join(VOICE_PACKAGES)}): run `make synth-voices-deps` as root"
            )
        speech += load_0ad_voices()
    pool: dict[str, list] = {"speech": [r for r in speech if r.split == "train"]}
    for r in load_alerts() + load_gcompris():
        if r.split == "train":
            pool.setdefault(r.kind, []).append(r)
    known = sorted(KNOWN_INSTRUMENTS)
    scenes_out, aqa = [], []
    for k in tqdm(range(scenes), desc="voices", unit="clip", disable=not progress):
        scene, wave = sample_scene(rng, pool, "train", f"voices-{k:05d}", kinds=SCENE_KINDS)
        rel = f"clips/train/{scene.id}.flac"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out / rel), wave, SR, format="FLAC", subtype="PCM_16")
        scenes_out.append({**asdict(scene), "audio": rel})
        recs = _scene_records(scene, rel, rng, known, n_questions=4)["aqa_all"]
        aqa += [r for r in recs if r["question"] != "language" or r["output"] in LANGUAGES]
    _write(out / "scenes.jsonl", scenes_out)
    _write(out / "train_aqa_all.jsonl", aqa)
    genders = [r.attrs["gender"] for r in pool["speech"]]
    summary = {
        "seed": seed,
        "scenes": scenes,
        "hours": round(sum(s["duration"] for s in scenes_out) / 3600, 3),
        "variants": variants,
        "utterances": {"male": genders.count("male"), "female": genders.count("female")},
        "recorded": sorted({r.origin for r in pool["speech"] if r.origin.startswith("0ad/")}),
        "questions": {q: sum(r["question"] == q for r in aqa) for q in sorted({r["question"] for r in aqa})},
    }
    (out / "voices.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return summary
