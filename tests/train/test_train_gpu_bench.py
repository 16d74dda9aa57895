"""bench/train_gpu.py at its tiny size on the CPU: its FLOP formula against torch's FLOP counter, and
its configurations (plain, FSDP, activation checkpointing) training alike."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import train_gpu

        yield train_gpu
    finally:
        sys.path.remove(str(ROOT / "bench"))


@pytest.mark.parametrize("stage", ["sft", "pretrain"])
def test_weight_flops_match_torchs_flop_counter(bench, stage):
    from torch.utils.flop_counter import FlopCounterMode

    from audioflamingo.train.stages import set_trainable
    from audioflamingo.train.step import TrainStep

    model, windows = bench.build("tiny", torch.device("cpu"))
    set_trainable(model, stage)
    micro, text = 2, 48
    data = bench.batch(model, windows, micro, text, torch.device("cpu"))
    with FlopCounterMode(display=False) as fc:
        TrainStep(model)(*data).backward()
    # Matrix products with weights (mm/addmm); attention products are counted apart (bmm, SDPA).
    counts = fc.get_flop_counts()["Global"]
    measured = sum(v for op, v in counts.items() if str(op) in ("aten.mm", "aten.addmm"))
    audio = windows * model.config.encoder.tokens_per_window
    # TrainStep runs the output head only where a target follows: text - 2 positions in bench.batch
    formula = micro * bench.count_flops(model, text, audio, stage, targets=text - 2)["weights"]
    assert abs(formula - measured) <= 0.02 * measured, (formula, measured)


def test_configurations_run_and_train_alike(tmp_path):
    out = tmp_path / "r.json"
    cmd = [sys.executable, str(ROOT / "bench" / "train_gpu.py"), "--device", "cpu", "--size", "tiny"]
    cmd += ["--configs", "plain,fsdp+ac", "--steps", "2", "--warmup", "0", "--micro-batch", "1", "--seq-len", "16"]
    cmd += ["--precision", "fp32", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    plain, fsdp = res["runs"]
    assert [plain["config"], fsdp["config"]] == ["plain", "fsdp+ac"]
    for row in (plain, fsdp):
        assert row["tokens_per_s"] > 0 and 0 < row["mfu"] < 1 and row["peak_mem_mb"] > 0
    # the loss of the second step: after one AdamW update, the same under both
    assert abs(plain["loss_last"] - fsdp["loss_last"]) <= 1e-5 * plain["loss_last"]
