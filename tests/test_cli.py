"""End-to-end through the command line, on a tiny model written by `audioflamingo init`."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audioflamingo.cli import main
from tests.conftest import noise


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    assert main(["init", "--preset", "tiny", "--out", str(d)]) == 0
    return d


@pytest.fixture()
def clips(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.ogg"
    sf.write(a, noise(1.5, 22050, seed=1), 22050)
    sf.write(b, np.stack([noise(2.5, 48000, seed=2)] * 2, 1), 48000)
    return str(a), str(b)


def test_caption_many_files_json(model_dir, clips, capsys):
    assert main(["caption", *clips, "--model", str(model_dir), "--json", "--max-new-tokens", "4"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [l["file"] for l in lines] == list(clips) and all(isinstance(l["caption"], str) for l in lines)


def test_caption_batched_equals_one_by_one(model_dir, clips, capsys):
    main(["caption", *clips, "--model", str(model_dir), "--json", "--max-new-tokens", "6", "--batch-size", "2"])
    batched = capsys.readouterr().out.splitlines()
    main(["caption", *clips, "--model", str(model_dir), "--json", "--max-new-tokens", "6", "--batch-size", "1"])
    assert capsys.readouterr().out.splitlines() == batched


def test_ask_and_classify(model_dir, clips, capsys):
    assert main(["ask", clips[0], "Is there speech?", "--model", str(model_dir), "--max-new-tokens", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["classify", clips[0], "--labels", "dog, cat ,rain", "--model", str(model_dir), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    scores = rec["scores"]
    assert sorted(s["label"] for s in scores) == ["cat", "dog", "rain"]
    assert rec["label"] == scores[0]["label"]
    assert [s["logprob"] for s in scores] == sorted((s["logprob"] for s in scores), reverse=True)
    assert abs(sum(s["prob"] for s in scores) - 1) < 1e-5


def test_chat_keeps_history_and_resets(model_dir, clips, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\nand then?\n/reset\nagain\n/quit\nignored\n"))
    assert main(["chat", clips[0], "--model", str(model_dir), "--json", "--max-new-tokens", "3"]) == 0
    turns = [json.loads(l)["turn"] for l in capsys.readouterr().out.splitlines()]
    assert turns == [1, 2, 1]


def test_bad_input_one_line_nothing_written(model_dir, clips, tmp_path, capsys):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    assert main(["caption", clips[0], str(bad), "--model", str(model_dir)]) == 1  # bad input: 1, not usage (2)
    out, err = capsys.readouterr()
    assert out == ""  # the good file before it is not half-reported
    assert err.strip().count("\n") == 0 and str(bad) in err and "not an audio file" in err


def test_missing_model_is_a_clear_error(clips, tmp_path, capsys):
    assert main(["caption", clips[0], "--model", str(tmp_path)]) == 1
    assert "config.json: missing" in capsys.readouterr().err


def test_installed_entry_point_help_and_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "audioflamingo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "examples:" in r.stdout and "classify" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "audioflamingo", "caption", str(tmp_path / "x.wav"), "--model", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
