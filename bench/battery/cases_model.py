"""Model folders: broken weights, configs and tokenizer files; pickles where weights are expected."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from bench.battery.harness import Fail, collection, expect_ok, expect_one_line_error

cases, case = collection("model")


def _caption(ctx, model: Path):
    return ctx.cli("caption", str(ctx.clip()), "--model", str(model))


def _edit_config(model: Path, edit) -> None:
    cfg = json.loads((model / "config.json").read_text())
    edit(cfg)
    (model / "config.json").write_text(json.dumps(cfg))


class Payload:
    """A pickle that creates a file when unpickled: proof of code execution if the file appears."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle(path: Path, marker: Path, wrap: str | None = None) -> None:
    import torch

    obj = {"x": torch.zeros(1), "payload": Payload(marker)}
    torch.save({wrap: obj} if wrap else obj, path)


def expect_not_executed(marker: Path) -> None:
    if marker.exists():
        raise Fail("the pickle ran code (marker file created)")


@case("sound tiny model loads and captions")
def _(ctx):
    expect_ok(_caption(ctx, ctx.model_dir()))


@case("model.safetensors truncated to half")
def _(ctx):
    m = ctx.model_copy()
    w = m / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("model.safetensors truncated inside the header")
def _(ctx):
    m = ctx.model_copy()
    w = m / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("model.safetensors of random bytes")
def _(ctx):
    m = ctx.model_copy()
    (m / "model.safetensors").write_bytes(os.urandom(4096))
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("model.safetensors with a corrupt JSON header")
def _(ctx):
    m = ctx.model_copy()
    w = m / "model.safetensors"
    data = bytearray(w.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    data[8 : 8 + n] = (b"{not json" + b" " * n)[:n]
    w.write_bytes(bytes(data))
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("model.safetensors whose header points past the end")
def _(ctx):
    m = ctx.model_copy()
    w = m / "model.safetensors"
    data = w.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    start, end = header[name]["data_offsets"]
    header[name]["data_offsets"] = [start, end + 10**9]
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    w.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("model.safetensors empty (0 bytes)")
def _(ctx):
    m = ctx.model_copy()
    (m / "model.safetensors").write_bytes(b"")
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("model.safetensors is a directory")
def _(ctx):
    m = ctx.model_copy()
    (m / "model.safetensors").unlink()
    (m / "model.safetensors").mkdir()
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("model.safetensors missing")
def _(ctx):
    m = ctx.model_copy()
    (m / "model.safetensors").unlink()
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("model folder does not exist")
def _(ctx):
    expect_one_line_error(_caption(ctx, ctx.tmp() / "nope"), "nope")


@case("model folder is a file")
def _(ctx):
    f = ctx.tmp() / "model"
    f.write_text("x")
    expect_one_line_error(_caption(ctx, f), str(f))


@case("config.json missing")
def _(ctx):
    m = ctx.model_copy()
    (m / "config.json").unlink()
    expect_one_line_error(_caption(ctx, m), "config.json")


@case("config.json is not JSON")
def _(ctx):
    m = ctx.model_copy()
    (m / "config.json").write_text('{"window": {"sample_rate": 16000,,}')
    expect_one_line_error(_caption(ctx, m), "config.json")


@case("config.json is a JSON list")
def _(ctx):
    m = ctx.model_copy()
    (m / "config.json").write_text("[1, 2]")
    expect_one_line_error(_caption(ctx, m), "config.json")


@case("config.json lm.num_hidden_layers is a string")
def _(ctx):
    m = ctx.model_copy()
    _edit_config(m, lambda c: c["lm"].update(num_hidden_layers="six"))
    expect_one_line_error(_caption(ctx, m), "config.json", "num_hidden_layers")


@case("config.json lm.num_attention_heads is 0")
def _(ctx):
    m = ctx.model_copy()
    _edit_config(m, lambda c: c["lm"].update(num_attention_heads=0))
    expect_one_line_error(_caption(ctx, m), "config.json", "num_attention_heads")


@case("config.json transformation.num_heads is 0")
def _(ctx):
    m = ctx.model_copy()
    _edit_config(m, lambda c: c["transformation"].update(num_heads=0))
    expect_one_line_error(_caption(ctx, m), "config.json", "num_heads")


@case("config.json xattn.heads is a string")
def _(ctx):
    m = ctx.model_copy()
    _edit_config(m, lambda c: c["xattn"].update(heads="8"))
    expect_one_line_error(_caption(ctx, m), "config.json", "heads")


@case("config.json window.sample_rate is negative")
def _(ctx):
    m = ctx.model_copy()
    _edit_config(m, lambda c: c["window"].update(sample_rate=-16000))
    expect_one_line_error(_caption(ctx, m), "config.json", "sample_rate")


@case("config.json unknown key in a section")
def _(ctx):
    m = ctx.model_copy()
    _edit_config(m, lambda c: c["window"].update(hop_secs=1.0))
    expect_one_line_error(_caption(ctx, m), "config.json", "hop_secs")


@case("config.json lm.model_type unknown")
def _(ctx):
    m = ctx.model_copy()
    _edit_config(m, lambda c: c["lm"].update(model_type="no-such-lm"))
    expect_one_line_error(_caption(ctx, m), "config.json", "model_type")


@case("config.json changed: weights no longer match")
def _(ctx):
    m = ctx.model_copy()
    _edit_config(m, lambda c: c["transformation"].update(ffn_dim=c["transformation"]["ffn_dim"] * 2))
    expect_one_line_error(_caption(ctx, m), "model.safetensors")


@case("tokenizer.json missing")
def _(ctx):
    m = ctx.model_copy()
    (m / "tokenizer.json").unlink()
    expect_one_line_error(_caption(ctx, m), "tokenizer.json")


@case("tokenizer.json not JSON")
def _(ctx):
    m = ctx.model_copy()
    (m / "tokenizer.json").write_text("{ this is not a tokenizer")
    expect_one_line_error(_caption(ctx, m), "tokenizer.json")


@case("tokenizer.json valid JSON, not a tokenizer")
def _(ctx):
    m = ctx.model_copy()
    (m / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "Nope"}}')
    expect_one_line_error(_caption(ctx, m), "tokenizer.json")


