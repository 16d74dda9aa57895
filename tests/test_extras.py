"""Optional packages are extras; a command whose extra is missing says which one, in one line."""

import json
import sys
import tomllib
from pathlib import Path

import pytest

from audioflamingo.cli import main
from audioflamingo.extras import MissingExtra, require

ROOT = Path(__file__).resolve().parents[1]


def test_heavy_optional_packages_are_extras_and_test_installs_them():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    for pkg in ("matplotlib", "pycocoevalcap", "fastapi", "uvicorn", "faiss"):
        assert pkg not in core, pkg
    extras = project["optional-dependencies"]
    assert extras["serve"] == ["fastapi>=0.110", "uvicorn>=0.29"] and extras["report"] == ["matplotlib>=3.7"]
    self_ref = next(x for x in extras["test"] if x.startswith("audioflamingo["))
    assert "all" in self_ref[len("audioflamingo[") : -1].split(",")  # make demo / make test install everything
    assert {"report", "eval", "serve", "retrieval"} <= set(extras["all"][0].split("[")[1].rstrip("]").split(","))
    assert "'.[test" in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize(
    "module,extra", [("matplotlib", "report"), ("pycocoevalcap", "eval"), ("fastapi", "serve"), ("faiss", "retrieval")]
)
def test_missing_extra_is_named(monkeypatch, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import raises ImportError
    with pytest.raises(MissingExtra) as e:
        require(module)
    msg = str(e.value)
    assert "\n" not in msg and f"pip install 'audioflamingo[{extra}]'" in msg


def test_a_command_without_its_extra_is_one_line(monkeypatch, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "benchmark": "gtzan",
                "model": "m",
                "shots": 0,
                "items": 2,
                "missing_audio": 0,
                "decoding": {},
                "metrics": {"accuracy": 0.5},
                "paper": {},
            }
        )
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["eval", "report", str(run), "--out", str(tmp_path / "rep")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "audioflamingo[report]" in err
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main(["serve", "--port", "0"]) == 1
    assert "audioflamingo[serve]" in capsys.readouterr().err
