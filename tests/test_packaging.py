"""What `pip install` of this package gives the SaaS: the emitter and what it imports, nothing
that runs in Windmill (pyproject.toml, [tool.setuptools]).

The wheel is built and installed into a fresh virtual environment with pip, from the registry,
as a SaaS's deploy would.
"""

import ast
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EMITTER = ROOT / "f" / "marketing" / "emitter"
# Shipped beside the code, for the SaaS: the outbox's SQL and the TypeScript emitter.
DATA_FILES = {"f/marketing/emitter/outbox.sql", "f/marketing/emitter/ts/emitter.ts",
              "f/marketing/emitter/ts/user_events.ts"}  # fmt: skip


def _emitter_closure() -> set[str]:
    """The files of the emitter package and of every f.… module they import, at any depth."""
    seen: set[Path] = set()
    queue = sorted(EMITTER.glob("*.py"))
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("f."):
                module = ROOT / (str(node.module).replace(".", "/") + ".py")
                package = ROOT / str(node.module).replace(".", "/") / "__init__.py"
                queue.append(module if module.exists() else package)
    return {p.relative_to(ROOT).as_posix() for p in seen}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # setuptools builds in the tree and reuses build/lib: a module moved away since the last
    # build would still be shipped.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--disable-pip-version-check", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"the wheel could not be built: {done.stderr}"
    return next(out.glob("*.whl"))


def test_the_saas_install_holds_the_emitter_and_what_it_imports_only(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("f/")}
    assert shipped == _emitter_closure() | DATA_FILES
    assert not any(name.endswith(("handle_user_event.py", "plan.py")) for name in shipped)


def test_the_installed_emitter_imports_and_checks_events_without_the_repository(wheel, tmp_path):
    home = tmp_path / "saas"
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"pip could not install the wheel: {done.stderr}"
    check = """
import importlib.util
from f.marketing.emitter import user_registered
from f.marketing.lib.contract import parse_event
event = parse_event({"event": "user.registered", "email": "Jane@Acme.com", "name": None,
                     "plan": "pro", "source": "ads", "marketingConsent": True,
                     "timestamp": "2026-11-26T10:00:00Z"})
assert event.email == "jane@acme.com"
assert importlib.util.find_spec("f.marketing.lib.plan") is None, "a Windmill module shipped"
print("ok")
"""
    ran = subprocess.run(
        [str(python), "-I", "-c", check], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stderr
