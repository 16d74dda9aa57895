"""Command-line conventions: sub-commands with their own help and an example, defaults shown, --json
everywhere, one-line device errors, exit codes (2 usage, 1 bad input or failed run), --long-audio."""

import json
import subprocess
import sys

import pytest

from audioflamingo.cli import build_parser, main
from tests.conftest import noise


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    assert main(["init", "--preset", "tiny", "--out", str(d)]) == 0
    return d


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,own,foreign",
    [
        (["index", "build"], "--kind", "-k K"),
        (["index", "query"], "-k K", "--kind"),
        (["clap", "zero-shot"], "--labels", "--texts"),
        (["clap", "import"], "HF_CLAP_DIR", "--labels"),
        (["eval", "clotho-v2"], "clotho_captions_evaluation.csv", "RUN_DIR"),
        (["eval", "report"], "RUN_DIR", "--beams"),
    ],
)
def test_sub_commands_have_their_own_help_and_an_example(argv, own, foreign, capsys):
    text = _help(argv, capsys)
    assert own in text and foreign not in text
    assert "example:\n  audioflamingo " + " ".join(argv) in text


def test_every_command_has_an_example_and_shows_defaults(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    for name in ("caption", "ask", "classify", "chat", "init", "demo", "info", "eval", "index", "clap", "train"):
        assert "example:" in commands[name].format_help(), name
    caption = commands["caption"].format_help()
    assert "(default: 64)" in caption and "(default: cpu)" in caption and "(default: 8)" in caption
    assert caption.count("(default: 8)") == 1  # a help text that states its default is not repeated


def test_json_on_info_demo_and_eval_list(model_dir, tmp_path, capsys):
    import soundfile as sf

    assert main(["info", "--model", str(model_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["preset"] == "tiny" and info["parameters"]["lm"] > 0
    assert main(["info", "--model", str(model_dir)]) == 0
    assert "language model: qwen2" in capsys.readouterr().out
    clip = tmp_path / "c.wav"
    sf.write(clip, noise(1.0), 16000)
    assert main(["demo", str(clip), "--model", str(model_dir), "--json"]) == 0
    demo = json.loads(capsys.readouterr().out)
    assert set(demo) == {"file", "caption", "question", "answer"}
    assert main(["eval", "list", "--json"]) == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert {"clotho-v2", "gtzan"} <= {r["name"] for r in rows} and all("layout" in r for r in rows)


def test_exit_codes_usage_two_bad_input_one(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:  # argparse: an unknown option
        main(["caption", "x.wav", "--no-such-option"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:  # a required option missing is usage too
        main(["index", "build", "m.jsonl"])
    assert e.value.code == 2
    assert main(["caption", str(tmp_path / "missing.wav"), "--model", str(model_dir)]) == 1
    assert "missing.wav: file not found" in capsys.readouterr().err
    assert main(["embed"]) == 2  # a combination argparse cannot express: UsageError
    assert "embed needs audio files" in capsys.readouterr().err


def test_cuda_on_a_cpu_build_is_one_line(model_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    clip = tmp_path / "c.wav"
    import soundfile as sf

    sf.write(clip, noise(1.0), 16000)
    r = subprocess.run(
        [sys.executable, "-m", "audioflamingo", "caption", str(clip), "--model", str(model_dir), "--device", "cuda"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "--device cuda" in r.stderr and "CUDA" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "audioflamingo", "caption", str(clip), "--device", "gpu0"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "not a torch device" in r.stderr


def test_long_audio_flag_reaches_the_windows(model_dir, tmp_path, capsys, monkeypatch):
    import soundfile as sf

    from audioflamingo.audio import windows

    clip = tmp_path / "long.wav"
    sf.write(clip, noise(12.0), 16000)  # tiny preset: 8 windows of 1 s every 0.5 s cover 4.5 s
    seen = []
    real = windows.make_windows

    def spy(wave, cfg, name="<audio>"):
        out = real(wave, cfg, name)
        seen.append((cfg.long_audio, out.starts[-1]))
        return out

    monkeypatch.setattr("audioflamingo.model.flamingo.make_windows", spy)
    assert (
        main(["caption", str(clip), "--model", str(model_dir), "--long-audio", "spread", "--max-new-tokens", "2"]) == 0
    )
    assert seen and seen[-1] == ("spread", 11 * 16000)  # the last window ends at the end of the file
    assert "only the first" not in capsys.readouterr().err


def test_building_the_parser_stays_cheap():
    """Start-up: a non-eval command line imports neither the benchmark registry nor torch/transformers."""
    code = (
        "import sys; from audioflamingo.cli import build_parser; build_parser(['caption', 'x.wav'])\n"
        "heavy = [m for m in ('audioflamingo.eval.benchmarks', 'torch', 'transformers') if m in sys.modules]\n"
        "sys.exit(str(heavy) if heavy else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
