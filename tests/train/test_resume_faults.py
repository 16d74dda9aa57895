"""Resume bookkeeping and damaged checkpoints: the newest checkpoint always survives, metrics.jsonl
holds one row per step, and a pickle or a truncated file in a checkpoint is refused in one line."""

import json
import shutil

import pytest
import torch

from audioflamingo.cli import main
from audioflamingo.data.toy import write_recipe, write_toy
from audioflamingo.train import checkpoint


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # unpickling it would create the marker file
        return (open, (self.marker, "w"))


def _steps(run):
    return [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-step run with checkpoints at 2 and 4 (trained once for the module)."""
    d = tmp_path_factory.mktemp("trained")
    m = write_toy(d / "toy", n=4, seconds=0.3)
    r = write_recipe(d / "r.yaml", m, d / "run", steps=4, micro=2, save_every=2)
    assert main(["train", str(r), "--no-progress"]) == 0
    return m, d / "run"


@pytest.fixture
def stopped_run(trained, tmp_path):
    """A copy of that run with the step-4 checkpoint deleted, as if killed before writing it."""
    m, src = trained
    run = tmp_path / "run"
    shutil.copytree(src, run)
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    shutil.rmtree(run / "final")
    return write_recipe(tmp_path / "r.yaml", m, run, steps=4, micro=2, save_every=2), run


def test_resume_leaves_one_metrics_row_per_step(stopped_run):
    r, run = stopped_run
    assert _steps(run) == [1, 2, 3, 4]
    assert main(["train", str(r), "--resume", "--no-progress"]) == 0
    assert _steps(run) == [1, 2, 3, 4]  # steps 3 and 4 ran twice, logged once


@pytest.mark.parametrize("name", ["optimizer.pt", "rng.pt", "scheduler.pt"])
def test_pickle_in_a_checkpoint_is_refused_in_one_line(name, stopped_run, capsys):
    r, run = stopped_run
    ck = run / "checkpoints" / "step-00000002"
    marker = run / "pwned"
    torch.save({"x": torch.zeros(1), "p": Payload(marker)}, ck / name)
    capsys.readouterr()
    assert main(["train", str(r), "--resume", "--no-progress"]) != 0  # one line, non-zero exit
    err = capsys.readouterr().err.strip()
    assert not marker.exists()
    assert err.count("\n") == 0 and str(ck / name) in err and "refused" in err, err


@pytest.mark.parametrize(
    "name,damage",
    [
        ("optimizer.pt", lambda f: f.write_bytes(f.read_bytes()[:100])),
        ("model.safetensors", lambda f: f.write_bytes(f.read_bytes()[:500])),
        ("trainer_state.json", lambda f: f.write_text("{oops")),
    ],
)
def test_damaged_checkpoint_file_is_named_in_one_line(name, damage, stopped_run, capsys):
    r, run = stopped_run
    f = run / "checkpoints" / "step-00000002" / name
    damage(f)
    capsys.readouterr()
    assert main(["train", str(r), "--resume", "--no-progress"]) != 0  # one line, non-zero exit
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(f) in err, err


def test_keep_last_zero_never_deletes_the_checkpoint_just_written(tmp_path):
    from audioflamingo.presets import build

    model, tok = build("tiny")
    opt = torch.optim.SGD([p for p in model.parameters()][:1], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    for step in (1, 2):
        checkpoint.save(
            tmp_path,
            step,
            model,
            tok,
            opt,
            sched,
            {"stage_index": 0, "stage_step": step, "global_step": step, "sampler": {}},
            keep_last=0,
        )
    assert checkpoint.latest(tmp_path).name == "step-00000002"
    assert [p.name for p in checkpoint.checkpoint_dir(tmp_path).iterdir()] == ["step-00000002"]
