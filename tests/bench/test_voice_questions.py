"""bench/voice_questions.py: one gender and one language question per single-voice clip of a split."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "voice_questions", Path(__file__).parents[2] / "bench" / "voice_questions.py"
)
vq = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vq)


def _speech(gender, language):
    return {"kind": "speech", "attrs": {"gender": gender, "language": language}}


def test_single_voice_clips_of_the_split_only(tmp_path):
    scenes = [
        {"id": "h-0", "split": "heldout", "audio": "clips/h-0.flac", "events": [_speech("male", "german")]},
        {"id": "h-1", "split": "heldout", "audio": "clips/h-1.flac", "events": [{"kind": "beep", "attrs": {}}]},
        {  # two voices that differ: no single answer
            "id": "h-2",
            "split": "heldout",
            "audio": "clips/h-2.flac",
            "events": [_speech("male", "french"), _speech("female", "french")],
        },
        {"id": "t-0", "split": "test", "audio": "clips/t-0.flac", "events": [_speech("female", "italian")]},
    ]
    out = tmp_path / "voice" / "eval"
    recs = vq.voice_records(scenes, "heldout", tmp_path / "corpus", out)
    assert [(r["id"], r["question"], r["output"]) for r in recs] == [
        ("h-0/voice-gender", "gender", "male"),
        ("h-0/voice-language", "language", "german"),
    ]
    assert (out / recs[0]["audio"]).resolve() == (tmp_path / "corpus" / "clips/h-0.flac").resolve()
    assert "male" in recs[0]["instruction"] and "female" in recs[0]["instruction"]
    assert recs == vq.voice_records(scenes, "heldout", tmp_path / "corpus", out)  # same phrasing every run
    assert [r["output"] for r in vq.voice_records(scenes, "test", tmp_path / "corpus", out)] == ["female", "italian"]
