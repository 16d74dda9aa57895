"""bench/storage_dtype.py --ship: the cast copy is written only if it keeps every output."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

spec = importlib.util.spec_from_file_location("storage_dtype", Path(__file__).parents[2] / "bench" / "storage_dtype.py")
sd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sd)


@pytest.fixture
def model_and_manifest(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    save_file({"w": torch.randn(4, 4), "step": torch.tensor([3])}, str(src / "model.safetensors"))
    (src / "config.json").write_text("{}")
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps({"audio": f"c{i}.wav"}) + "\n" for i in range(3)))
    return src, man


def _run(monkeypatch, argv, outputs):
    monkeypatch.setattr(sd, "outputs", outputs)
    monkeypatch.setattr(sys, "argv", ["storage_dtype.py", *argv])
    sd.main()


def test_ship_writes_the_cast_copy_when_outputs_are_kept(tmp_path, monkeypatch, model_and_manifest):
    src, man = model_and_manifest
    dst = tmp_path / "shipped"
    dst.mkdir()
    (dst / "stale.txt").write_text("from the model before")
    _run(monkeypatch, [str(src), "--manifest", str(man), "--ship", str(dst)], lambda d, clips: ["a"] * len(clips))
    from safetensors.torch import load_file

    state = load_file(str(dst / "model.safetensors"))
    assert state["w"].dtype == torch.bfloat16 and state["step"].dtype == torch.long
    assert (dst / "config.json").is_file() and not (dst / "stale.txt").exists()


def test_ship_refuses_and_writes_nothing_when_an_output_changes(tmp_path, monkeypatch, model_and_manifest):
    src, man = model_and_manifest
    dst = tmp_path / "shipped"

    def outputs(d, clips):  # the fp32 file and the fp16 copy agree; the bf16 copy changes one answer
        return ["a"] * (len(clips) - 1) + (["b"] if d.name == "bfloat16" else ["a"])

    with pytest.raises(SystemExit, match="as bfloat16 1 of 3 outputs change"):
        _run(monkeypatch, [str(src), "--manifest", str(man), "--ship", str(dst)], outputs)
    assert not dst.exists()
    _run(monkeypatch, [str(src), "--manifest", str(man), "--ship", str(dst), "--dtype", "float16"], outputs)
    assert (dst / "model.safetensors").is_file()
