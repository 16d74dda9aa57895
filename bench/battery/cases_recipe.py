"""Training recipes: every mistake refused in one line naming the file and the key, before any work."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from bench.battery.harness import Fail, collection, expect_ok, expect_one_line_error

cases, case = collection("recipe")

BASE = {
    "model": {"init": "tiny"},
    "seed": 0,
    "train": {"micro_batch_size": 2, "max_tokens": 128, "save_every": 0, "keep_last": 2, "eval_every": 0},
    "stages": [{"name": "sft", "kind": "sft", "steps": 1, "lr": 1e-3, "datasets": [{"manifest": "m.jsonl"}]}],
}


def write_recipe(ctx, manifest: Path, edit=None, text: str | None = None) -> Path:
    """A one-stage recipe over `manifest`, writing to a fresh folder; `edit(dict)` breaks it."""
    d = ctx.tmp()
    r = copy.deepcopy(BASE)
    r["output_dir"] = str(d / "run")
    r["stages"][0]["datasets"][0]["manifest"] = str(manifest)
    if edit:
        edit(r)
    p = d / "recipe.yaml"
    p.write_text(text if text is not None else yaml.safe_dump(r, sort_keys=False))
    return p


def _manifest(ctx) -> Path:
    from bench.battery.cases_manifest import write_manifest_with_clip

    return write_manifest_with_clip(ctx, n=2)


def refused(ctx, edit, *must_contain: str, text: str | None = None) -> None:
    """Both `--dry-run` and `train` refuse it in one line, and nothing is written."""
    r = write_recipe(ctx, _manifest(ctx), edit, text)
    for extra in (["--dry-run"], ["--no-progress"]):
        expect_one_line_error(ctx.cli("train", str(r), *extra), str(r), *must_contain)
    if (r.parent / "run").exists():
        raise Fail("the output folder was created before the recipe was refused")


def stage(**kw):
    return lambda r: r["stages"][0].update(kw)


def train(**kw):
    return lambda r: r["train"].update(kw)


@case("sound recipe: dry run")
def _(ctx):
    expect_ok(ctx.cli("train", str(write_recipe(ctx, _manifest(ctx))), "--dry-run"))


@case('steps: "ten"')
def _(ctx):
    refused(ctx, stage(steps="ten"), "steps")


@case("steps: -5")
def _(ctx):
    refused(ctx, stage(steps=-5), "steps")


@case("steps: 0")
def _(ctx):
    refused(ctx, stage(steps=0), "steps")


@case("steps: true")
def _(ctx):
    refused(ctx, stage(steps=True), "steps")


@case("steps: 2.5")
def _(ctx):
    refused(ctx, stage(steps=2.5), "steps")


@case("duplicate stage names")
def _(ctx):
    refused(ctx, lambda r: r["stages"].append(copy.deepcopy(r["stages"][0])), "name")


@case("keep_last: 0")
def _(ctx):
    refused(ctx, train(keep_last=0), "keep_last")


@case("keep_last: -1")
def _(ctx):
    refused(ctx, train(keep_last=-1), "keep_last")


@case("micro_batch_size: 0")
def _(ctx):
    refused(ctx, train(micro_batch_size=0), "micro_batch_size")


@case("grad_accum: 0")
def _(ctx):
    refused(ctx, train(grad_accum=0), "grad_accum")


@case("save_every: -1")
def _(ctx):
    refused(ctx, train(save_every=-1), "save_every")


@case('max_tokens: "lots"')
def _(ctx):
    refused(ctx, train(max_tokens="lots"), "max_tokens")


@case("betas: [0.9]")
def _(ctx):
    refused(ctx, train(betas=[0.9]), "betas")


@case('lr: "fast"')
def _(ctx):
    refused(ctx, stage(lr="fast"), "lr")


@case("lr: -1")
def _(ctx):
    refused(ctx, stage(lr=-1), "lr")


@case("lr written 1e-4 (YAML 1.1 reads it as a string) is a number")
def _(ctx):
    r = write_recipe(ctx, _manifest(ctx))
    text = r.read_text().replace("lr: 0.001", "lr: 1e-4")
    assert "1e-4" in text
    r.write_text(text)
    expect_ok(ctx.cli("train", str(r), "--dry-run"))


@case("warmup_steps: -1")
def _(ctx):
    refused(ctx, stage(warmup_steps=-1), "warmup_steps")


@case("kind: dance")
def _(ctx):
    refused(ctx, stage(kind="dance"), "kind")


@case("schedule: linear")
def _(ctx):
    refused(ctx, stage(schedule="linear"), "schedule")


@case("stage without datasets")
def _(ctx):
    refused(ctx, lambda r: r["stages"][0].pop("datasets"), "datasets")


@case('dataset weight: "heavy"')
def _(ctx):
    refused(ctx, lambda r: r["stages"][0]["datasets"][0].update(weight="heavy"), "weight")


@case("dataset weight: -1")
def _(ctx):
    refused(ctx, lambda r: r["stages"][0]["datasets"][0].update(weight=-1), "weight")


@case("dataset manifest missing")
def _(ctx):
    refused(ctx, lambda r: r["stages"][0]["datasets"][0].update(manifest="nope.jsonl"), "nope.jsonl")


@case("max_windows: 0")
def _(ctx):
    refused(ctx, stage(max_windows=0), "max_windows")


@case("unknown stage key")
def _(ctx):
    refused(ctx, stage(stepz=3), "stepz")


@case("unknown train key")
def _(ctx):
    refused(ctx, train(batch_size=3), "batch_size")


@case("unknown top-level key")
def _(ctx):
    refused(ctx, lambda r: r.update(stagess=[]), "stagess")


@case("stages: {a: 1}")
def _(ctx):
    refused(ctx, lambda r: r.update(stages={"a": 1}), "stages")


@case("stages: []")
def _(ctx):
    refused(ctx, lambda r: r.update(stages=[]), "stages")


@case("stages: [1]")
def _(ctx):
    refused(ctx, lambda r: r.update(stages=[1]), "stages")


@case('seed: "x"')
def _(ctx):
    refused(ctx, lambda r: r.update(seed="x"), "seed")


@case("model: a plain string")
def _(ctx):
    refused(ctx, lambda r: r.update(model="tiny"), "model")


@case("model.init: a folder that does not exist")
def _(ctx):
    refused(ctx, lambda r: r.update(model={"init": "no/such/model"}), "no/such/model")


@case("output_dir: 5")
def _(ctx):
    refused(ctx, lambda r: r.update(output_dir=5), "output_dir")


@case("YAML syntax error")
def _(ctx):
    refused(ctx, None, text="stages:\n  - name: [unclosed\n    kind: sft\n")


@case("YAML duplicate key")
def _(ctx):
    text = write_recipe(ctx, _manifest(ctx)).read_text()
    assert "  steps: 1\n" in text
    refused(ctx, None, "steps", text=text.replace("  steps: 1\n", "  steps: 1\n  steps: 3\n"))


@case("recipe is a plain string")
def _(ctx):
    refused(ctx, None, text="just some words\n")


@case("recipe is a list")
def _(ctx):
    refused(ctx, None, text="- 1\n- 2\n")


@case("recipe file is empty")
def _(ctx):
    refused(ctx, None, text="")


@case("recipe file is not UTF-8")
def _(ctx):
    r = write_recipe(ctx, _manifest(ctx))
    r.write_bytes(r.read_bytes() + b"# caf\xe9\n")
    expect_one_line_error(ctx.cli("train", str(r), "--dry-run"), str(r))


@case("recipe file missing")
def _(ctx):
    expect_one_line_error(ctx.cli("train", str(ctx.tmp() / "none.yaml"), "--dry-run"), "none.yaml")


@case("recipe path is a directory")
def _(ctx):
    d = ctx.tmp()
    expect_one_line_error(ctx.cli("train", str(d), "--dry-run"), str(d))
