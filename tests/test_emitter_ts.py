"""The TypeScript emitter (f/marketing/emitter/ts): type-checked strictly as a Next.js app
compiles it, its types current with the events' JSON Schema, and its behaviour proved by Node's
own test runner against a Windmill stand-in on 127.0.0.1 (tests/typescript/emitter.test.ts)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tests" / "typescript"
TSC = TOOLS / "node_modules" / ".bin" / "tsc"

_missing = (
    "node is not installed"
    if shutil.which("node") is None
    else "the TypeScript tools are not installed: run `npm ci --prefix tests/typescript`"
    if not TSC.exists()
    else None
)
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_typescript_types_are_the_json_schema_s():
    done = _run("node", "scripts/export_ts_types.mjs", "--check")
    assert done.returncode == 0, done.stderr


def test_the_emitter_type_checks_and_passes_its_node_tests(tmp_path):
    build = tmp_path / "build"
    done = _run(str(TSC), "-p", str(TOOLS), "--outDir", str(build))
    assert done.returncode == 0, done.stdout + done.stderr
    (build / "package.json").write_text(json.dumps({"type": "module"}))
    tests = sorted(str(p) for p in build.rglob("*.test.js"))
    assert tests, "no compiled test file"
    done = _run("node", "--test", "--test-reporter=dot", *tests)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
