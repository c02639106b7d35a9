"""Does a Windmill worker have every package a script can import, at any depth?

A worker runs a job with only the packages its lock holds, and the lock holds only what
Windmill's import parser finds (windmill-labs/windmill, backend/parsers/
windmill-parser-py-imports/src/lib.rs, `parse_code_for_imports`): the top-level `import` and
`from … import` statements of the text before the first `def main(` (none inside a function,
a `try` or an `if`), plus the `# extra_requirements:` lines, following `f.…` imports into the
modules they name (a module has no `main`: all of its top level counts). A root module becomes
a PyPI name through Windmill's map (`mapping.rs`), else as it is with `_` made `-`; the
standard library is left out. pip then installs those packages and their dependencies.

A local `.venv` has every package, so an import Windmill does not see passes every test here
and fails on the worker with ModuleNotFoundError. These tests compute each script's set by
Windmill's rule, check every import statement reachable from the script against it, and then
import each script, and run each of those statements, in a virtual environment that holds
only that set.
"""

import ast
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
MARKETING = ROOT / "f" / "marketing"
# The scripts Windmill runs: every .py under f/marketing with a top-level main (the emitter
# runs in the SaaS and is never pushed).
SCRIPTS = sorted(
    p
    for p in MARKETING.glob("*.py")
    if re.search(r"^def main\(", p.read_text(encoding="utf-8"), re.MULTILINE)
)
# Root modules Windmill installs under another name (mapping.rs): the ones a Python package
# like this could plausibly import.
WINDMILL_NAMES = {
    "yaml": "pyyaml",
    "PIL": "pillow",
    "dateutil": "python-dateutil",
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "bs4": "bs4",
    "dotenv": "dotenv",
    "jwt": "jwt",
}
EXTRA = re.compile(r"^#\s?(\S+)\s*$")


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    module: str  # the root module, or the f/… path of a workspace module

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: import {self.module}"


def _module_path(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def _statements(tree: ast.AST, *, top_level_only: bool) -> list[ast.Import | ast.ImportFrom]:
    nodes = tree.body if top_level_only and isinstance(tree, ast.Module) else ast.walk(tree)
    return [n for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)]


def _imports(path: Path, *, windmill_sees: bool) -> list[Import]:
    """The imports of one file: as Windmill's parser sees them, or every one at any depth."""
    text = path.read_text(encoding="utf-8")
    if windmill_sees:
        text = text.split("def main(")[0]
    found = []
    for node in _statements(ast.parse(text), top_level_only=windmill_sees):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # `from .x import y`: a module of the same folder
                package = ".".join(path.relative_to(ROOT).parent.parts)
                names = [f"{package}.{node.module}"] if node.module else []
            else:
                names = (
                    [f"{node.module}.{a.name}" for a in node.names]
                    if node.module == "f.marketing"
                    else [str(node.module)]
                )
        else:
            names = [alias.name for alias in node.names]
        rel = path.relative_to(ROOT).as_posix()
        for name in names:
            if name.split(".")[0] in {"f", "u"}:
                found.append(Import(rel, node.lineno, name))
            else:
                found.append(Import(rel, node.lineno, name.split(".")[0]))
    return found


def _workspace_module(imp: Import) -> Path | None:
    """The file an `f.…` import names, or None for a package's import."""
    if not imp.module.startswith(("f.", "u.")):
        return None
    path = _module_path(imp.module)
    if path.exists():
        return path
    parent = _module_path(imp.module.rsplit(".", 1)[0])  # `from f.marketing.x import name`
    assert parent.exists(), f"{imp}: no such workspace module"
    return parent


def _walk(script: Path, *, windmill_sees: bool) -> tuple[list[Import], list[Path]]:
    """Package imports reachable from the script, and the files visited."""
    seen, queue, packages = {script}, [script], []
    while queue:
        for imp in _imports(queue.pop(), windmill_sees=windmill_sees):
            module = _workspace_module(imp)
            if module is None:
                packages.append(imp)
            elif module not in seen:
                seen.add(module)
                queue.append(module)
    return packages, sorted(seen)


def extra_requirements(source: str) -> list[str]:
    """`# extra_requirements:` lines, as the parser reads them: the `#spec` lines after the
    header, wherever it is at column 0."""
    specs, lines = [], source.splitlines()
    for index, line in enumerate(lines):
        if line.strip() in {"# extra_requirements:", "#extra_requirements:"}:
            for following in lines[index + 1 :]:
                match = EXTRA.match(following)
                if not match:
                    break
                specs.append(match[1])
    return specs


