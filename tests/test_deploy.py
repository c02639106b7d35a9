"""scripts/deploy with Windmill's own CLI against a stand-in Windmill API on 127.0.0.1."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_windmill_conformance import ROOT, WMILL, deployed_scripts, needs_node
from tests.windmill_server import WindmillServer

pytestmark = needs_node


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of what a team clones, so that nothing the CLI writes lands in the repository."""
    copy = tmp_path / "repo"
    for part in ("f", "scripts"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("wmill.yaml", "pyproject.toml"):
        shutil.copy2(ROOT / name, copy / name)
    (copy / "tests" / "windmill").mkdir(parents=True)
    for name in ("wm_sig.mjs", "package.json", "package-lock.json"):
        shutil.copy2(ROOT / "tests" / "windmill" / name, copy / "tests" / "windmill" / name)
    (copy / "tests" / "windmill" / "node_modules").symlink_to(WMILL.parents[1])
    (copy / ".venv").symlink_to(ROOT / ".venv")  # built by scripts/test already
    return copy


def deploy(
    project: Path, wm: WindmillServer, *args: str, token: str = ""
) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(project.parent / "home")}
    return subprocess.run(
        [str(project / "scripts" / "deploy"), *args,
         "--base-url", wm.url, "--workspace", wm.workspace, "--token", token or wm.token],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def expected_scripts() -> set[str]:
    return {path.removesuffix(".py") for path in deployed_scripts()}


RESOURCE_TYPES = {"c_twenty", "c_mautic", "c_slack_notify", "c_marketing_routing", "c_stripe"}


def test_a_dry_run_changes_nothing_and_says_what_would(project):
    with WindmillServer() as wm:
        done = deploy(project, wm, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert wm.writes() == []
    out = done.stdout
    for name in RESOURCE_TYPES:
        assert f"resource type {name}: would push (new)" in out
    assert "resource f/marketing/routing: would push the example routing (none yet)" in out
    assert "+ folder f/marketing/folder.meta.yaml" in out
    for script in expected_scripts():
        assert f"+ script {script}.py" in out
    assert "tests/" not in out and "conftest" not in out


def test_a_deploy_pushes_the_scripts_the_folder_and_only_a_missing_routing(project):
    with WindmillServer() as wm:
        done = deploy(project, wm)
        assert done.returncode == 0, done.stdout + done.stderr

        assert set(wm.scripts) == expected_scripts()
        handler = wm.scripts["f/marketing/handle_user_event"]
        assert handler["has_preprocessor"] is True and handler["language"] == "python3"
        assert handler["content"] == (ROOT / "f/marketing/handle_user_event.py").read_text()
        assert wm.folders["marketing"]["owners"] == ["g/marketing_ops"]
        assert wm.folders["marketing"]["extra_perms"] == {
            "g/marketing_ops": True,
            "g/error_handler": False,
        }
        assert set(wm.resource_types) == RESOURCE_TYPES
        example = json.loads((ROOT / "scripts/examples/routing.resource.json").read_text())
        assert wm.resources["f/marketing/routing"]["value"] == example["value"]
        assert set(wm.resources) == {"f/marketing/routing"}, "no credentials are ever pushed"

        edited = {**example["value"], "campaigns": {"onboarding": 42}}
        wm.resources["f/marketing/routing"]["value"] = edited
        again = deploy(project, wm)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "resource f/marketing/routing: exists, kept as it is" in again.stdout
        assert "resource type c_twenty: up to date" in again.stdout
        assert wm.resources["f/marketing/routing"]["value"] == edited


def test_the_first_deploy_after_the_move_to_lib_archives_the_old_module_paths(project):
    """A workspace deployed before the library moved to f/marketing/lib holds its modules at
    f/marketing/<name>: push archives those (they are in the folder, not in the repository)
    and keeps the six jobs at their paths."""
    before = {  # where each file was before the move (0092856), and where it is now
        "f/marketing/contract": "f/marketing/lib/contract",
        "f/marketing/workflow": "f/marketing/lib/steps",
        "f/marketing/handle_user_event": "f/marketing/handle_user_event",
    }
    with WindmillServer() as wm:
        for path, now in before.items():
            for suffix in (".py", ".script.yaml"):
                wm.tree[path + suffix] = (ROOT / (now + suffix)).read_text()
        done = deploy(project, wm)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(wm.archived) == ["f/marketing/contract", "f/marketing/workflow"]
    assert "f/marketing/lib/contract" in wm.scripts and "f/marketing/lib/steps" in wm.scripts
    assert "- script f/marketing/contract.py" in done.stdout, "the push lists what it archives"


def test_a_wrong_token_stops_the_deploy_in_one_line(project):
    with WindmillServer() as wm:
        done = deploy(project, wm, token="expired-token")
    assert done.returncode == 1
    assert done.stderr.startswith("deploy: reading resource-type c_")
    assert len(done.stderr.strip().splitlines()) == 1
    assert wm.scripts == {} and wm.resources == {}


def test_scripts_wmill_is_the_pinned_cli():
    done = subprocess.run(
        [str(ROOT / "scripts" / "wmill"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "1.819.0" in done.stdout
