"""Long runs report progress when stderr is not a terminal: a line every N seconds, no bar."""

import io

from audioflamingo.progress import LogLines, progress_bar


def test_lines_every_interval_not_every_step():
    now = [0.0]
    out = io.StringIO()
    lines = LogLines(100, "sft", "step", every=30, stream=out, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 1.0  # one step a second: a line at 30, 60 and 90 s
        lines.set_postfix(loss="1.2345")
        lines.update(1)
    text = out.getvalue().splitlines()
    assert len(text) == 3
    assert text[0].startswith("sft: 30/100 step (30%), 1.00 step/s, 0m30s elapsed, eta 1m10s, loss=1.2345")


def test_a_pipe_gets_lines_a_disabled_run_nothing(monkeypatch, capsys):
    monkeypatch.setenv("AUDIOFLAMINGO_LOG_EVERY", "0.000001")
    bar = progress_bar(3, "eval", "clip")  # pytest's stderr is not a terminal
    assert isinstance(bar, LogLines)
    bar.update(1)
    assert "eval: 1/3 clip" in capsys.readouterr().err
    quiet = progress_bar(3, "eval", "clip", enabled=False)
    quiet.update(1)
    quiet.close()
    assert capsys.readouterr().err == ""


def test_training_under_a_pipe_logs_progress(tmp_path, monkeypatch, capsys):
    """`audioflamingo train` whose stderr is not a terminal prints step lines (it printed nothing)."""
    from audioflamingo.cli import main
    from audioflamingo.data.toy import write_recipe, write_toy

    monkeypatch.setenv("AUDIOFLAMINGO_LOG_EVERY", "0.000001")
    m = write_toy(tmp_path / "toy", n=4)
    r = write_recipe(tmp_path / "r.yaml", m, tmp_path / "run", steps=2, micro=2)
    assert main(["train", str(r)]) == 0
    err = capsys.readouterr().err
    assert "/2 step" in err and "loss=" in err
