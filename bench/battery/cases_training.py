"""Faults during training: kills, corrupt or malicious checkpoints, bad clips, resume bookkeeping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.battery.cases_model import evil_pickle, expect_not_executed
from bench.battery.harness import REPO, Fail, collection, expect_ok, expect_one_line_error

cases, case = collection("training")


def toy_recipe(ctx, steps: int = 12, save_every: int = 2, keep_last: int = 2, unreadable: int = 0) -> Path:
    from audioflamingo.data.toy import write_recipe, write_toy

    d = ctx.tmp()
    m = write_toy(d / "toy", n=4, seconds=0.5, unreadable=unreadable)
    return write_recipe(
        d / "r.yaml", m, d / "run", steps=steps, micro=2, save_every=save_every, extra_train={"keep_last": keep_last}
    )


def run_dir(recipe: Path) -> Path:
    return recipe.parent / "run"


def metrics(recipe: Path) -> list[dict]:
    f = run_dir(recipe) / "metrics.jsonl"
    return [json.loads(l) for l in f.read_text().splitlines()] if f.is_file() else []


def kill_when(recipe: Path, ready, timeout: float = 300) -> None:
    """Start `train` in its own process and SIGKILL it as soon as `ready()` holds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "audioflamingo", "train", str(recipe), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if ready():
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def losses(recipe: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in metrics(recipe) if "loss" in r}


def checkpoints(recipe: Path) -> list[Path]:
    d = run_dir(recipe) / "checkpoints"
    return sorted(p for p in d.glob("step-*") if not p.name.endswith(".tmp")) if d.is_dir() else []


def trained_checkpoint(ctx, steps: int = 2) -> Path:
    """A recipe whose run stopped with a checkpoint after `steps` of 6 steps (as if killed)."""
    r = toy_recipe(ctx, steps=steps, save_every=steps)
    expect_ok(ctx.cli("train", str(r), "--no-progress"))
    text = r.read_text().replace(f"steps: {steps}\n", "steps: 6\n")
    r.write_text(text)
    return r


@case("SIGKILL mid-run, --resume: the same losses as an uninterrupted run")
def _(ctx):
    ref = toy_recipe(ctx, steps=12)
    expect_ok(ctx.run("train", str(ref), "--no-progress"))
    cut = toy_recipe(ctx, steps=12)
    kill_when(cut, lambda: len(metrics(cut)) >= 7)
    if len(losses(cut)) >= 12:
        raise Fail("the run finished before the kill")
    expect_ok(ctx.run("train", str(cut), "--resume", "--no-progress"))
    a, b = losses(ref), losses(cut)
    if a != b:
        diff = [s for s in a if a.get(s) != b.get(s)][:3]
        raise Fail(f"losses differ after resume at steps {diff}")


@case("SIGKILL inside a checkpoint write: the latest checkpoint loads, resume works")
def _(ctx):
    r = toy_recipe(ctx, steps=40, save_every=1, keep_last=2)
    root = run_dir(r) / "checkpoints"
    kill_when(r, lambda: len(checkpoints(r)) >= 2 and any(root.glob("*.tmp")))
    from audioflamingo.model.flamingo import AudioFlamingo

    AudioFlamingo.from_pretrained(checkpoints(r)[-1])
    expect_ok(ctx.run("train", str(r), "--resume", "--no-progress"))


@case("keep_last: 1 and a kill right after a save: the run is not lost")
def _(ctx):
    r = toy_recipe(ctx, steps=40, save_every=3, keep_last=1)
    kill_when(r, lambda: len(checkpoints(r)) >= 1 and len(metrics(r)) >= 4)
    if not checkpoints(r):
        raise Fail("no checkpoint left after the kill")
    res = ctx.run("train", str(r), "--resume", "--no-progress")
    expect_ok(res)
    if "starting fresh" in res.out + res.err:
        raise Fail("resume started from scratch")


@case("metrics.jsonl has one row per step after a resume")
def _(ctx):
    r = toy_recipe(ctx, steps=12, save_every=4)
    kill_when(r, lambda: len(metrics(r)) >= 6)
    expect_ok(ctx.run("train", str(r), "--resume", "--no-progress"))
    steps = [m["step"] for m in metrics(r) if "loss" in m]
    if steps != sorted(set(steps)):
        dup = sorted({s for s in steps if steps.count(s) > 1})
        raise Fail(f"duplicate rows for steps {dup[:5]}")
    if steps != list(range(1, 13)):
        raise Fail(f"steps logged: {steps}")


@case("--resume with no checkpoint starts fresh and says so")
def _(ctx):
    r = toy_recipe(ctx, steps=2, save_every=0)
    res = ctx.cli("train", str(r), "--resume", "--no-progress")
    expect_ok(res)
    if "starting fresh" not in res.out + res.err:
        raise Fail("no message about starting fresh")


@case("unreadable clips are skipped and counted")
def _(ctx):
    r = toy_recipe(ctx, steps=4, save_every=0, unreadable=2)
    expect_ok(ctx.cli("train", str(r), "--no-progress"))
    last = [m for m in metrics(r) if "loss" in m][-1]
    if not last.get("skipped_clips"):
        raise Fail("skipped clips not counted")


def _poisoned_resume(ctx, name: str) -> None:
    r = trained_checkpoint(ctx)
    ck = checkpoints(r)[-1]
    marker = ck.parent / "pwned"
    evil_pickle(ck / name, marker)
    res = ctx.cli("train", str(r), "--resume", "--no-progress")
    expect_not_executed(marker)
    expect_one_line_error(res, name)


@case("optimizer.pt holding a pickle: resume refuses it in one line")
def _(ctx):
    _poisoned_resume(ctx, "optimizer.pt")


@case("rng.pt holding a pickle: resume refuses it in one line")
def _(ctx):
    _poisoned_resume(ctx, "rng.pt")


@case("scheduler.pt holding a pickle: resume refuses it in one line")
def _(ctx):
    _poisoned_resume(ctx, "scheduler.pt")


@case("optimizer.pt truncated: resume refuses it in one line")
def _(ctx):
    r = trained_checkpoint(ctx)
    f = checkpoints(r)[-1] / "optimizer.pt"
    f.write_bytes(f.read_bytes()[:200])
    expect_one_line_error(ctx.cli("train", str(r), "--resume", "--no-progress"), "optimizer.pt")


@case("trainer_state.json corrupt: resume refuses it in one line")
def _(ctx):
    r = trained_checkpoint(ctx)
    (checkpoints(r)[-1] / "trainer_state.json").write_text("{oops")
    expect_one_line_error(ctx.cli("train", str(r), "--resume", "--no-progress"), "trainer_state.json")


@case("checkpoint model.safetensors truncated: resume refuses it in one line")
def _(ctx):
    r = trained_checkpoint(ctx)
    f = checkpoints(r)[-1] / "model.safetensors"
    f.write_bytes(f.read_bytes()[:1000])
    expect_one_line_error(ctx.cli("train", str(r), "--resume", "--no-progress"), "model.safetensors")


@case("manifest deleted before --resume: one line")
def _(ctx):
    r = trained_checkpoint(ctx)
    (r.parent / "toy" / "train.jsonl").unlink()
    expect_one_line_error(ctx.cli("train", str(r), "--resume", "--no-progress"), "train.jsonl")
