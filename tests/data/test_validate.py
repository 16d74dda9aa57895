"""`data validate` beyond the schema: NaN/inf audio, paths leaving the data root, empty manifests,
invalid UTF-8, directories and symlink loops named as such."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from audioflamingo.cli import main
from audioflamingo.data.manifest import load_manifest, validate_manifest


def _manifest(folder, *records):
    m = folder / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in records))
    return m


def _rec(audio, **kw):
    return {"audio": str(audio), "task": "caption", "output": "x", **kw}


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    sf.write(d / "ok.wav", np.full(1600, 0.1, np.float32), 16000)
    return d


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_nan_and_inf_samples_are_problems(data, value, word):
    x = np.zeros(16000, np.float32)
    x[1234] = value
    sf.write(data / "bad.wav", x, 16000, subtype="FLOAT")
    rep = validate_manifest(_manifest(data, _rec("ok.wav"), _rec("bad.wav")))
    assert len(rep.problems) == 1 and rep.problems[0].startswith(f"{data / 'm.jsonl'}:2: ") and word in rep.problems[0]


def test_nan_outside_the_segment_is_not_a_problem(data):
    x = np.zeros(32000, np.float32)
    x[30000] = np.nan
    sf.write(data / "late.wav", x, 16000, subtype="FLOAT")
    assert validate_manifest(_manifest(data, _rec("late.wav", duration=1.0))).ok
    assert not validate_manifest(_manifest(data, _rec("late.wav"))).ok


def test_paths_leaving_the_manifest_folder_are_problems_unless_under_root(tmp_path, data):
    sf.write(tmp_path / "outside.wav", np.full(1600, 0.1, np.float32), 16000)
    os.symlink(tmp_path, data / "link")
    m = _manifest(
        data, _rec("../outside.wav"), _rec("link/outside.wav"), _rec(tmp_path / "outside.wav"), _rec(data / "ok.wav")
    )
    rep = validate_manifest(m)
    assert [int(p.split(":")[1]) for p in rep.problems] == [1, 2, 3], rep.problems
    assert all("outside the manifest's folder" in p for p in rep.problems)
    assert validate_manifest(m, root=tmp_path).ok
    assert main(["data", "validate", str(m), "--root", str(tmp_path)]) == 0
    assert main(["data", "validate", str(m)]) == 1


@pytest.mark.parametrize("text", ["", "\n \n"])
def test_empty_manifest_is_a_problem(tmp_path, text, capsys):
    m = tmp_path / "m.jsonl"
    m.write_text(text)
    assert main(["data", "validate", str(m)]) == 1
    assert f"{m}: no records" in capsys.readouterr().out


def test_invalid_utf8_is_a_problem_naming_the_line(data):
    m = data / "m.jsonl"
    m.write_bytes(
        json.dumps(_rec("ok.wav")).encode() + b"\n" + b'{"audio": "ok.wav", "task": "caption", "output": "caf\xe9"}\n'
    )
    rep = validate_manifest(m)
    assert rep.records == 1 and len(rep.problems) == 1 and rep.problems[0].startswith(f"{m}:2: not valid UTF-8")
    with pytest.raises(ValueError, match=f"{m}:2: not valid UTF-8"):
        load_manifest(m)


def test_directory_and_symlink_loop_are_named_as_such(data):
    (data / "dir.wav").mkdir()
    os.symlink(data / "b.wav", data / "a.wav")
    os.symlink(data / "a.wav", data / "b.wav")
    os.symlink(data / "gone.wav", data / "dangling.wav")
    rep = validate_manifest(_manifest(data, _rec("dir.wav"), _rec("a.wav"), _rec("dangling.wav")))
    assert "audio path is a directory" in rep.problems[0]
    assert "symlink loop" in rep.problems[1]
    assert "broken symlink" in rep.problems[2]
    assert validate_manifest(data).problems == [f"{data}: is a directory, not a file"]
