"""Out-of-range decoding flags and --dtype float16 on CPU: one line or a result, never a traceback."""

import numpy as np
import pytest
import soundfile as sf

from audioflamingo.cli import main


@pytest.fixture(scope="module")
def model_and_clip(tmp_path_factory):
    from audioflamingo.presets import build

    d = tmp_path_factory.mktemp("flags")
    model, tok = build("tiny", seed=0)
    model.save_pretrained(d / "m", tok)
    sf.write(d / "a.wav", (0.3 * np.sin(np.arange(8000) / 5)).astype("float32"), 16000)
    return str(d / "m"), str(d / "a.wav")


@pytest.mark.parametrize("flag,value", [("--batch-size", "0"), ("--max-new-tokens", "-1"), ("--beams", "0")])
def test_non_positive_counts_are_refused_in_one_line(flag, value, model_and_clip, capsys):
    model, clip = model_and_clip
    assert main(["caption", clip, "--model", model, flag, value]) != 0
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == f"audioflamingo: {flag} must be at least 1, not {value}"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_cpu_runs(dtype, model_and_clip):
    model, clip = model_and_clip
    assert main(["caption", clip, "--model", model, "--dtype", dtype]) == 0
