"""`audioflamingo eval` end to end on a tiny model: batched, resumable, few-shot, report."""

import json

import pytest

from audioflamingo.cli import main
from tests.eval.layouts import write


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    assert main(["init", "--preset", "tiny", "--out", str(d)]) == 0
    return d


def _run(capsys, *argv):
    assert main(["eval", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_classification_eval_resumes_and_records_settings(model_dir, tmp_path, capsys):
    data = write("gtzan", tmp_path)
    out = tmp_path / "run"
    res = _run(capsys, "gtzan", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--batch-size", "1")
    assert res["items"] == 2 and 0 <= res["metrics"]["accuracy"] <= 1
    preds = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 2 and set(preds[0]["scores"]) == {"blues", "jazz"}
    full = json.loads((out / "metrics.json").read_text())
    assert full["decoding"]["num_beams"] == 1 and full["classification_mode"] == "likelihood"
    assert full["newly_predicted"] == 2
    # A rerun predicts nothing again and scores the same.
    again = _run(capsys, "gtzan", "--model", str(model_dir), "--data", str(data), "--out", str(out))
    assert json.loads((out / "metrics.json").read_text())["newly_predicted"] == 0
    assert again["metrics"] == res["metrics"]


def test_calibrated_classification_records_its_mode_and_scores(model_dir, tmp_path, capsys):
    data = write("gtzan", tmp_path)
    raw, cal = tmp_path / "raw", tmp_path / "cal"
    _run(capsys, "gtzan", "--model", str(model_dir), "--data", str(data), "--out", str(raw))
    _run(capsys, "gtzan", "--model", str(model_dir), "--data", str(data), "--out", str(cal), "--cls-mode", "calibrated")
    assert json.loads((cal / "metrics.json").read_text())["classification_mode"] == "calibrated"
    p_raw, p_cal = ([json.loads(l) for l in (d / "predictions.jsonl").read_text().splitlines()] for d in (raw, cal))
    for a, b in zip(p_raw, p_cal):  # the scores recorded are the calibrated ones, and they decide
        assert a["scores"] != b["scores"] and b["prediction"] == max(b["scores"], key=b["scores"].get)


def test_missing_audio_is_counted_not_fatal_unless_all(model_dir, tmp_path, capsys):
    data = write("audiocaps", tmp_path)  # one of three clips has no audio file
    res = _run(
        capsys,
        "audiocaps",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "r"),
        "--max-new-tokens",
        "4",
    )
    assert res["items"] == 2 and res["missing_audio"] == 1
    assert isinstance(res["metrics"]["CIDEr-D"], float) and "unavailable" in res["metrics"]["SPICE"]
    for f in (data / "audio").iterdir():
        f.unlink()
    assert (
        main(["eval", "audiocaps", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "r2")]) == 1
    )
    assert "none of the 3 audio files exist" in capsys.readouterr().err


def test_wrong_layout_message(model_dir, tmp_path, capsys):
    assert main(["eval", "clotho-v2", "--model", str(model_dir), "--data", str(tmp_path)]) == 1
    assert "clotho_captions_evaluation.csv: expected file not found" in capsys.readouterr().err


def test_few_shot_and_report(model_dir, tmp_path, capsys):
    from audioflamingo.data.manifest import write_manifest

    data = write("fsd50k", tmp_path)
    pool = tmp_path / "pool.jsonl"
    write_manifest(
        [
            {
                "id": "p1",
                "audio": str(data / "FSD50K.eval_audio" / "37199.wav"),
                "task": "caption",
                "instruction": "Use a few labels to describe this sound.",
                "output": "guitar, music",
            },
            {
                "id": "p2",
                "audio": str(data / "FSD50K.eval_audio" / "175151.wav"),
                "task": "caption",
                "instruction": "Use a few labels to describe this sound.",
                "output": "dog, animal",
            },
        ],
        pool,
    )
    zero = tmp_path / "zero"
    two = tmp_path / "one"
    _run(capsys, "fsd50k", "--model", str(model_dir), "--data", str(data), "--out", str(zero), "--max-new-tokens", "4")
    res = _run(
        capsys,
        "fsd50k",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--out",
        str(two),
        "--shots",
        "1",
        "--rag",
        str(pool),
        "--max-new-tokens",
        "4",
    )
    assert res["shots"] == 1
    preds = [json.loads(l) for l in (two / "predictions.jsonl").read_text().splitlines()]
    # the example from the query's own file is never used as its shot
    assert [p["shots"] for p in preds] == [["p2"], ["p1"]]
    assert main(["eval", "report", str(zero), str(two), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    name = model_dir.name
    assert f"| fsd50k | {name} | 0 | approx-F1 |" in md and f"| fsd50k | {name} | 1 | approx-F1 |" in md
    assert f"Model: `{name}`" in md and "published, full test set" in md
    assert (tmp_path / "rep" / "shots.png").stat().st_size > 1000
    assert (tmp_path / "rep" / "benchmarks.png").stat().st_size > 1000
    # the same glob again, now matching the report's own folder too
    assert main(["eval", "report", str(zero), str(two), str(tmp_path / "rep"), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").read_text() == md


def test_audio_dialogues_eval_scores_each_turn_with_caption_metrics(model_dir, tmp_path, capsys):
    data = write("audio-dialogues-audioset", tmp_path)
    res = _run(
        capsys,
        "audio-dialogues-audioset",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "r"),
        "--max-new-tokens",
        "3",
    )
    assert res["items"] == 3 and isinstance(res["metrics"]["CIDEr-D"], float)
    assert main(["eval", "list"]) == 0
    listing = capsys.readouterr().out
    assert "musicaqa" in listing and "audio-dialogues-musiccaps" in listing and "CIDEr-D 1.622" in listing
