"""Does Windmill read our scripts the way we mean them? Checked offline, with Windmill's own tools.

`windmill-parser-wasm-py` is the parser `wmill generate-metadata` uses to build a script's form
and webhook schema; `windmill-cli` provides `wmill lint`; scripts/generate_metadata.mjs writes
the metadata with them and tells which files `wmill.yaml` deploys (minimatch, as the CLI). All
are pinned in tests/windmill/package.json; `npm ci --prefix tests/windmill` installs them.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_worker_packages import extra_requirements

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tests" / "windmill"
WMILL = TOOLS / "node_modules" / ".bin" / "wmill"
GENERATOR = ROOT / "scripts" / "generate_metadata.mjs"

# Resource types a script may take (as `param: c_twenty | None = None` with the TypedDict
# from f/marketing/lib/resource_types.py). Anything else typed as a bare class becomes a picker
# for a resource type that does not exist: `payload: Any`, a TypedDict or pydantic payload,
# `tuple`, `set`.
OUR_RESOURCE_TYPES = {
    "c_twenty", "c_mautic", "c_slack_notify", "c_marketing_routing", "c_stripe"
}  # fmt: skip
# Windmill's own types, on every instance: a file in the workspace's object storage
# (wmill.S3Object), and a PostgreSQL database (the outbox sweep's).
ALLOWED_RESOURCE_TYPES = OUR_RESOURCE_TYPES | {"s3_object", "postgresql"}
HANDLER = "f/marketing/handle_user_event.py"

_missing = (
    "node is not installed"
    if shutil.which("node") is None
    else "Windmill's parser and CLI are not installed: run `npm ci --prefix tests/windmill`"
    if not (TOOLS / "node_modules" / "windmill-parser-wasm-py").is_dir() or not WMILL.exists()
    else None
)
needs_node = pytest.mark.skipif(_missing is not None, reason=_missing or "")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def synced(paths: list[str]) -> dict[str, bool]:
    """Whether `wmill sync push` deploys each path, by wmill.yaml's includes and excludes."""
    done = subprocess.run(
        ["node", str(GENERATOR), "--synced", *paths],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def deployed_scripts() -> list[str]:
    """Every .py under f/ that a push deploys."""
    candidates = [
        rel(p) for p in sorted((ROOT / "f").rglob("*.py")) if "__pycache__" not in p.parts
    ]
    return [path for path, yes in synced(candidates).items() if yes]


def parse(paths: list[str], cwd: Path = ROOT) -> dict[str, dict[str, Any]]:
    """{path: what Windmill's parser reads from it} (tests/windmill/wm_sig.mjs)."""
    done = subprocess.run(
        ["node", str(TOOLS / "wm_sig.mjs"), *paths], cwd=cwd, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def metadata_path(script: Path) -> Path:
    return script.with_name(script.stem + ".script.yaml")


@pytest.fixture(scope="module")
def scripts() -> list[str]:
    found = deployed_scripts()
    assert HANDLER in found, f"{HANDLER} is not deployed by wmill.yaml"
    return found


@pytest.fixture(scope="module")
def signatures(scripts: list[str]) -> dict[str, dict[str, Any]]:
    return parse(scripts)


def resource_names(typ: Any) -> list[str]:
    """Every resource type a parsed parameter type asks Windmill for."""
    found = []
    if isinstance(typ, dict):
        if isinstance(typ.get("resource"), str):
            found.append(typ["resource"])
        obj = typ.get("object")
        if isinstance(obj, dict) and obj.get("name"):
            found.append(obj["name"])  # a pydantic model or dataclass: object + resource picker
        for value in typ.values():
            if isinstance(value, dict | list):
                found += resource_names(value)
    elif isinstance(typ, list):
        for value in typ:
            found += resource_names(value)
    return found


def resource_problems(signature: dict[str, Any]) -> list[str]:
    return [
        f"parameter `{arg['name']}` asks for resource type {name!r}: Windmill shows a picker "
        f"for a resource type that does not exist (type payloads as `dict` or flat scalars; "
        f"resources as one of {sorted(ALLOWED_RESOURCE_TYPES)})"
        for arg in signature.get("args", [])
        for name in resource_names(arg["typ"])
        if name not in ALLOWED_RESOURCE_TYPES
    ]


def main_function(path: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main":
            return node
    return None


# --- what Windmill's parser reads ------------------------------------------------------------


@needs_node
def test_every_script_parses(signatures: dict[str, dict[str, Any]]) -> None:
    invalid = [
        p for p, sig in signatures.items() if sig.get("type") == "Invalid" or "args" not in sig
    ]
    assert not invalid, f"Windmill's parser cannot read: {invalid}"


@needs_node
def test_scripts_have_main_and_modules_are_libs(signatures: dict[str, dict[str, Any]]) -> None:
    for path, sig in signatures.items():
        main = main_function(path)
        if main is None:
            assert sig["auto_kind"] == "lib", f"{path}: no main(), Windmill should see a library"
            assert sig["args"] == [], path
        else:
            assert sig["auto_kind"] is None, f"{path} has main(), Windmill sees {sig['auto_kind']}"
            assert isinstance(main, ast.FunctionDef), f"{path}: use `def main`, not `async def`"
    assert signatures[HANDLER]["auto_kind"] is None, f"{HANDLER} must be a script (def main)"


@needs_node
def test_resource_parameters_use_known_resource_types(signatures: dict[str, Any]) -> None:
    problems = [
        f"{path}: {msg}" for path, sig in signatures.items() for msg in resource_problems(sig)
    ]
    assert not problems, "\n".join(problems)


@needs_node
def test_every_main_parameter_has_a_form_type(signatures: dict[str, dict[str, Any]]) -> None:
    untyped = [
        f"{path}: parameter `{arg['name']}` has no type Windmill understands (`type: ''`); "
        f"use `X | None` rather than Optional[X], and dict rather than dict[str, Any]"
        for path, sig in signatures.items()
        for arg in sig["args"]
        if arg["typ"] == "unknown"
    ]
    assert not untyped, "\n".join(untyped)


@needs_node
def test_handler_signature(signatures: dict[str, dict[str, Any]]) -> None:
    """The event is one JSON text (never rewritten by Windmill's worker), and no parameter is
    a resource or a structure the worker would walk for `$var:` strings."""
    sig = signatures[HANDLER]
    args = {arg["name"]: arg for arg in sig["args"]}
    required = [name for name, arg in args.items() if not arg["has_default"]]
    assert required == ["payload"], f"only the payload may be required, got {required}"
    assert args["payload"]["typ"] == {"str": None}
    assert args["dry_run"]["typ"] == "bool"
    assert args["dry_run"]["has_default"] and args["dry_run"]["default"] is False
    assert sig["has_preprocessor"] is True, "webhook bodies go through preprocessor()"
    kinds = {name: arg["typ"] for name, arg in args.items()}
    assert all(k == "bool" or k == {"str": None} for k in kinds.values()), kinds


@needs_node
def test_the_preprocessor_takes_windmills_trigger_event() -> None:
    """Windmill passes trigger calls as one `event` argument to a preprocessor whose signature
    names it so (windmill-api trigger_helpers.rs picks that form); a `wm_trigger` parameter
    would select the older form, with body keys as arguments."""
    done = subprocess.run(
        ["node", str(TOOLS / "wm_sig.mjs"), "--main-override", "preprocessor", HANDLER],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    sig = json.loads(done.stdout)[HANDLER]
    assert [(a["name"], a["typ"], a["has_default"]) for a in sig["args"]] == [
        ("event", {"object": {"name": None, "props": []}}, False)
    ]


@needs_node
def test_resource_check_catches_bad_payload_types(tmp_path: Path) -> None:
    """The allow-list check above fails on the usual mistakes (a test of the test)."""
    source = tmp_path / "bad.py"
    source.write_text(
        "from typing import Any, TypedDict\n"
        "class UserEvent(TypedDict):\n    email: str\n"
        "class c_twenty(TypedDict):\n    api_key: str\n"
        "def main(payload: Any, event: UserEvent, twenty: c_twenty | None = None, t: tuple = ()):\n"
        "    pass\n",
        encoding="utf-8",
    )
    parsed = parse([source.name], tmp_path)[source.name]
    flagged = {p.split("`")[1] for p in resource_problems(parsed)}
    assert flagged == {"payload", "event", "t"}


# --- the committed metadata --------------------------------------------------------------------


@needs_node
def test_the_committed_metadata_is_what_the_generator_writes() -> None:
    done = subprocess.run(
        ["node", str(GENERATOR), "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_node
def test_the_generator_finds_stale_metadata_and_writes_it(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "f", copy / "f", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "scripts").mkdir()
    shutil.copy2(GENERATOR, copy / "scripts" / GENERATOR.name)
    shutil.copy2(ROOT / "wmill.yaml", copy / "wmill.yaml")
    (copy / "tests" / "windmill").mkdir(parents=True)
    shutil.copy2(TOOLS / "package.json", copy / "tests" / "windmill" / "package.json")
    (copy / "tests" / "windmill" / "node_modules").symlink_to(TOOLS / "node_modules")
    script = copy / "f" / "marketing" / "replay.py"
    script.write_text(
        script.read_text().replace(
            "confirm: bool = False", "confirm: bool = False, limit: int = 10"
        )
    )

    def generate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["node", str(copy / "scripts" / GENERATOR.name), *args],
            cwd=copy, capture_output=True, text=True,
        )  # fmt: skip

    stale = generate("--check")
    assert stale.returncode == 1 and "f/marketing/replay.script.yaml" in stale.stdout
    assert generate().returncode == 0 and generate("--check").returncode == 0
    meta = read_yaml(copy / "f" / "marketing" / "replay.script.yaml")
    assert meta["schema"]["properties"]["limit"] == {
        "type": "integer",
        "description": "",
        "default": 10,
    }
    assert meta["schema"]["order"][-1] == "limit"
    assert meta["schema"]["properties"]["confirm"]["description"].startswith("Queue them")


@needs_node
def test_metadata_schema_is_what_the_parser_infers(signatures: dict[str, Any]) -> None:
    for path, sig in signatures.items():
        meta = read_yaml(metadata_path(ROOT / path))
        schema = meta["schema"]
        names = [arg["name"] for arg in sig["args"]]
        assert set(schema["properties"]) == set(names), path
        assert schema["required"] == [a["name"] for a in sig["args"] if not a["has_default"]]
        if names:  # main() order unless someone reordered the form by hand
            assert sorted(schema["order"]) == sorted(names), f"{path}: `order` must list each field"
        assert meta["kind"] == "script", path
        assert bool(meta.get("has_preprocessor")) == sig["has_preprocessor"], path


ENTRY_SCRIPTS = {"handle_user_event", "stripe_events", "backfill", "setup", "replay", "on_failure",
                 "outbox_sweep"}  # fmt: skip


@needs_node
def test_f_marketing_holds_the_jobs_and_lib_the_modules_they_import(
    signatures: dict[str, Any],
) -> None:
    """What a person sees in the folder: the seven jobs (their paths are webhook URLs and
    workspace settings), each with a main; everything else under lib/, none with a main."""
    top = {p for p in signatures if p.count("/") == 2}
    assert {p.rsplit("/", 1)[1].removesuffix(".py") for p in top} == ENTRY_SCRIPTS
    for path in signatures:
        has_main = bool(re.search(r"^def main\(", (ROOT / path).read_text(), re.MULTILINE))
        assert has_main == (path in top), f"{path}: a job at f/marketing, a module in lib/"
        assert path in top or path.startswith("f/marketing/lib/"), path


@needs_node
def test_every_job_says_what_it_does_and_how_long_it_may_run(
    signatures: dict[str, Any],
) -> None:
    for path in (p for p in signatures if p.count("/") == 2):
        meta = read_yaml(metadata_path(ROOT / path))
        assert meta.get("summary") and len(meta["description"]) > 80, f"{path}: summary"
        assert isinstance(meta.get("timeout"), int) and meta["timeout"] >= 60, path
        undescribed = [n for n, p in meta["schema"]["properties"].items() if not p["description"]]
        assert not undescribed, f"{path}: describe {undescribed} in main's docstring (Args:)"


@needs_node
def test_every_script_has_metadata_and_no_metadata_is_orphaned() -> None:
    deployed = set(deployed_scripts())
    missing, orphans, excluded_with_metadata = [], [], []
    for py in sorted((ROOT / "f").rglob("*.py")):
        has_meta = metadata_path(py).exists()
        if rel(py) in deployed:
            if not has_meta:
                missing.append(rel(py))
        elif has_meta:
            excluded_with_metadata.append(rel(py))
    for meta in sorted((ROOT / "f").rglob("*.script.yaml")):
        if not meta.with_name(meta.name.removesuffix(".script.yaml") + ".py").exists():
            orphans.append(rel(meta))
    assert not missing, f"no .script.yaml (run node scripts/generate_metadata.mjs): {missing}"
    assert not orphans, f".script.yaml without its .py: {orphans}"
    assert not excluded_with_metadata, (
        f"excluded by wmill.yaml yet has metadata: {excluded_with_metadata}"
    )


@needs_node
def test_wmill_lint_passes(tmp_path: Path) -> None:
    """`wmill lint` needs no server; it runs on a copy so nothing it writes lands in the repo."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "f", copy / "f", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "wmill.yaml", copy / "wmill.yaml")
    for extra in ROOT.glob("*.resource-type.yaml"):
        shutil.copy2(extra, copy / extra.name)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "home"),
        "NO_COLOR": "1",
        # Any attempt to reach a server would fail fast instead of hanging.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [str(WMILL), "lint", "--json"], cwd=copy, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    report = json.loads(done.stdout[done.stdout.index("{") :]) if "{" in done.stdout else {}
    assert done.returncode == 0 and report.get("success"), done.stdout + done.stderr


# --- wmill.yaml and the resource types ------------------------------------------------------


@needs_node
def test_wmill_yaml_deploys_only_the_marketing_folder() -> None:
    config = read_yaml(ROOT / "wmill.yaml")
    assert config["includes"] == ["f/marketing/**"]
    deployed = {
        "f/marketing/handle_user_event.py": True,
        "f/marketing/lib/resource_types.py": True,
        "f/marketing/twenty.resource.yaml": True,
        "f/marketing/conftest.py": False,
        "f/marketing/__init__.py": False,
        "f/marketing/test_handler.py": False,
        "f/marketing/tests/test_handler.py": False,
        "f/marketing/tests/fixtures/body.json": False,
        "f/__init__.py": False,
        "f/marketing/emitter/__init__.py": False,  # the emitter runs in the SaaS
        "f/marketing/emitter/client.py": False,
        "f/marketing/emitter/ts/emitter.ts": False,  # TypeScript would be pushed as a script
        "f/other/script.py": False,
        "tests/test_windmill_conformance.py": False,
        "tests/fakes/runner.py": False,
        "scripts/generate_metadata.mjs": False,
    }
    wrong = {p: want for p, (want, got) in _pairs(deployed).items() if got != want}
    assert not wrong, f"wmill.yaml includes/excludes get these wrong (path: should deploy): {wrong}"


def _pairs(wanted: dict[str, bool]) -> dict[str, tuple[bool, bool]]:
    """{path: (should deploy, does deploy)}."""
    got = synced(list(wanted))
    return {path: (want, got[path]) for path, want in wanted.items()}


def test_wmill_yaml_sets_every_sync_option() -> None:
    config = read_yaml(ROOT / "wmill.yaml")
    options = [
        "skipSecrets", "skipVariables", "skipResources", "skipResourceTypes", "skipScripts",
        "skipFlows", "skipApps", "skipFolders", "skipWorkspaceDependencies",
        "skipDatatableMigrations", "includeSchedules", "includeTriggers", "includeUsers",
        "includeGroups", "includeSettings", "includeKey", "locksRequired",
    ]  # fmt: skip
    unset = [o for o in options if not isinstance(config.get(o), bool)]
    assert not unset, f"set these explicitly in wmill.yaml (the docs disagree on defaults): {unset}"
    assert config["skipSecrets"] is True, "secrets are created in the Windmill UI, not committed"
    # Configuration lives in Windmill: a push must never overwrite or delete it.
    assert config["skipResources"] is True and config["skipVariables"] is True
    # A synced resource type set deletes the workspace's other custom types: ours are pushed
    # one by one with scripts/deploy.
    assert config["skipResourceTypes"] is True
    if config["locksRequired"]:
        unlocked = [
            rel(meta)
            for meta in (ROOT / "f").rglob("*.script.yaml")
            if not read_yaml(meta).get("lock")
        ]
        assert not unlocked, f"locksRequired is on but these have no lock: {unlocked}"


def test_every_resource_type_is_committed_and_well_formed() -> None:
    present = {
        p.name.removesuffix(".resource-type.json"): p
        for p in (ROOT / "f/marketing/resource_types").glob("*.resource-type.json")
    }
    assert set(present) == OUR_RESOURCE_TYPES
    for path in present.values():
        spec = json.loads(path.read_text(encoding="utf-8"))
        assert set(spec) == {"description", "schema"}, path.name
        assert spec["schema"].get("type") == "object", f"{path.name}: schema.type must be object"
        assert isinstance(spec["schema"].get("properties"), dict), f"{path.name}: no properties"


def test_resources_use_known_resource_types() -> None:
    for path in sorted((ROOT / "f").rglob("*.resource.yaml")):
        spec = read_yaml(path)
        assert spec.get("resource_type") in OUR_RESOURCE_TYPES, rel(path)
        assert synced([rel(path)])[rel(path)], f"{rel(path)} is not deployed by wmill.yaml"


# --- the Python packages Windmill installs -----------------------------------------------------

PINNED = ("httpx", "pydantic")  # everything the scripts import (tests/test_worker_packages.py)


@needs_node
def test_windmill_installs_the_package_versions_the_tests_ran_with() -> None:
    """Without pins Windmill resolves the newest httpx and pydantic, outside our tested range.
    A script's own pins win over what it imports through f.marketing modules, so each script
    (a file with main) carries them, and any other package it pins (the sweep's psycopg) is
    pinned as the tests ran it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    specs = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["dev"],
    ]
    tested = {re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0]: spec.replace(" ", "") for spec in specs}
    wanted = sorted(tested[name] for name in PINNED)
    for py in [ROOT / p for p in deployed_scripts()]:
        if main_function(rel(py)) is not None:
            source = py.read_text(encoding="utf-8")
            pins = extra_requirements(source) if source.startswith("# extra_requirements:") else []
            assert set(wanted) <= set(pins), (
                f"{rel(py)}: start it with '# extra_requirements:' and #{' #'.join(wanted)}"
            )
            for pin in pins:
                name = re.split(r"[<>=!~\[]", pin, maxsplit=1)[0]
                assert tested.get(name) == pin, f"{rel(py)}: #{pin} is not {tested.get(name)}"
