"""The eval report's figures: one panel per metric, runs named with model and item counts, the
paper's numbers marked apart; rerunnable on a glob that matches its own output."""

import json

import pytest

from audioflamingo.eval.report import load_runs, make_report, panels


def _run(d, bench, metrics, items, shots=0, model="runs/m/final", paper=None):
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(
        json.dumps(
            {
                "benchmark": bench,
                "model": model,
                "shots": shots,
                "items": items,
                "missing_audio": 0,
                "decoding": {"max_new_tokens": 8},
                "metrics": metrics,
                "paper": paper or {},
            }
        )
    )
    return d


def test_one_panel_per_metric_with_item_counts_and_paper_marked(tmp_path):
    runs = [
        _run(tmp_path / "a", "clotho-v2", {"CIDEr-D": 0.3}, 5, paper={"CIDEr-D": 0.465}),
        _run(tmp_path / "b", "gtzan", {"accuracy": 0.4, "macro-F1": 0.3}, 5, paper={"accuracy": 0.679}),
        _run(tmp_path / "c", "gtzan", {"accuracy": 0.6, "macro-F1": 0.5}, 5, shots=4),
    ]
    by_metric = panels(load_runs(runs))
    assert sorted(by_metric) == ["CIDEr-D", "accuracy"]  # never on one axis
    assert [b["items"] for b in by_metric["accuracy"]] == [5, 5] and by_metric["CIDEr-D"][0]["paper"] == 0.465
    report = make_report(runs, tmp_path / "report")
    md = report.read_text()
    assert "Model: `final` (runs/m/final)" in md and "| gtzan | final | 4 | accuracy | 0.600 | 5 | 0 | — |" in md
    assert "| clotho-v2 | final | 0 | CIDEr-D | 0.300 | 5 | 0 | 0.465 |" in md
    assert (tmp_path / "report" / "benchmarks.png").is_file() and (tmp_path / "report" / "shots.png").is_file()


def test_rerun_on_a_glob_that_matches_its_own_output(tmp_path):
    _run(tmp_path / "runs" / "a", "gtzan", {"accuracy": 0.4}, 3)
    make_report([tmp_path / "runs" / "a"], tmp_path / "runs" / "report")
    again = sorted((tmp_path / "runs").iterdir())  # runs/* now holds the report folder too
    assert make_report(again, tmp_path / "runs" / "report").is_file()
    (tmp_path / "runs" / "typo").mkdir()
    with pytest.raises(FileNotFoundError, match="typo/metrics.json"):
        make_report(sorted((tmp_path / "runs").iterdir()), tmp_path / "runs" / "report")
