"""scripts/deploy with Windmill's own CLI against a stand-in Windmill API on 127.0.0.1."""

import json
import os
import shutil
import subprocess
from datetime import timedelta
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


ENTRY_SCRIPTS = sorted(path for path in expected_scripts() if "/lib/" not in path)
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


# Where three files were before the library moved to f/marketing/lib (0092856), and are now.
BEFORE_THE_MOVE = {
    "f/marketing/contract": "f/marketing/lib/contract",
    "f/marketing/workflow": "f/marketing/lib/steps",
    "f/marketing/handle_user_event": "f/marketing/handle_user_event",
}
RETIRED = ["f/marketing/contract", "f/marketing/workflow"]
# The worker's loader maps a relative import and an absolute one alike to a workspace path.
OLD_HANDLER = "from .contract import parse_event\n"
OLD_STRIPE_EVENTS = "def main():\n    from f.marketing import workflow\n"


def workspace_before_the_move(wm: WindmillServer) -> str:
    """A workspace deployed before the move, a week ago: the old modules at f/marketing/<name>
    and a handler that imports them. The hash of that handler's version."""
    handler = ""
    for path, now in BEFORE_THE_MOVE.items():
        content = OLD_HANDLER if path.endswith("handle_user_event") else ""
        for suffix in (".py", ".script.yaml"):
            wm.tree[path + suffix] = content or (ROOT / (now + suffix)).read_text()
        version = wm.deployed(path, content=content or (ROOT / f"{now}.py").read_text())
        handler = version if path.endswith("handle_user_event") else handler
    return handler


def test_a_deploy_keeps_a_retired_module_while_a_queued_job_imports_it(project):
    """A later attempt queued by the old handler runs the old handler, which imports the old
    paths: they stay until it has run, and the deploy says so."""
    with WindmillServer() as wm:
        old_handler = workspace_before_the_move(wm)
        wm.queue_job("f/marketing/handle_user_event", old_handler, due_in=timedelta(hours=40))
        old_stripe = wm.deployed("f/marketing/stripe_events", content=OLD_STRIPE_EVENTS)
        wm.queue_job("f/marketing/stripe_events", old_stripe, due_in=timedelta(hours=2))
        first = deploy(project, wm)
        assert first.returncode == 0, first.stdout + first.stderr
        assert wm.archived == []
        assert "f/marketing/lib/contract" in wm.scripts and "f/marketing/lib/steps" in wm.scripts
        assert wm.scripts["f/marketing/handle_user_event"]["hash"] != old_handler
        assert "kept f/marketing/contract, f/marketing/workflow: no longer in this " in first.stdout
        assert "2 queued job(s) import them, the last due 20" in first.stdout
        assert "2 script(s) run a version that imports them" in first.stdout

        wm.resolve_locks()
        wm.queue.clear()  # the later attempts ran
        wm.pass_time(timedelta(hours=1))
        second = deploy(project, wm)
    assert second.returncode == 0, second.stdout + second.stderr
    assert sorted(wm.archived) == RETIRED
    assert "archived f/marketing/contract: no longer in this repository" in second.stdout


def test_a_retired_module_stays_while_the_version_that_replaced_its_importer_settles(project):
    """Webhooks run the newest version whose lock is resolved, and Windmill caches that choice
    for a minute: a handler pushed minutes ago may not be the one that runs yet."""
    with WindmillServer() as wm:
        workspace_before_the_move(wm)
        assert deploy(project, wm).returncode == 0
        assert wm.archived == []

        pending = deploy(project, wm)  # its locks still resolve
        assert pending.returncode == 0, pending.stdout + pending.stderr
        assert "script(s) have a version too new to run for sure" in pending.stdout
        wm.resolve_locks()
        wm.pass_time(timedelta(minutes=2))
        fresh = deploy(project, wm)
        assert "script(s) have a version too new to run for sure" in fresh.stdout
        assert wm.archived == []

        wm.resolve_locks()
        wm.pass_time(timedelta(minutes=30))
        settled = deploy(project, wm)
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert sorted(wm.archived) == RETIRED
    assert all(v["archived"] for v in wm.versions.values() if v["path"] in RETIRED)


def test_a_webhook_delivery_queued_during_the_push_keeps_the_retired_modules(project):
    """Until the pushed handler has its lock, a delivery runs the one before: the queue is
    read again after the push, before anything is archived."""
    with WindmillServer() as wm:
        old_handler = workspace_before_the_move(wm)
        for entry in ENTRY_SCRIPTS:  # already moved, a while ago: nothing imports the old paths
            wm.deployed(entry, content=(ROOT / f"{entry}.py").read_text(), age=timedelta(hours=1))
        wm.queue_during_push("f/marketing/handle_user_event", old_handler)
        done = deploy(project, wm)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kept f/marketing/contract, f/marketing/workflow: no longer in this " in done.stdout
    assert "1 queued job(s) import them" in done.stdout
    assert wm.archived == []


def test_a_handler_whose_lock_failed_keeps_the_retired_modules_and_still_deploys(project):
    """A push that does not change a script makes no new version, so the failed lock is
    never retried by a push: the deploy goes on (a fix must be able to ship), keeps the
    retired modules, and ends in one line saying what to do."""
    with WindmillServer() as wm:
        workspace_before_the_move(wm)
        assert deploy(project, wm).returncode == 0
        wm.resolve_locks()
        wm.pass_time(timedelta(hours=1))
        failed = wm.scripts["f/marketing/handle_user_event"]
        failed.pop("lock")
        failed["lock_error_logs"] = "No solution found when resolving dependencies"
        before = len(wm.versions)
        done = deploy(project, wm)
    assert done.returncode == 1
    assert len(wm.versions) > before, "the push went ahead"
    assert "1 script(s) run the version before a failed lock" in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("deploy: the newest version of f/marketing/handle_user_event failed")
    assert wm.archived == []


def test_a_dry_run_says_it_would_archive_and_archives_nothing(project):
    with WindmillServer() as wm:
        workspace_before_the_move(wm)
        for path in ("f/marketing/handle_user_event",):
            wm.deployed(path, content=(ROOT / f"{path}.py").read_text())  # already moved
        done = deploy(project, wm, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would archive f/marketing/contract, f/marketing/workflow" in done.stdout
    assert wm.archived == [] and wm.writes() == []


def test_a_deploy_from_a_cli_profile_reads_the_queue_with_that_profile(project):
    """Without --base-url the deploy uses the profile `wmill workspace add` stored."""
    home = project.parent / "home"
    with WindmillServer() as wm:
        workspace_before_the_move(wm)
        added = subprocess.run(
            [str(WMILL), "workspace", "add", "prod", wm.workspace, wm.url + "/",
             "--token", wm.token],
            env={**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": ""},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        done = subprocess.run(
            [str(project / "scripts" / "deploy"), "--workspace", "prod"],
            cwd=project, env={**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": ""},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kept f/marketing/contract, f/marketing/workflow" in done.stdout
    assert ("GET", "/api/w/test/jobs/queue/list") in wm.requests


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
