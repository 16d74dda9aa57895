"""classify merges repeated labels and says so; embed's long-audio warning names the file."""

import json
import warnings

import numpy as np
import pytest
import soundfile as sf

from audioflamingo.cli import main
from audioflamingo.tasks import AudioFlamingoPipeline
from tests.conftest import make_model, noise


def test_repeated_labels_are_merged_and_named():
    model, tok = make_model("qwen2", gates=0.9)
    pipe = AudioFlamingoPipeline(model, tok)
    clip = noise(1.0, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranked = pipe.classify(clip, ["piano", "piano", " organ", "organ"])
    assert sorted(r["label"] for r in ranked) == ["organ", "piano"]
    assert np.isclose(sum(r["prob"] for r in ranked), 1.0)
    assert {r["label"]: r["prob"] for r in ranked} == {
        r["label"]: r["prob"] for r in pipe.classify(clip, ["piano", "organ"])
    }
    msgs = [str(w.message) for w in caught]
    assert any("duplicate" in m and "piano, organ" in m for m in msgs), msgs


def test_embed_long_file_warning_names_the_file(tmp_path, capsys):
    from audioflamingo.presets import build

    model, tok = build("tiny", seed=0)
    model.save_pretrained(tmp_path / "m", tok)
    f = tmp_path / "long-clip.wav"
    sf.write(f, noise(12.0), 16000)
    with pytest.warns(UserWarning, match="longer than") as caught:
        assert main(["embed", str(f), "--model", str(tmp_path / "m")]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(f)
    msg = next(str(w.message) for w in caught if "longer than" in str(w.message))
    assert msg.startswith(f"{f}: 12.0 s is longer than"), msg
