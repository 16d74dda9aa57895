"""Sharded training (train.parallel: fsdp, FSDP2 on gloo): the losses of one process and of DDP, exact
resume, checkpoints every command loads, memory per rank, and recipe errors in one line.

One 2-process FSDP run (with activation checkpointing, a frozen-LM pretrain stage then an SFT stage,
gradient accumulation, unreadable clips and validation) is shared by the tests of this module."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from audioflamingo.cli import main
from audioflamingo.data.toy import losses, write_recipe, write_toy

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
STEPS = 3  # per stage


def _recipe(path: Path, manifest: Path, val: Path, out: Path, micro: int, accum: int, **train) -> Path:
    r = write_recipe(
        path,
        manifest,
        out,
        steps=STEPS,
        micro=micro,
        accum=accum,
        save_every=2,
        extra_train={"keep_last": 5, "eval_every": STEPS, "eval_batches": 2, **train},
    )
    spec = yaml.safe_load(r.read_text())
    sft = dict(spec["stages"][0], val=[str(val)])
    spec["stages"] = [dict(sft, name="pretrain", kind="pretrain"), sft]
    r.write_text(yaml.safe_dump(spec))
    return r


def _train(recipe: Path, nproc: int, *extra: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "audioflamingo", "train", str(recipe), "--nproc", str(nproc), "--no-progress", *extra],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]


def _val(run: Path) -> list[float]:
    return [r["val_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "val_loss" in r]


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("fsdp")
    manifest = write_toy(d / "toy", n=8, seconds=0.5, unreadable=2)
    val = d / "val.jsonl"  # 3 records over 2 ranks: one rank runs a stand-in batch
    val.write_text("".join(manifest.read_text().splitlines(keepends=True)[:3]))
    r = _recipe(d / "fsdp.yaml", manifest, val, d / "fsdp", 1, 2, parallel="fsdp", activation_checkpointing=True)
    _train(r, 2)
    return d, manifest, val, r


def test_two_fsdp_processes_give_the_losses_of_one_process_and_of_ddp(fsdp_run, tmp_path):
    d, manifest, val, _ = fsdp_run
    one = _recipe(tmp_path / "one.yaml", manifest, val, tmp_path / "one", 2, 2)
    assert main(["train", str(one), "--no-progress"]) == 0
    ddp = _recipe(tmp_path / "ddp.yaml", manifest, val, tmp_path / "ddp", 1, 2, parallel="ddp")
    _train(ddp, 2)
    f, a, b = losses(d / "fsdp"), losses(tmp_path / "one"), losses(tmp_path / "ddp")
    assert sorted(f) == sorted(a) == sorted(b) == list(range(1, 2 * STEPS + 1))
    for s in f:  # same samples and normalisation; only the order of float sums differs
        assert abs(f[s] - a[s]) <= 1e-5 * abs(a[s]) and abs(f[s] - b[s]) <= 1e-5 * abs(b[s]), (s, f[s], a[s], b[s])
    assert len(_val(d / "fsdp")) == 2
    for x, y in zip(_val(d / "fsdp"), _val(tmp_path / "one")):
        assert abs(x - y) <= 1e-5 * abs(y), (x, y)
    rows = [json.loads(line) for line in (d / "fsdp" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert steps[-1]["skipped_clips"] > 0  # unreadable clips were met (and skipped) under FSDP
    assert all(len(r["peak_rss_mb_per_rank"]) == 2 and min(r["peak_rss_mb_per_rank"]) > 50 for r in steps)


def test_fsdp_resume_is_exact(fsdp_run, tmp_path):
    d, *_, recipe = fsdp_run
    run = tmp_path / "cut"
    shutil.copytree(d / "fsdp", run)
    for p in run.iterdir():  # as if killed right after the step-2 checkpoint
        if p.name.startswith(("stage-", "final")):
            shutil.rmtree(p)
    for p in (run / "checkpoints").iterdir():
        if p.name != "step-00000002":
            shutil.rmtree(p)
    spec = yaml.safe_load(recipe.read_text())
    spec["output_dir"] = str(run)
    r = tmp_path / "cut.yaml"
    r.write_text(yaml.safe_dump(spec))
    _train(r, 2, "--resume")
    a, b = losses(d / "fsdp"), losses(run)
    assert a == b, [(s, a[s], b.get(s)) for s in a if a[s] != b.get(s)]
    assert _val(run) == _val(d / "fsdp")
    from safetensors.torch import load_file

    x, y = load_file(d / "fsdp" / "final" / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    assert sorted(x) == sorted(y) and all((x[k] == y[k]).all() for k in x)


def test_fsdp_checkpoints_load_with_the_normal_loader_and_caption(fsdp_run, capsys):
    import torch

    from audioflamingo.model.flamingo import AudioFlamingo
    from audioflamingo.presets import build
    from audioflamingo.train import checkpoint
    from safetensors import safe_open

    d, manifest, *_ = fsdp_run
    ref, tok = build("tiny", seed=0)
    ref.save_pretrained(d / "unsharded", tok)
    with (
        safe_open(d / "unsharded" / "model.safetensors", "pt") as u,
        safe_open(d / "fsdp" / "final" / "model.safetensors", "pt") as f,
    ):
        assert sorted(f.keys()) == sorted(u.keys()) and f.metadata() == u.metadata()  # the same layout
    for path in (d / "fsdp" / "final", d / "fsdp" / "stage-pretrain", checkpoint.latest(d / "fsdp")):
        model = AudioFlamingo.from_pretrained(path)
        trained = model.fusion.xattn.state_dict().items()
        assert any(not torch.equal(p, ref.fusion.xattn.state_dict()[n]) for n, p in trained)
    # the optimizer file holds full (unsharded) state, keyed by parameter name
    opt = torch.load(checkpoint.latest(d / "fsdp") / "optimizer.pt", weights_only=True)
    assert "lm.model.layers.0.mlp.up_proj.weight" in opt["state"]
    assert opt["state"]["lm.model.layers.0.mlp.up_proj.weight"]["exp_avg"].shape == (128, 64)
    capsys.readouterr()
    clip = manifest.parent / "clips" / "tone000.wav"
    assert main(["caption", str(clip), "--model", str(d / "fsdp" / "final"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["file"] == str(clip) and isinstance(row["caption"], str)


@pytest.mark.parametrize(
    "train,message",
    [
        ({"parallel": "zero3"}, "train.parallel: 'zero3' is not one of ['ddp', 'fsdp']"),
        ({"activation_checkpointing": "yes"}, "train.activation_checkpointing: 'yes' is not of type 'boolean'"),
    ],
)
def test_parallel_settings_are_checked_in_one_line(tmp_path, train, message):
    from audioflamingo.train.recipe import load_recipe
    from audioflamingo.train.recipe_check import RecipeError

    m = write_toy(tmp_path / "toy", n=2)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=1, extra_train=train)
    with pytest.raises(RecipeError) as err:
        load_recipe(r)
    assert str(err.value) == f"{r}: {message}"


def test_an_encoder_trained_under_fsdp_stays_whole_and_learns_as_in_one_process(tmp_path):
    from safetensors.torch import load_file

    m = write_toy(tmp_path / "toy", n=8, seconds=0.5)
    runs = {}
    for name, parallel, micro, nproc in (("one", "ddp", 4, 1), ("fsdp", "fsdp", 2, 2)):
        r = write_recipe(tmp_path / f"{name}.yaml", m, tmp_path / name, steps=3, micro=micro)
        spec = yaml.safe_load(r.read_text())
        spec["train"]["parallel"] = parallel
        spec["stages"][0].update(train_encoder=True, encoder_lr=1e-3)
        r.write_text(yaml.safe_dump(spec))
        _train(r, nproc)
        runs[name] = tmp_path / name
    a, b = losses(runs["one"]), losses(runs["fsdp"])
    assert sorted(a) == sorted(b) == [1, 2, 3]
    assert all(abs(a[s] - b[s]) <= 1e-5 * a[s] for s in a), (a, b)
    x, y = (load_file(runs[n] / "final" / "model.safetensors") for n in ("one", "fsdp"))
    enc = [k for k in x if k.startswith("encoder.")]
    assert enc and all((x[k] - y[k]).abs().max() <= 1e-5 for k in enc)
    from audioflamingo.presets import build

    start = build("tiny", seed=0)[0].state_dict()
    assert any((x[k] - start[k]).abs().max() > 1e-4 for k in enc)  # it did train
