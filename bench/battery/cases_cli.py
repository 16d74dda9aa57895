"""The inference commands (caption, ask, classify, chat, embed, index) on bad files and arguments."""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf

from bench.battery.harness import Fail, collection, expect_ok, expect_one_line_error

cases, case = collection("cli")


def _caption(ctx, f):
    return ctx.cli("caption", str(f), "--model", str(ctx.model_dir()))


def _file(ctx, name: str, data: bytes):
    p = ctx.tmp() / name
    p.write_bytes(data)
    return p


@case("caption a sound clip")
def _(ctx):
    expect_ok(_caption(ctx, ctx.clip()))


@case("audio file missing")
def _(ctx):
    expect_one_line_error(_caption(ctx, ctx.tmp() / "gone.wav"), "gone.wav", "not found")


@case("audio path is a directory")
def _(ctx):
    d = ctx.tmp() / "dir.wav"
    d.mkdir()
    expect_one_line_error(_caption(ctx, d), "dir.wav", "directory")


@case("audio path is a symlink loop")
def _(ctx):
    d = ctx.tmp()
    os.symlink(d / "b.wav", d / "a.wav")
    os.symlink(d / "a.wav", d / "b.wav")
    expect_one_line_error(_caption(ctx, d / "a.wav"), "a.wav", "symlink loop")


@case("audio file empty (0 bytes)")
def _(ctx):
    expect_one_line_error(_caption(ctx, _file(ctx, "e.wav", b"")), "e.wav")


@case("audio file is text")
def _(ctx):
    expect_one_line_error(_caption(ctx, _file(ctx, "t.wav", b"hello, not audio\n")), "t.wav")


@case("audio file of random bytes")
def _(ctx):
    expect_one_line_error(_caption(ctx, _file(ctx, "r.flac", os.urandom(5000))), "r.flac")


@case("audio with NaN samples")
def _(ctx):
    p = ctx.tmp() / "nan.wav"
    x = np.zeros(16000, np.float32)
    x[10] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    expect_one_line_error(_caption(ctx, p), "nan.wav", "NaN")


@case("zero-length audio")
def _(ctx):
    p = ctx.tmp() / "zero.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    expect_one_line_error(_caption(ctx, p), "zero.wav")


@case("one bad file among good ones: nothing printed")
def _(ctx):
    good, bad = ctx.clip(), _file(ctx, "bad.wav", b"junk")
    res = ctx.cli("caption", str(good), str(bad), "--model", str(ctx.model_dir()))
    expect_one_line_error(res, "bad.wav")
    if res.out.strip():
        raise Fail("printed results before refusing")


@case("classify --labels with duplicates: merged and said so")
def _(ctx):
    res = ctx.cli(
        "classify", str(ctx.clip()), "--labels", "piano,piano,organ", "--json", "--model", str(ctx.model_dir())
    )
    expect_ok(res)
    scores = json.loads(res.out.strip().splitlines()[-1])["scores"]
    labels = [s["label"] for s in scores]
    if sorted(labels) != ["organ", "piano"]:
        raise Fail(f"labels ranked: {labels}")
    if "piano" not in res.err or "duplicate" not in res.err:
        raise Fail("no warning naming the duplicate label")


@case("classify --labels empty")
def _(ctx):
    expect_one_line_error(
        ctx.cli("classify", str(ctx.clip()), "--labels", " , ", "--model", str(ctx.model_dir())), "label"
    )


@case("embed a long file: the warning names the file")
def _(ctx):
    p = ctx.clip(seconds=12.0, name="long-one.wav")
    res = ctx.cli("embed", str(p), "--model", str(ctx.model_dir()))
    expect_ok(res)
    warn = [l for l in res.err.splitlines() if "longer than" in l]
    if not warn or "long-one.wav" not in warn[0]:
        raise Fail(f"warning does not name the file: {warn[:1]}")


@case("caption a long file: the warning names the file")
def _(ctx):
    p = ctx.clip(seconds=12.0, name="long-two.wav")
    res = _caption(ctx, p)
    expect_ok(res)
    if "long-two.wav" not in res.err:
        raise Fail("warning does not name the file")


@case("chat on a missing file")
def _(ctx):
    expect_one_line_error(ctx.cli("chat", str(ctx.tmp() / "no.wav"), "--model", str(ctx.model_dir())), "no.wav")


@case("--rag with a missing datastore")
def _(ctx):
    res = ctx.cli("caption", str(ctx.clip()), "--model", str(ctx.model_dir()), "--rag", str(ctx.tmp() / "nostore"))
    expect_one_line_error(res, "nostore")


@case("index build on an empty manifest")
def _(ctx):
    m = ctx.tmp() / "empty.jsonl"
    m.write_text("")
    res = ctx.cli("index", "build", str(m), "--out", str(ctx.tmp() / "store"), "--model", str(ctx.model_dir()))
    expect_one_line_error(res, "empty.jsonl")


@case("info on a folder that is no model")
def _(ctx):
    expect_one_line_error(ctx.cli("info", "--model", str(ctx.tmp())), "config.json")


@case("average models of different configs")
def _(ctx):
    from audioflamingo.presets import build

    other = ctx.tmp() / "other"
    model, tok = build("tiny", seed=1, lm_overrides={"num_hidden_layers": 1})
    model.save_pretrained(other, tok)
    res = ctx.cli("average", str(ctx.model_dir()), str(other), "--out", str(ctx.tmp() / "avg"))
    expect_one_line_error(res)


def _flag(ctx, *flags):
    return ctx.cli("caption", str(ctx.clip()), "--model", str(ctx.model_dir()), *flags)


@case("--batch-size 0")
def _(ctx):
    expect_one_line_error(_flag(ctx, "--batch-size", "0"), "batch")


@case("--max-new-tokens -1")
def _(ctx):
    expect_one_line_error(_flag(ctx, "--max-new-tokens", "-1"), "max")


@case("--beams 0")
def _(ctx):
    expect_one_line_error(_flag(ctx, "--beams", "0"), "beam")


@case("--sample --top-p 5")
def _(ctx):
    expect_one_line_error(_flag(ctx, "--sample", "--top-p", "5"), "top_p")


@case("--sample --temperature nan")
def _(ctx):
    expect_one_line_error(_flag(ctx, "--sample", "--temperature", "nan"), "temperature")


@case("--sample --top-k -3")
def _(ctx):
    expect_one_line_error(_flag(ctx, "--sample", "--top-k", "-3"), "top_k")


@case("--dtype float16 on CPU: works or one line")
def _(ctx):
    res = _flag(ctx, "--dtype", "float16")
    if res.rc != 0:
        expect_one_line_error(res, "float16")
    else:
        expect_ok(res)
