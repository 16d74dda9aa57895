import json

import numpy as np
import soundfile as sf

from audioflamingo.cli import main
from audioflamingo.data.manifest import load_manifest, validate_manifest


def _write(p, lines):
    p.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")


def test_validate_reports_every_problem_with_file_and_line(tmp_path, capsys):
    sf.write(tmp_path / "ok.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    (tmp_path / "bad.wav").write_text("nope")
    m = tmp_path / "m.jsonl"
    _write(
        m,
        [
            {"audio": "ok.wav", "task": "caption", "output": "x"},  # 1 fine
            {"audio": "missing.wav", "task": "caption", "output": "x"},  # 2 missing audio
            "{not json",  # 3 bad JSON
            {"audio": "ok.wav", "task": "classify", "output": "dog"},  # 4 no options
            {"audio": "ok.wav", "task": "sing", "output": "x"},  # 5 bad task
            {"audio": "bad.wav", "task": "aqa", "instruction": "q", "output": "a"},  # 6 unreadable
            {"audio": "ok.wav", "task": "classify", "output": "cow", "options": ["dog", "cat"]},  # 7 not an option
            {"audio": "ok.wav", "task": "dialogue"},  # 8 no turns
            {"audio": "ok.wav", "task": "caption", "output": "x", "offset": 5.0},  # 9 offset past end
            {"task": "caption", "output": "x"},  # 10 no audio
            {"task": "text", "output": "plain text for lm stages"},  # 11 fine: no audio needed
        ],
    )
    rep = validate_manifest(m)
    lines = {int(p.split(":")[1]) for p in rep.problems}
    assert lines == {2, 3, 4, 5, 6, 7, 8, 9, 10}, rep.problems
    assert rep.records == 6 and rep.tasks["caption"] == 3 and rep.tasks["text"] == 1  # schema-valid lines
    assert main(["data", "validate", str(m)]) == 1
    out, err = capsys.readouterr()
    assert f"{m}:2: audio file not found" in out and "6 records" in err


def test_load_resolves_paths_relative_to_manifest(tmp_path):
    (tmp_path / "sub").mkdir()
    m = tmp_path / "sub" / "m.jsonl"
    _write(m, [{"audio": "a.wav", "task": "dialogue", "turns": [{"user": "u", "assistant": "a"}], "source": "rec1"}])
    r = load_manifest(m)[0]
    assert r.audio == tmp_path / "sub" / "a.wav" and r.group == "rec1" and r.id == "1"


def test_commands_that_need_audio_refuse_text_records_in_one_line(tmp_path, capsys):
    sf.write(tmp_path / "ok.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    m = tmp_path / "mixed.jsonl"
    _write(m, [{"audio": "ok.wav", "task": "caption", "output": "a tone"}, {"task": "text", "output": "a b | a b"}])
    assert len(load_manifest(m)) == 2  # fine for lm stages
    try:
        load_manifest(m, needs_audio="CLAP training")
        raise AssertionError("text record accepted")
    except ValueError as err:
        assert str(err).startswith(f"{m}:2: a text record") and "CLAP training needs audio" in str(err)
    for argv in (
        ["data", "build-icl", str(m), "--out", str(tmp_path / "n.jsonl")],
        ["index", "build", str(m), "--out", str(tmp_path / "store")],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{m}:2: a text record" in err, err
    assert not (tmp_path / "n.jsonl").exists() and not (tmp_path / "store").exists()
