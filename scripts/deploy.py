"""Deploy f/marketing to a Windmill workspace: our resource types, the routing (only if the
workspace has none: an edited routing is never overwritten), then the scripts and the folder
with `wmill sync push`. A script the repository no longer has is archived only once no queued
job can still import it (scripts/retired_scripts.py); until then each deploy says why it stays.

    scripts/deploy [--dry-run] [--workspace NAME] [--base-url URL --token TOKEN]

Without --base-url it uses the CLI's active workspace profile (`scripts/wmill workspace add`
once). The CLI is the one pinned in tests/windmill (installed with npm on first use).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retired_scripts import DeployApi, Target, what_waits  # noqa: E402

from f.marketing.lib.errors import ServiceError  # noqa: E402

PINNED_CLI = ROOT / "tests" / "windmill" / "node_modules" / ".bin" / "wmill"
RESOURCE_TYPES = ROOT / "f" / "marketing" / "resource_types"
ROUTING_EXAMPLE = ROOT / "scripts" / "examples" / "routing.resource.json"
ROUTING_PATH = "f/marketing/routing"
FOLDER = "f/marketing/"
# The jobs Windmill runs: a webhook delivery runs the newest of their deployed versions.
ENTRY_SCRIPTS = tuple(f"{FOLDER}{p.stem}" for p in sorted((ROOT / FOLDER).glob("*.py")))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DeployFailed(Exception):
    """One line for the person deploying."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="show what would change")
    parser.add_argument("--workspace", help="a workspace profile, or the id with --base-url")
    parser.add_argument("--base-url", help="the Windmill URL, without a stored profile")
    parser.add_argument("--token", help="with --base-url: a token (or WM_TOKEN)")
    args = parser.parse_args()
    try:
        deploy(args)
    except DeployFailed as problem:
        print(f"deploy: {problem}", file=sys.stderr)
        return 1
    return 0


def deploy(args: argparse.Namespace) -> None:
    cli = find_cli()
    connection = connection_options(args)
    check_metadata()
    verb = "would push" if args.dry_run else "pushing"
    for spec in sorted(RESOURCE_TYPES.glob("*.resource-type.json")):
        name = spec.name.removesuffix(".resource-type.json")
        local = json.loads(spec.read_text(encoding="utf-8"))
        remote = get_json(cli, connection, "resource-type", name)
        if remote is not None and {k: remote.get(k) for k in local} == local:
            print(f"resource type {name}: up to date")
            continue
        print(f"resource type {name}: {verb} ({'new' if remote is None else 'changed'})")
        if not args.dry_run:
            run(cli, connection, "resource-type", "push", str(spec), name)

    if get_json(cli, connection, "resource", ROUTING_PATH) is not None:
        print(f"resource {ROUTING_PATH}: exists, kept as it is")
    else:
        print(f"resource {ROUTING_PATH}: {verb} the example routing (none yet)")
        if not args.dry_run:
            run(cli, connection, "resource", "push", str(ROUTING_EXAMPLE), ROUTING_PATH)

    # --keep-deleted: a plain push archives what the repository lost before it creates the
    # rest, so a job still running an earlier version would not find the modules it imports.
    sync = ["sync", "push", "--yes", "--keep-deleted", *(["--dry-run"] if args.dry_run else [])]
    retired = retired_scripts(cli, connection)
    if not retired:
        run(cli, connection, *sync, capture=False)
        return
    names, pushed = ", ".join(retired), False
    try:
        with DeployApi.connect(api_target(args)) as api:
            # Read before the push: until its versions have their locks, webhooks run these.
            importers, waiting = what_waits(api, FOLDER, retired, ENTRY_SCRIPTS)
            run(cli, connection, *sync, capture=False)
            pushed = True
            if not waiting and not args.dry_run:
                waiting = importers.of_queue(FOLDER)  # and jobs queued during the push
            if waiting:
                print(
                    f"kept {names}: no longer in this repository, but {waiting.describe()}; "
                    "scripts/deploy archives them once nothing does"
                )
            elif args.dry_run:
                print(f"would archive {names}: gone from this repository, and nothing imports them")
            else:
                for path in retired:
                    api.archive(path)
                    print(f"archived {path}: no longer in this repository, and nothing imports it")
    except ServiceError as problem:
        done = "pushed; run scripts/deploy again to archive" if pushed else "nothing pushed"
        raise DeployFailed(f"{problem} ({done})") from None
    if waiting.failed:
        # A push with no change to the script makes no new version: the lock is not retried.
        raise DeployFailed(
            f"the newest version of {', '.join(waiting.failed)} failed to lock, so webhooks "
            "run the one before it: its dependencies job in Runs says why; deploy it again "
            "from its editor once fixed"
        )


