"""The tree passes ruff (lint and format check) as CI runs it; CI runs `make lint` (with mypy)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (pip install -e '.[lint]')")
@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_passes(args):
    r = subprocess.run([RUFF, *args], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]


def test_ci_runs_lint_and_the_type_check():
    assert "make lint" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile[makefile.index("\nlint:") :].split("\n\n")[0]
    assert "ruff check" in lint and "ruff format --check" in lint and "mypy" in lint
    assert "[tool.mypy]" in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("fail_at", ["venv", "install"])
def test_ci_latest_removes_its_throwaway_venv(tmp_path, fail_at):
    # Each run's venv is ~2 GB; left in $TMPDIR they filled the CI disk and a later install died of ENOSPC.
    bin_dir, tmp = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    tmp.mkdir()
    # A stand-in python3 whose venv is a directory with a python that fails to install (or no venv at all).
    fake = bin_dir / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        f'[ "{fail_at}" = venv ] && exit 3\n'
        'mkdir -p "$3/bin" && printf "#!/bin/sh\\nexit 4\\n" > "$3/bin/python" && chmod +x "$3/bin/python"\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp), "HOME": str(tmp_path)}
    r = subprocess.run(["bash", str(ROOT / ".ci" / "latest")], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert list(tmp.iterdir()) == [], r.stderr
