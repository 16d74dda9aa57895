"""A broken model folder is one line naming the file and the problem (exit 2), never a traceback;
pickles where weights are expected are refused without running them."""

import json
import os
import shutil
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from audioflamingo.cli import main


@pytest.fixture(scope="module")
def sound(tmp_path_factory):
    from audioflamingo.presets import build

    d = tmp_path_factory.mktemp("model")
    model, tok = build("tiny", seed=0)
    model.save_pretrained(d / "m", tok)
    sf.write(d / "a.wav", (0.3 * np.sin(np.arange(8000) / 5)).astype("float32"), 16000)
    return d / "m", d / "a.wav"


def _truncate(n):
    return lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:n])


def _bad_header(m):
    w = m / "model.safetensors"
    data = bytearray(w.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    data[8 : 8 + n] = (b"{garbage" + b" " * n)[:n]
    w.write_bytes(bytes(data))


def _config(**sections):
    def edit(m):
        cfg = json.loads((m / "config.json").read_text())
        for section, kv in sections.items():
            cfg[section].update(kv)
        (m / "config.json").write_text(json.dumps(cfg))

    return edit


CASES = {
    "weights-truncated-half": (
        lambda m: _truncate((m / "model.safetensors").stat().st_size // 2)(m),
        "model.safetensors",
        "truncated",
    ),
    "weights-truncated-header": (_truncate(100), "model.safetensors", "truncated"),
    "weights-empty": (_truncate(0), "model.safetensors", "truncated or empty"),
    "weights-random": (
        lambda m: (m / "model.safetensors").write_bytes(os.urandom(4096)),
        "model.safetensors",
        "not a safetensors file",
    ),
    "weights-corrupt-header": (_bad_header, "model.safetensors", "corrupt header"),
    "tokenizer-json-missing": (lambda m: (m / "tokenizer.json").unlink(), "tokenizer.json", "missing"),
    "tokenizer-json-invalid": (lambda m: (m / "tokenizer.json").write_text("{nope"), "tokenizer.json", "invalid JSON"),
    "tokenizer-json-not-a-tokenizer": (
        lambda m: (m / "tokenizer.json").write_text('{"model": {"type": "X"}}'),
        "tokenizer.json",
        "not a valid tokenizer",
    ),
    "tokenizer-config-missing": (lambda m: (m / "tokenizer_config.json").unlink(), "tokenizer_config.json", "missing"),
    "config-bad-json": (lambda m: (m / "config.json").write_text('{"window": {,}'), "config.json", "invalid JSON"),
    "config-list": (lambda m: (m / "config.json").write_text("[1]"), "config.json", "JSON object"),
    "config-layers-string": (_config(lm={"num_hidden_layers": "six"}), "config.json", "lm.num_hidden_layers"),
    "config-lm-zero-heads": (_config(lm={"num_attention_heads": 0}), "config.json", "lm.num_attention_heads"),
    "config-zero-heads": (_config(transformation={"num_heads": 0}), "config.json", "transformation.num_heads"),
    "config-xattn-heads-string": (_config(xattn={"heads": "8"}), "config.json", "xattn.heads"),
    "config-unknown-key": (_config(window={"hop_secs": 1.0}), "config.json", "hop_secs"),
    "config-negative-rate": (_config(window={"sample_rate": -1}), "config.json", "window.sample_rate"),
    "config-unknown-lm": (_config(lm={"model_type": "no-such-lm"}), "config.json", "lm.model_type"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_model_folder_is_one_line_naming_the_file(name, sound, tmp_path, capsys):
    src, clip = sound
    m = tmp_path / "m"
    shutil.copytree(src, m)
    damage, fname, problem = CASES[name]
    damage(m)
    capsys.readouterr()
    assert main(["caption", str(clip), "--model", str(m)]) != 0  # one line, non-zero exit
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{m / fname}: " in err and problem in err, err


def test_sound_copy_loads(sound, tmp_path, capsys):
    src, clip = sound
    shutil.copytree(src, tmp_path / "m")
    assert main(["caption", str(clip), "--model", str(tmp_path / "m")]) == 0


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # unpickling it would create the marker file
        return (open, (self.marker, "w"))


def test_clap_pytorch_model_bin_pickle_is_refused_in_one_line(tmp_path):
    from audioflamingo.audio.encoders import read_weight_files
    from audioflamingo.errors import ModelLoadError

    torch.save({"w": torch.zeros(1), "p": Payload(tmp_path / "pwned")}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as err:
        read_weight_files(tmp_path)
    assert not (tmp_path / "pwned").exists()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path / 'pytorch_model.bin'}: refused")


@pytest.mark.parametrize("command", ["embed", "average", "build-icl"])
def test_other_commands_name_a_truncated_weights_file(command, sound, tmp_path, capsys):
    src, clip = sound
    m = tmp_path / "m"
    shutil.copytree(src, m)
    _truncate(700)(m)
    argv = {
        "embed": ["embed", str(clip), "--model", str(m)],
        "average": ["average", str(src), str(m), "--out", str(tmp_path / "avg")],
        "build-icl": ["data", "build-icl", str(tmp_path / "x.jsonl"), "--encoder", str(m)],
    }[command]
    (tmp_path / "x.jsonl").write_text(json.dumps({"audio": str(clip), "task": "caption", "output": "x"}) + "\n")
    capsys.readouterr()
    assert main(argv) != 0  # one line, non-zero exit
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{m / 'model.safetensors'}: truncated" in err, err
