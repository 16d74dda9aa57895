"""bench/recipe_speed.py: per-stage medians from a trainer's metrics.jsonl, warm-up steps left out."""

import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("recipe_speed", Path(__file__).parents[2] / "bench" / "recipe_speed.py")
rs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rs)


def test_stage_medians_skip_warm_up_and_split_stages(tmp_path, capsys):
    rows, t = [], 0.0
    for stage, n, dt in [("pretrain", 10, 0.5), ("sft", 8, 2.0)]:
        for i in range(n):
            t += 30.0 if i == 0 else dt  # the first step of a stage is slow (load, warm-up)
            rows.append(
                {
                    "step": len(rows) + 1,
                    "stage": stage,
                    "loss": 1.0 / (i + 1),
                    "time": t,
                    "samples_per_s": 8 / dt,
                    "tokens_per_s": 100 / dt,
                    "peak_rss_mb": 900.0 + i,
                }
            )
    rows.insert(3, {"step": 3, "stage": "pretrain", "val_loss": 0.7})  # not a training step
    m = tmp_path / "metrics.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = {r["stage"]: r for r in rs.stage_speed(m, skip=2)}
    assert got["pretrain"]["s_per_step"] == 0.5 and got["pretrain"]["timed_steps"] == 7
    assert got["sft"]["s_per_step"] == 2.0 and got["sft"]["samples_per_s"] == 4.0
    assert got["sft"]["peak_cuda_mb"] is None and got["sft"]["peak_rss_mb"] == 907
    assert got["sft"]["last_loss"] == 0.125
    out = tmp_path / "speed.json"
    assert rs.main([str(m), "--skip", "2", "--out", str(out)]) == 0
    assert "sft: 2.000 s/step (median of 5)" in capsys.readouterr().out
    assert len(json.loads(out.read_text())) == 2