def windmill_requirements(script: Path) -> dict[str, str]:
    """What Windmill locks for the script: {package name: requirement spec}."""
    imports, files = _walk(script, windmill_sees=True)
    wanted: dict[str, str] = {}
    for imp in imports:
        if imp.module not in sys.stdlib_module_names and imp.module != "__future__":
            name = WINDMILL_NAMES.get(imp.module, imp.module.replace("_", "-"))
            wanted.setdefault(canonicalize_name(name), name)
    for path in files:  # a pin overrides the inferred name (extract_pkg_name)
        for spec in extra_requirements(path.read_text(encoding="utf-8")):
            wanted[canonicalize_name(Requirement(spec).name)] = spec
    return wanted


@cache
def _installed_with(requirements: frozenset[str]) -> frozenset[str]:
    """Distributions pip installs for these names: them and their dependencies (read from the
    local environment's metadata, extras left out)."""
    found: set[str] = set()
    queue = list(requirements)
    while queue:
        name = canonicalize_name(queue.pop())
        if name in found:
            continue
        found.add(name)
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                queue.append(req.name)
    return frozenset(found)


def unresolved_imports(script: Path) -> list[str]:
    """Every import reachable from the script (at any depth) that the worker would not have."""
    locked = windmill_requirements(script)
    have = _installed_with(frozenset(locked))
    providers = metadata.packages_distributions()
    imports, _ = _walk(script, windmill_sees=False)
    missing = []
    for imp in imports:
        if imp.module in sys.stdlib_module_names or imp.module == "__future__":
            continue
        dists = {canonicalize_name(d) for d in providers.get(imp.module, [imp.module])}
        if not dists & have:
            missing.append(str(imp))
    return missing


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_import_a_script_can_reach_is_one_windmill_installs(script):
    problems = unresolved_imports(script)
    installed = sorted(_installed_with(frozenset(windmill_requirements(script))))
    assert not problems, (
        "import these at the top of the module (before `def main(`), or list them in the "
        "script's `# extra_requirements:`:\n"
        + "\n".join(problems)
        + f"\n(a worker installs only {', '.join(installed)})"
    )


def test_the_check_catches_an_import_inside_a_function(tmp_path, monkeypatch):
    """A test of the test: `import wmill` in a function of a module the script imports, and
    `import yaml` inside a `try` at the top of the script, are both outside Windmill's set."""
    folder = tmp_path / "f" / "marketing"
    folder.mkdir(parents=True)
    (folder / "helper.py").write_text("import httpx\n\ndef later():\n    import wmill\n")
    script = folder / "job.py"
    script.write_text(
        "# extra_requirements:\n# httpx>=0.27\nfrom f.marketing.helper import later\n"
        "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n\ndef main():\n    later()\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert windmill_requirements(script) == {"httpx": "httpx>=0.27"}
    problems = unresolved_imports(script)
    assert problems == [
        "f/marketing/job.py:5: import yaml",
        "f/marketing/helper.py:4: import wmill",
    ]


# --- the same, run: each script in a virtual environment with only what Windmill installs ---


@pytest.fixture(scope="module")
def worker_python(tmp_path_factory) -> Callable[[Path], Path]:
    """For a script, a virtual environment holding exactly what Windmill locks for it,
    installed by pip from the registry: one per set of packages (most scripts share one)."""
    made: dict[frozenset[str], Path] = {}

    def python_for(script: Path) -> Path:
        wanted = frozenset(windmill_requirements(script).values())
        if wanted not in made:
            home = tmp_path_factory.mktemp("worker")
            venv.create(home, with_pip=True)
            python = home / "bin" / "python"
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 *sorted(wanted)],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, f"pip could not install {sorted(wanted)}: {done.stderr}"
            made[wanted] = python
        return made[wanted]

    return python_for


RUN_EVERY_IMPORT = """
import ast, importlib, json, sys
script, files = sys.argv[1], json.loads(sys.argv[2])
importlib.import_module(script)
for path in files:  # every import statement of every module the script can reach, run
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([node], []), path, "exec"), {"__name__": script})
"""


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_each_script_imports_in_an_environment_with_only_what_windmill_installs(
    worker_python, script
):
    _, files = _walk(script, windmill_sees=False)
    module = script.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
    done = subprocess.run(
        [str(worker_python(script)), "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
         + RUN_EVERY_IMPORT, module, json.dumps([str(f) for f in files])],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