def retired_scripts(cli: str, connection: list[str]) -> list[str]:
    """The scripts under f/marketing that the workspace has and this repository does not
    (what a plain `sync push` would delete), read from the CLI's dry run."""
    done = subprocess.run(
        [cli, "sync", "push", "--dry-run", "--json-output", *connection],
        capture_output=True,
        text=True,
        env=_cli_env(),
    )
    output = ANSI.sub("", done.stdout)
    if done.returncode != 0:
        last = _last_line(output + ANSI.sub("", done.stderr))
        raise DeployFailed(f"`wmill sync push --dry-run` failed: {last}")
    plan = next((doc for doc in _json_documents(output) if "changes" in doc), None)
    if plan is None:
        raise DeployFailed("`wmill sync push --dry-run --json-output` listed no changes")
    return sorted(
        change["path"].replace("\\", "/").removesuffix(".py")
        for change in plan["changes"]
        if change.get("type") == "deleted" and change.get("path", "").endswith(".py")
    )


def api_target(args: argparse.Namespace) -> Target:
    """The API and token the CLI uses: --base-url and --token, or the CLI's stored profile
    (--workspace names it, else the active one), read where the CLI keeps it:
    $WMILL_CONFIG_DIR or the user's config folder, then windmill/remotes.ndjson
    (windmill-cli 1.819 getConfigDirPath, getActiveWorkspace)."""
    if args.base_url:
        return Target(args.base_url, args.workspace, args.token or os.environ["WM_TOKEN"])
    store = _cli_config_dir() / "windmill"
    name = args.workspace
    if not name:
        try:
            name = (store / "activeWorkspace").read_text(encoding="utf-8").strip()
        except OSError:
            name = ""
    try:
        lines = (store / "remotes.ndjson").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        profile = json.loads(line) if len(line) > 2 else {}
        if profile.get("name") == name:
            return Target(profile["remote"], profile["workspaceId"], profile["token"])
    raise DeployFailed(
        f"no workspace profile {name!r} in {store}: `scripts/wmill workspace add` it, "
        "or pass --base-url, --workspace and --token"
    )


def _cli_config_dir() -> Path:
    if os.environ.get("WMILL_CONFIG_DIR"):
        return Path(os.environ["WMILL_CONFIG_DIR"])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Preferences"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", ""))
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def _json_documents(text: str) -> list[dict]:
    """The JSON objects the CLI printed one after another (its lint report, then the plan)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        try:
            document, at = decoder.raw_decode(text, at)
        except ValueError:
            at += 1
            continue
        documents.append(document)
    return documents


def find_cli() -> str:
    """The CLI version the conformance tests ran: windmill-cli from tests/windmill."""
    if os.environ.get("WMILL"):
        return os.environ["WMILL"]
    if not PINNED_CLI.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise DeployFailed("needs Node.js and npm for windmill-cli (https://nodejs.org)")
        print("deploy: installing the pinned windmill-cli (npm ci --prefix tests/windmill)")
        subprocess.run(
            [npm, "ci", "--prefix", str(PINNED_CLI.parents[2]), "--no-audit", "--no-fund"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return str(PINNED_CLI)


def connection_options(args: argparse.Namespace) -> list[str]:
    if args.base_url:
        token = args.token or os.environ.get("WM_TOKEN")
        if not (args.workspace and token):
            raise DeployFailed("--base-url needs --workspace and --token (or WM_TOKEN)")
        return ["--base-url", args.base_url, "--workspace", args.workspace, "--token", token]
    return ["--workspace", args.workspace] if args.workspace else []


def check_metadata() -> None:
    done = subprocess.run(
        ["node", str(ROOT / "scripts" / "generate_metadata.mjs"), "--check"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise DeployFailed(
            "the scripts' Windmill metadata is stale: run "
            "`node scripts/generate_metadata.mjs` and commit the result"
        )


def get_json(cli: str, connection: list[str], kind: str, name: str) -> dict | None:
    """The remote item, or None when the workspace has none; any other answer stops here."""
    done = subprocess.run(
        [cli, kind, "get", name, "--json", *connection],
        capture_output=True,
        text=True,
        env=_cli_env(),
    )
    output = ANSI.sub("", done.stdout + done.stderr)
    if done.returncode == 0:
        stdout = ANSI.sub("", done.stdout)
        return json.JSONDecoder().raw_decode(stdout, stdout.index("{"))[0]
    if "Not Found" in output:
        return None
    raise DeployFailed(f"reading {kind} {name}: {_last_line(output)}")


def run(cli: str, connection: list[str], *command: str, capture: bool = True) -> None:
    done = subprocess.run(
        [cli, *command, *connection],
        capture_output=capture,
        text=True,
        env=_cli_env(),
    )
    if done.returncode != 0:
        output = ANSI.sub("", (done.stdout or "") + (done.stderr or ""))
        raise DeployFailed(f"`wmill {' '.join(command)}` failed: {_last_line(output)}")


def _cli_env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1"}


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


if __name__ == "__main__":
    os.chdir(ROOT)  # wmill reads wmill.yaml and f/ from the current folder
    sys.exit(main())
