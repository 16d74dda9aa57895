"""Manifests through `audioflamingo data validate` (and the commands that read them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.battery.harness import Fail, collection, expect_ok, expect_one_line_error

cases, case = collection("manifest")


def write_manifest_with_clip(ctx, n: int = 1, records: list[dict] | None = None) -> Path:
    """A manifest folder holding `n` readable clips (a0.wav...) and caption records for them."""
    d = ctx.tmp()
    recs = []
    for i in range(n):
        t = np.arange(16000) / 16000
        sf.write(d / f"a{i}.wav", (0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)).astype("float32"), 16000)
        recs.append({"id": f"r{i}", "audio": f"a{i}.wav", "task": "caption", "output": "a tone"})
    m = d / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in (records if records is not None else recs)))
    return m


def validate(ctx, manifest: Path, *extra: str):
    return ctx.cli("data", "validate", str(manifest), *extra)


def expect_problem(res, *must_contain: str) -> None:
    """`data validate` found a problem: exit 1, no traceback, a `file:line: problem` on stdout."""
    if res.traceback:
        raise Fail(f"traceback: {res.traceback.strip().splitlines()[-1][:200]}")
    if res.rc == 0:
        raise Fail(f"exit code 0 (accepted): {res.err.strip()[-200:]}")
    text = res.out + res.err
    for s in must_contain:
        if s not in text:
            raise Fail(f"output does not say {s!r}: {text.strip()[:300]}")


def _with_audio(ctx, samples: np.ndarray, subtype: str = "FLOAT") -> Path:
    m = write_manifest_with_clip(ctx)
    sf.write(m.parent / "a0.wav", samples.astype("float32"), 16000, subtype=subtype)
    return m


@case("sound manifest validates")
def _(ctx):
    expect_ok(validate(ctx, write_manifest_with_clip(ctx, n=2)))


@case("audio with NaN samples")
def _(ctx):
    x = np.zeros(16000, np.float32)
    x[100] = np.nan
    expect_problem(validate(ctx, _with_audio(ctx, x)), "NaN")


@case("audio with infinite samples")
def _(ctx):
    x = np.zeros(16000, np.float32)
    x[5] = np.inf
    expect_problem(validate(ctx, _with_audio(ctx, x)), "infinite")


@case("audio path escaping the manifest folder (../)")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    outside = m.parent.parent / "outside.wav"
    sf.write(outside, np.zeros(1600, np.float32), 16000)
    m.write_text(json.dumps({"audio": "../outside.wav", "task": "caption", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "outside the manifest's folder")


@case("audio path escaping through a symlinked folder")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    elsewhere = ctx.tmp()
    sf.write(elsewhere / "x.wav", np.zeros(1600, np.float32), 16000)
    os.symlink(elsewhere, m.parent / "link")
    m.write_text(json.dumps({"audio": "link/x.wav", "task": "caption", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "outside the manifest's folder")


@case("absolute audio path outside the manifest folder (--root widens it)")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    elsewhere = ctx.tmp()
    sf.write(elsewhere / "x.wav", np.zeros(1600, np.float32), 16000)
    m.write_text(json.dumps({"audio": str(elsewhere / "x.wav"), "task": "caption", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "outside the manifest's folder")
    expect_ok(validate(ctx, m, "--root", str(elsewhere.parent)))


@case("absolute audio path inside the manifest folder")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    m.write_text(json.dumps({"audio": str(m.parent / "a0.wav"), "task": "caption", "output": "x"}) + "\n")
    expect_ok(validate(ctx, m))


@case("empty manifest")
def _(ctx):
    m = ctx.tmp() / "empty.jsonl"
    m.write_text("")
    expect_problem(validate(ctx, m), "no records")


@case("manifest of blank lines only")
def _(ctx):
    m = ctx.tmp() / "blank.jsonl"
    m.write_text("\n\n  \n")
    expect_problem(validate(ctx, m), "no records")


@case("manifest with invalid UTF-8")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    m.write_bytes(b'{"audio": "a0.wav", "task": "caption", "output": "caf\xe9"}\n')
    expect_problem(validate(ctx, m), "UTF-8")


@case("audio path is a directory")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    (m.parent / "adir.wav").mkdir()
    m.write_text(json.dumps({"audio": "adir.wav", "task": "caption", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "directory")


@case("audio path is a symlink loop")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    os.symlink(m.parent / "loop2.wav", m.parent / "loop1.wav")
    os.symlink(m.parent / "loop1.wav", m.parent / "loop2.wav")
    m.write_text(json.dumps({"audio": "loop1.wav", "task": "caption", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "symlink loop")


@case("audio path is a dangling symlink")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    os.symlink(m.parent / "gone.wav", m.parent / "dangling.wav")
    m.write_text(json.dumps({"audio": "dangling.wav", "task": "caption", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "dangling.wav")


@case("audio file missing")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    m.write_text(json.dumps({"audio": "nope.wav", "task": "caption", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "not found")


@case("audio file is text")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    (m.parent / "a0.wav").write_text("not audio")
    expect_problem(validate(ctx, m), "unreadable")


@case("zero-length audio")
def _(ctx):
    expect_problem(validate(ctx, _with_audio(ctx, np.zeros(0))), "zero-length")


@case("offset past the end")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    m.write_text(json.dumps({"audio": "a0.wav", "offset": 50, "task": "caption", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "past the end")


@case("invalid JSON line")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    m.write_text(m.read_text() + "{oops\n")
    expect_problem(validate(ctx, m), ":2:")


@case("line is a JSON array, not an object")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    m.write_text("[1, 2]\n")
    expect_problem(validate(ctx, m), ":1:")


@case("unknown task")
def _(ctx):
    m = write_manifest_with_clip(ctx)
    m.write_text(json.dumps({"audio": "a0.wav", "task": "dance", "output": "x"}) + "\n")
    expect_problem(validate(ctx, m), "dance")


@case("duplicate ids")
def _(ctx):
    m = write_manifest_with_clip(ctx, records=[{"id": "x", "audio": "a0.wav", "task": "caption", "output": "a"}] * 2)
    expect_problem(validate(ctx, m), "duplicate id")


@case("classify output not among its options")
def _(ctx):
    m = write_manifest_with_clip(
        ctx, records=[{"audio": "a0.wav", "task": "classify", "output": "cow", "options": ["dog", "cat"]}]
    )
    expect_problem(validate(ctx, m), "not one of the options")


@case("manifest file missing")
def _(ctx):
    expect_problem(validate(ctx, ctx.tmp() / "none.jsonl"), "not found")


@case("manifest path is a directory")
def _(ctx):
    expect_problem(validate(ctx, ctx.tmp()), "directory")


@case("train on a manifest with invalid UTF-8: one line")
def _(ctx):
    from bench.battery.cases_recipe import write_recipe

    m = write_manifest_with_clip(ctx)
    m.write_bytes(b'{"audio": "a0.wav", "task": "caption", "output": "caf\xe9"}\n')
    expect_one_line_error(ctx.cli("train", str(write_recipe(ctx, m)), "--dry-run"), str(m))


@case("train on an empty manifest: one line")
def _(ctx):
    from bench.battery.cases_recipe import write_recipe

    m = ctx.tmp() / "empty.jsonl"
    m.write_text("")
    expect_one_line_error(ctx.cli("train", str(write_recipe(ctx, m)), "--dry-run"), str(m))
