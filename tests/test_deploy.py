"""scripts/deploy with Windmill's own CLI against a stand-in Windmill API on 127.0.0.1."""

import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from tests.test_windmill_conformance import ROOT, WMILL, deployed_scripts, needs_node
from tests.windmill_server import Token, WindmillServer

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
    project: Path, wm: WindmillServer, *args: str, token: str = "", workspace: str = ""
) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(project.parent / "home")}
    return subprocess.run(
        [str(project / "scripts" / "deploy"), *args, "--base-url", wm.url,
         "--workspace", workspace or wm.workspace, "--token", token or wm.token],
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


def test_a_company_s_own_routing_is_created_from_its_file_read_from_the_caller_s_folder(
    project, tmp_path
):
    ours = json.loads((ROOT / "scripts/examples/routing.resource.json").read_text())
    ours["value"]["campaigns"] = {"onboarding": 7, "upgrade": None, "winback": None}
    elsewhere = tmp_path / "acme"
    elsewhere.mkdir()
    (elsewhere / "routing.json").write_text(json.dumps(ours))
    with WindmillServer() as wm:
        done = subprocess.run(
            [str(project / "scripts" / "deploy"), "--routing", "routing.json",
             "--base-url", wm.url, "--workspace", wm.workspace, "--token", wm.token],
            cwd=elsewhere, env={**os.environ, "HOME": str(tmp_path / "home")},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"pushing {elsewhere / 'routing.json'} (none yet)" in done.stdout
    assert wm.resources["f/marketing/routing"]["value"] == ours["value"]


def test_a_routing_file_the_jobs_would_refuse_is_refused_before_any_call(project, tmp_path):
    bad = json.loads((ROOT / "scripts/examples/routing.resource.json").read_text())
    bad["value"]["segmnts"] = bad["value"].pop("segments")
    (tmp_path / "routing.json").write_text(json.dumps(bad))
    with WindmillServer() as wm:
        done = deploy(project, wm, "--routing", str(tmp_path / "routing.json"))
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith(f"deploy: {tmp_path / 'routing.json'}: Resource f/marketing/routing")
    assert "segmnts" in line
    assert wm.requests == []


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
    """Without --base-url the deploy uses the profile `wmill workspace add` stored, and
    names it to the CLI, which in a git clone would otherwise advise `wmill init`."""
    subprocess.run(["git", "init", "-q", str(project)], check=True)
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
    assert "wmill init" not in done.stdout + done.stderr


def one_line(done: subprocess.CompletedProcess) -> str:
    """The failure, which must be one line on stderr and no traceback."""
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def refused_before_any_push(wm: WindmillServer) -> None:
    assert [w for w in wm.writes() if w != ("POST", "/api/workspaces/exists")] == []
    assert all("/resources/" not in path for _, path in wm.requests), "nothing was read yet"


def test_a_wrong_token_stops_the_deploy_before_anything_is_read(project):
    with WindmillServer() as wm:
        done = deploy(project, wm, token="expired-token")
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith("deploy: Windmill refused the token (HTTP 401): Not authorized")
    assert "it is unknown, expired, made for another workspace" in line
    assert "expired-token" not in done.stdout + done.stderr
    refused_before_any_push(wm)


def test_a_token_scoped_to_another_workspace_is_refused_as_a_token(project):
    with WindmillServer() as wm:
        wm.tokens["other-ws-token"] = Token(workspace="staging")
        done = deploy(project, wm, token="other-ws-token")
    assert done.returncode == 2
    assert "refused the token" in one_line(done)
    refused_before_any_push(wm)


def test_a_workspace_that_does_not_exist_is_named_and_nothing_is_pushed(project):
    """Windmill answers 401 for a workspace that does not exist, as for a bad token: the
    deploy asks the instance whether it exists, and says so, instead of "would push (new)"
    for everything and then a failure."""
    with WindmillServer() as wm:
        done = deploy(project, wm, workspace="tset")
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith("deploy: workspace 'tset' on 127.0.0.1:")
    assert "does not exist" in line and "would push" not in done.stdout
    assert ("POST", "/api/workspaces/exists") in wm.requests
    refused_before_any_push(wm)


def test_a_token_whose_user_is_not_a_member_says_so(project):
    with WindmillServer() as wm:
        wm.tokens["outsider"] = Token(role="outsider")
        done = deploy(project, wm, token="outsider")
    assert done.returncode == 2
    assert "the token's user is not a member of workspace 'test'" in one_line(done)
    refused_before_any_push(wm)


def test_a_superadmin_s_token_still_learns_that_a_workspace_does_not_exist(project):
    """Windmill answers a superadmin's whoami for any workspace id, existing or not."""
    with WindmillServer() as wm:
        wm.tokens["root"] = Token(role="superadmin")
        done = deploy(project, wm, token="root", workspace="tset")
    assert done.returncode == 2
    assert "workspace 'tset' on 127.0.0.1:" in one_line(done) and "does not exist" in done.stderr
    refused_before_any_push(wm)


def test_a_superadmin_deploys_to_a_workspace_that_exists(project):
    with WindmillServer() as wm:
        wm.tokens["root"] = Token(role="superadmin")
        done = deploy(project, wm, "--dry-run", token="root")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deploying to workspace 'test' on 127.0.0.1:" in done.stdout


def test_members_who_could_not_deploy_are_told_why_before_anything_is_pushed(project):
    with WindmillServer() as wm:
        wm.folders["marketing"] = {"name": "marketing", "owners": ["g/marketing_ops"]}
        wm.tokens.update(ops=Token(role="operator"), viewer=Token(role="reader"))
        operator = deploy(project, wm, token="ops")
        reader = deploy(project, wm, token="viewer")
        wm.tokens["gone"] = Token(role="disabled")
        disabled = deploy(project, wm, token="gone")
    assert operator.returncode == reader.returncode == disabled.returncode == 2
    assert "is an operator in workspace 'test'" in one_line(operator)
    assert "may read f/marketing/ in workspace 'test'" in one_line(reader)
    assert "add them to the group marketing_ops" in reader.stderr
    assert "is not a member of workspace 'test'" in one_line(disabled)
    assert "or is disabled there" in disabled.stderr
    refused_before_any_push(wm)


def test_a_scoped_token_without_the_scope_is_told_to_use_an_unscoped_one(project):
    with WindmillServer() as wm:
        wm.tokens["narrow"] = Token(scopes=("jobs:run:scripts:f/marketing/handle_user_event",))
        done = deploy(project, wm, token="narrow")
    assert done.returncode == 2
    line = one_line(done)
    assert "lacks a scope the deploy needs (HTTP 403)" in line
    assert "Required scope: users:read" in line
    refused_before_any_push(wm)


def test_a_base_url_without_a_scheme_is_refused_up_front(project):
    with WindmillServer() as wm:
        done = subprocess.run(
            [str(project / "scripts" / "deploy"), "--base-url", "windmill.example.com",
             "--workspace", "test", "--token", wm.token],
            cwd=project, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2
    assert one_line(done) == "deploy: --base-url must start with https:// (or http://)"
    assert wm.requests == []


def direct(project: Path, wm: WindmillServer, path: str, **env: str):
    """scripts/deploy.py run by the venv's Python with this PATH: no wrapper needs a tool."""
    return subprocess.run(
        [str(project / ".venv" / "bin" / "python"), str(project / "scripts" / "deploy.py"),
         "--base-url", wm.url, "--workspace", wm.workspace, "--token", wm.token],
        cwd=project, env={**os.environ, "PATH": path, **env}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def tools(tmp_path: Path, **scripts: str) -> str:
    """A PATH folder holding the real `node` and the given stand-in commands."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    (folder / "node").symlink_to(shutil.which("node") or "node")
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return str(folder)


def test_no_node_on_path_is_one_line_and_exit_2(project, tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    with WindmillServer() as wm:
        done = direct(project, wm, str(empty))
    assert done.returncode == 2
    assert one_line(done).startswith("deploy: needs Node.js 20 or newer on PATH")
    assert wm.requests == []


NPM_OFFLINE = (
    "echo 'npm error code EAI_AGAIN' >&2\n"
    "echo 'npm error request to https://registry.npmjs.org/yaml failed' >&2\n"
    "echo 'npm error A complete log of this run can be found in: /root/.npm/_logs/x.log' >&2\n"
    "exit 1"
)


def test_a_failed_npm_install_shows_npm_s_own_reason(project, tmp_path):
    (project / "tests" / "windmill" / "node_modules").unlink()
    npm = NPM_OFFLINE
    with WindmillServer() as wm:
        done = direct(project, wm, tools(tmp_path, npm=npm))
    assert done.returncode == 1
    line = one_line(done)
    assert line.startswith("deploy: `npm ci --prefix tests/windmill` failed: npm error request")
    assert wm.requests == []


def test_missing_windmill_packages_are_not_called_stale_metadata(project, tmp_path):
    """With a CLI of one's own (WMILL), the metadata check still needs tests/windmill's
    packages: it says to install them, and does not call the metadata stale."""
    (project / "tests" / "windmill" / "node_modules").unlink()
    with WindmillServer() as wm:
        done = direct(project, wm, tools(tmp_path), WMILL=str(WMILL))
    assert done.returncode == 2
    line = one_line(done)
    assert "are not installed in tests/windmill: run `npm ci --prefix tests/windmill`" in line
    assert "stale" not in line
    assert wm.requests == []


def test_stale_metadata_stops_the_deploy_and_says_how_to_refresh_it(project):
    script = project / "f" / "marketing" / "replay.py"
    script.write_text(script.read_text().replace("def main(", "def main(\n    extra: int = 1,", 1))
    with WindmillServer() as wm:
        done = deploy(project, wm)
    assert done.returncode == 2
    assert one_line(done) == (
        "deploy: the scripts' Windmill metadata is stale: run "
        "`node scripts/generate_metadata.mjs` and commit the result"
    )
    assert wm.requests == []


def test_the_cli_s_advice_that_would_break_the_repository_is_left_out(project):
    """In a git clone the CLI advises `wmill init` (which rewrites wmill.yaml) unless it is
    given a workspace, and every push lists each script as having stale metadata (empty
    locks): the deploy says once to ignore that, and shows the rest of what the CLI said."""
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    with WindmillServer() as wm:
        done = deploy(project, wm)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "deploying to workspace 'test' on 127.0.0.1:" in out
    assert "wmill init" not in out
    assert "Stale scripts metadata found" not in out and "(python3)" not in out
    assert "Lint passed (0 file(s) validated" not in out
    assert "\x1b[" not in out, "no colour codes"
    assert out.count("ignore its advice to run `wmill generate-metadata`") == 1
    assert "Creating new script f/marketing/handle_user_event" in out
    assert "Done! All" in out


def test_scripts_wmill_ends_a_failed_install_in_one_line(project, tmp_path):
    (project / "tests" / "windmill" / "node_modules").unlink()
    shell = shutil.which("bash") or "/bin/bash"
    path = f"{tools(tmp_path, npm=NPM_OFFLINE)}:{Path(shell).parent}"
    done = subprocess.run(
        [str(project / "scripts" / "wmill"), "--help"],
        env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert (
        lines[0]
        == "scripts/wmill: installing the pinned windmill-cli (npm ci --prefix tests/windmill)"
    )
    assert len(lines) == 2, done.stderr
    assert lines[1].startswith(
        "scripts/wmill: `npm ci --prefix tests/windmill` failed: npm error request"
    )


def test_scripts_wmill_is_the_pinned_cli():
    done = subprocess.run(
        [str(ROOT / "scripts" / "wmill"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "1.819.0" in done.stdout