@case("tokenizer_config.json missing")
def _(ctx):
    m = ctx.model_copy()
    (m / "tokenizer_config.json").unlink()
    expect_one_line_error(_caption(ctx, m), "tokenizer_config.json")


@case("tokenizer_config.json not JSON")
def _(ctx):
    m = ctx.model_copy()
    (m / "tokenizer_config.json").write_text("{'single': quotes}")
    expect_one_line_error(_caption(ctx, m), "tokenizer_config.json")


@case("tokenizer lacks the <audio> token")
def _(ctx):
    m = ctx.model_copy()
    tj = json.loads((m / "tokenizer.json").read_text())
    tj["added_tokens"] = [t for t in tj.get("added_tokens", []) if t["content"] != "<audio>"]
    (m / "tokenizer.json").write_text(json.dumps(tj))
    expect_one_line_error(_caption(ctx, m), "<audio>")


@case("info on a corrupt model.safetensors")
def _(ctx):
    m = ctx.model_copy()
    (m / "model.safetensors").write_bytes(os.urandom(1000))
    expect_one_line_error(ctx.cli("info", "--model", str(m)), "model.safetensors")


@case("CLAP pytorch_model.bin holding a pickle (data build-icl --encoder)")
def _(ctx):
    from bench.battery.cases_manifest import write_manifest_with_clip
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection, ClapFeatureExtractor

    d = ctx.tmp() / "clap"
    cfg = ClapAudioConfig(
        spec_size=64,
        num_mel_bins=16,
        window_size=4,
        patch_size=2,
        patch_stride=2,
        patch_embeds_hidden_size=8,
        hidden_size=16,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        projection_dim=24,
        projection_hidden_size=24,
        enable_fusion=False,
    )
    ClapAudioModelWithProjection(cfg).save_pretrained(d)
    ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=16000,
        hop_length=160,
        fft_window_size=400,
        max_length_s=1,
        frequency_min=50,
        frequency_max=8000,
    ).save_pretrained(d)
    for f in d.glob("*.safetensors"):
        f.unlink()
    marker = d.parent / "pwned"
    evil_pickle(d / "pytorch_model.bin", marker)
    manifest = write_manifest_with_clip(ctx, n=2)
    res = ctx.cli("data", "build-icl", str(manifest), "--encoder", str(d), "--k", "1")
    expect_not_executed(marker)
    expect_one_line_error(res, "pytorch_model.bin")


@case("embed --model with a truncated model.safetensors")
def _(ctx):
    m = ctx.model_copy()
    w = m / "model.safetensors"
    w.write_bytes(w.read_bytes()[:700])
    expect_one_line_error(ctx.cli("embed", str(ctx.clip()), "--model", str(m)), "model.safetensors")


@case("embed --model with config.json not JSON")
def _(ctx):
    m = ctx.model_copy()
    (m / "config.json").write_text("{nope")
    expect_one_line_error(ctx.cli("embed", str(ctx.clip()), "--model", str(m)), "config.json")


@case("average with a truncated model.safetensors")
def _(ctx):
    m = ctx.model_copy()
    w = m / "model.safetensors"
    w.write_bytes(w.read_bytes()[:700])
    res = ctx.cli("average", str(ctx.model_dir()), str(m), "--out", str(ctx.tmp() / "avg"))
    expect_one_line_error(res, "model.safetensors")
