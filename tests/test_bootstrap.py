"""scripts/bootstrap: the one command behind the README's two, on a machine as it comes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fake_python(tmp_path: Path, version: str) -> Path:
    """An interpreter that only says which version it is."""
    script = tmp_path / f"python{version}"
    script.write_text(f"#!/bin/sh\necho {version}\n")
    script.chmod(0o755)
    return script


def bootstrap(cwd: Path, python: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": python}
    return subprocess.run(
        [str(cwd / "scripts" / "bootstrap")], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_a_python_older_than_3_11_is_refused_in_one_line_before_anything_is_built(tmp_path):
    done = bootstrap(ROOT, str(fake_python(tmp_path, "3.10.12")))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Python 3.10.12" in lines[0] and "PYTHON=python3.11" in lines[0]


def test_a_python_that_does_not_run_is_named(tmp_path):
    done = bootstrap(ROOT, str(tmp_path / "no-such-python"))
    assert done.returncode == 1
    assert "cannot run" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_another_interpreter_gets_a_fresh_venv(tmp_path):
    """A small project, so that the install takes seconds."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap", project / "scripts" / "bootstrap")
    (project / "pyproject.toml").write_text(
        '[project]\nname = "probe"\nversion = "0"\n'
        "[project.optional-dependencies]\ndev = []\n"
        "[tool.setuptools]\npy-modules = []\n"
    )
    assert bootstrap(project, sys.executable).returncode == 0
    (project / ".venv" / "left-by-the-old-one").write_text("x")
    (project / ".venv" / ".python").write_text("/usr/bin/python3 3.10.12\n")

    done = bootstrap(project, sys.executable)
    assert done.returncode == 0, done.stderr
    assert not (project / ".venv" / "left-by-the-old-one").exists()
    assert (project / ".venv" / ".python").read_text().split()[-1].startswith("3.")
