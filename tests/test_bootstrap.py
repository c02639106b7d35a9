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
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "Python 3.10.12" in lines[0] and "PYTHON=python3.11" in lines[0]


def test_a_python_that_does_not_run_is_named(tmp_path):
    done = bootstrap(ROOT, str(tmp_path / "no-such-python"))
    assert done.returncode == 2
    assert "cannot run" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def small_project(tmp_path: Path, dependencies: str = "") -> Path:
    """A project with the real bootstrap and nearly nothing to install: seconds, not a minute."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap", project / "scripts" / "bootstrap")
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "probe"\nversion = "0"\ndependencies = [{dependencies}]\n'
        "[project.optional-dependencies]\ndev = []\n"
        "[tool.setuptools]\npy-modules = []\n"
    )
    return project


def test_a_python_without_venv_support_is_told_what_to_install(tmp_path):
    """Debian's python3 comes without ensurepip until python3-venv is installed."""
    python = tmp_path / "python3.12"
    python.write_text(
        '#!/bin/sh\nif [ "$1" = -c ]; then echo 3.12.3; exit 0; fi\n'
        "echo 'The virtual environment was not created successfully because ensurepip is not'\n"
        "echo 'available.  On Debian/Ubuntu systems, you need to install the python3-venv'\n"
        "exit 1\n"
    )
    python.chmod(0o755)
    project = small_project(tmp_path)
    done = bootstrap(project, str(python))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt install python3-venv" in lines[0]
    assert not (project / ".venv").exists(), "no half-made venv is left to be reused"


def test_a_failed_install_is_one_line_naming_pip_s_reason_and_its_log(tmp_path):
    project = small_project(tmp_path, '"no-such-package-for-this-test==1.0"')
    done = bootstrap(project, sys.executable)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("scripts/bootstrap: installing into .venv")
    assert len(lines) == 2, done.stderr
    assert "pip could not install the packages: ERROR: " in lines[1]
    assert "no-such-package-for-this-test" in lines[1] and ".venv/pip.log" in lines[1]
    assert (project / ".venv" / "pip.log").exists()
    assert not (project / ".venv" / ".installed").exists(), "the next run tries again"


def test_another_interpreter_gets_a_fresh_venv(tmp_path):
    project = small_project(tmp_path)
    assert bootstrap(project, sys.executable).returncode == 0
    (project / ".venv" / "left-by-the-old-one").write_text("x")
    (project / ".venv" / ".python").write_text("/usr/bin/python3 3.10.12\n")

    done = bootstrap(project, sys.executable)
    assert done.returncode == 0, done.stderr
    assert not (project / ".venv" / "left-by-the-old-one").exists()
    assert (project / ".venv" / ".python").read_text().split()[-1].startswith("3.")
