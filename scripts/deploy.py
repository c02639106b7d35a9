"""Deploy f/marketing to a Windmill workspace: our resource types, the routing (only if the
workspace has none: an edited routing is never overwritten), then the scripts and the folder
with `wmill sync push`. A script the repository no longer has is archived only once no queued
job can still import it (scripts/retired_scripts.py); until then each deploy says why it stays.

    scripts/deploy [--dry-run] [--workspace NAME] [--base-url URL --token TOKEN]
                   [--routing FILE]

Without --base-url it uses the CLI's active workspace profile (`scripts/wmill workspace add`
once). The CLI is the one pinned in tests/windmill (installed with npm on first use).
Before anything is read or pushed it checks Node.js, the CLI, the metadata, the token and the
workspace; each failure is one line (exit 2: fix the input; exit 1: Windmill or npm failed).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy_api import DeployApi, Target  # noqa: E402
from local_windmill import given_path  # noqa: E402
from retired_scripts import what_waits  # noqa: E402

from f.marketing.lib.errors import ConfigError, ServiceError  # noqa: E402
from f.marketing.lib.routing import Routing  # noqa: E402
from f.marketing.lib.settings import parse_resource  # noqa: E402

PINNED_CLI = ROOT / "tests" / "windmill" / "node_modules" / ".bin" / "wmill"
RESOURCE_TYPES = ROOT / "f" / "marketing" / "resource_types"
ROUTING_EXAMPLE = ROOT / "scripts" / "examples" / "routing.resource.json"
ROUTING_PATH = "f/marketing/routing"
FOLDER = "f/marketing/"
# The jobs Windmill runs: a webhook delivery runs the newest of their deployed versions.
ENTRY_SCRIPTS = tuple(f"{FOLDER}{p.stem}" for p in sorted((ROOT / FOLDER).glob("*.py")))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DeployFailed(Exception):
    """One line for the person deploying: Windmill or npm failed (exit 1)."""

    exit_code = 1


class BadInput(DeployFailed):
    """What the person deploying gave, or their machine, is wrong (exit 2)."""

    exit_code = 2


# What `wmill sync push` prints that does not apply here, and why it is left out.
CLI_NOISE = (
    "Running lint validation before push",
    "Lint passed (0 file(s) validated",
)
STALE_WARNING = "Stale scripts metadata found"
STALE_ENTRY = re.compile(r"\S+ \(\w+\)")  # "f/marketing/setup (python3)"
INIT_ADVICE = (
    "the 'workspaces' section is recommended in wmill.yaml",
    "Consider adding a workspaces section",
    "Run 'wmill init' to recreate the configuration file",
)
IGNORED_ADVICE = (
    "left out the CLI's 'stale scripts metadata' list: ignore its advice to run `wmill "
    "generate-metadata`, which would point every .script.yaml at lock files this repository "
    "does not have (Windmill resolves the locks on deploy; our metadata check passed)"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="show what would change")
    parser.add_argument("--workspace", help="a workspace profile, or the id with --base-url")
    parser.add_argument("--base-url", help="the Windmill URL, without a stored profile")
    parser.add_argument("--token", help="with --base-url: a token (or WM_TOKEN)")
    parser.add_argument(
        "--routing",
        default=str(ROUTING_EXAMPLE),
        help="the routing to create when the workspace has none (default: the example)",
    )
    args = parser.parse_args()
    try:
        deploy(args)
    except DeployFailed as problem:
        print(f"deploy: {problem}", file=sys.stderr)
        return problem.exit_code
    return 0


def deploy(args: argparse.Namespace) -> None:
    args.routing = routing_file(given_path(args.routing))
    os.chdir(ROOT)  # wmill reads wmill.yaml and f/ from the current folder
    target, options = connection(args)
    node = shutil.which("node")
    if node is None:
        raise BadInput("needs Node.js 20 or newer on PATH, for windmill-cli (https://nodejs.org)")
    cli = find_cli()
    check_metadata(node)
    with DeployApi.connect(target) as api:
        check_access(api, target)
        push(args, cli, options, api)


def push(args: argparse.Namespace, cli: str, options: list[str], api: DeployApi) -> None:
    verb = "would push" if args.dry_run else "pushing"
    for spec in sorted(RESOURCE_TYPES.glob("*.resource-type.json")):
        name = spec.name.removesuffix(".resource-type.json")
        local = json.loads(spec.read_text(encoding="utf-8"))
        remote = get_json(cli, options, "resource-type", name)
        if remote is not None and {k: remote.get(k) for k in local} == local:
            print(f"resource type {name}: up to date")
            continue
        print(f"resource type {name}: {verb} ({'new' if remote is None else 'changed'})")
        if not args.dry_run:
            run(cli, options, "resource-type", "push", str(spec), name)

    if get_json(cli, options, "resource", ROUTING_PATH) is not None:
        print(f"resource {ROUTING_PATH}: exists, kept as it is")
    else:
        which = "the example routing" if args.routing == ROUTING_EXAMPLE else str(args.routing)
        print(f"resource {ROUTING_PATH}: {verb} {which} (none yet)")
        if not args.dry_run:
            run(cli, options, "resource", "push", str(args.routing), ROUTING_PATH)

    # --keep-deleted: a plain push archives what the repository lost before it creates the
    # rest, so a job still running an earlier version would not find the modules it imports.
    sync = ["sync", "push", "--yes", "--keep-deleted", *(["--dry-run"] if args.dry_run else [])]
    retired = retired_scripts(cli, options)
    if not retired:
        sync_push(cli, options, sync)
        return
    names, pushed = ", ".join(retired), False
    try:
        # Read before the push: until its versions have their locks, webhooks run these.
        importers, waiting = what_waits(api, FOLDER, retired, ENTRY_SCRIPTS)
        sync_push(cli, options, sync)
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


def routing_file(path: Path) -> Path:
    """A routing file checked as the jobs will check it, before anything is read or pushed."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"no routing file at {path}") from None
    except (OSError, ValueError) as problem:
        raise BadInput(f"the routing file {path} is not JSON: {problem}") from None
    if not isinstance(spec, dict) or spec.get("resource_type") != "c_marketing_routing":
        raise BadInput(
            f'{path} must hold a resource: {{"resource_type": "c_marketing_routing", '
            '"value": {...}}, as scripts/examples/routing.resource.json does'
        )
    try:
        parse_resource(Routing, ROUTING_PATH, spec.get("value"))
    except ConfigError as problem:
        raise BadInput(f"{path}: {problem}") from None
    return path


def check_access(api: DeployApi, target: Target) -> None:
    """Stop before anything is pushed when the workspace or the token is wrong: the CLI would
    report each resource type as new, then fail on the first write. Windmill answers a
    workspaced call 401 alike for an unknown token and for a workspace its user is not in
    (or that does not exist), so the instance-wide `workspaces/exists` tells them apart: it
    refuses an unknown token and a token bound to one workspace. A superadmin is answered
    for any workspace id, existing or not (windmill-api-users users.rs `whoami`,
    windmill-api-auth auth.rs `get_opt_job_authed`)."""
    where = f"workspace {target.workspace!r} on {_host(target.base_url)}"
    refused: ServiceError | None = None
    try:
        user = api.whoami()
    except ServiceError as problem:
        if problem.status != 401:
            raise _not_checked(problem) from None
        refused = problem
    else:
        if not (user.get("non_member") or user.get("role") == "superadmin"):
            _refuse_unfit_member(user, where)
            print(f"deploying to {where} as {user.get('username') or 'the token user'}")
            return
        if not _is_superadmin(user):  # a guest, or a worker's owner token
            raise BadInput(
                f"the token's user is not a member of {where} (Windmill answers it as "
                f"{user.get('role') or 'a non-member'}): use a member's token (nothing pushed)"
            )
    try:
        exists = api.workspace_exists()
    except ServiceError as problem:
        if problem.status != 401 or refused is None:
            raise _not_checked(problem) from None
        raise BadInput(
            f"Windmill refused the token{refused.reason}: it is unknown, expired, made for "
            f"another workspace, or limited to {where} while its user is not in it; create one "
            "under Account settings > Tokens as a member (nothing pushed)"
        ) from None
    if not exists:
        raise BadInput(
            f"{where} does not exist: its id is under Workspace settings > General "
            "(not its name), and `scripts/wmill workspace list` shows the stored ones "
            "(nothing pushed)"
        )
    if refused is not None:
        raise BadInput(
            f"the token's user is not a member of {where}, or is disabled there"
            f"{refused.reason}: add them to it, or use a member's token (nothing pushed)"
        )
    print(f"deploying to {where} as a superadmin")


def _is_superadmin(user: dict) -> bool:
    """Servers before `non_member` answer a superadmin as `role: superadmin` alone."""
    if "is_super_admin" in user:
        return bool(user["is_super_admin"])
    return user.get("role") == "superadmin"


def _refuse_unfit_member(user: dict, where: str) -> None:
    """A member who could not deploy: an operator may run scripts but not change them, and a
    user who may read the folder but not write it cannot push into it."""
    if user.get("operator"):
        raise BadInput(
            f"the token's user is an operator in {where}: operators cannot deploy scripts; "
            "use a developer's or an admin's token (nothing pushed)"
        )
    folder = FOLDER.strip("/").removeprefix("f/")
    readable, writable = user.get("folders_read") or [], user.get("folders") or []
    if not user.get("is_admin") and folder in readable and folder not in writable:
        raise BadInput(
            f"the token's user may read {FOLDER} in {where} but not write it: add them to "
            "the group marketing_ops, which owns the folder (nothing pushed)"
        )


def _not_checked(problem: ServiceError) -> DeployFailed:
    if problem.status == 403:  # a token with scopes, none of them this call's
        return BadInput(
            f"the token lacks a scope the deploy needs{problem.reason}: use a token without "
            "scopes (Account settings > Tokens) (nothing pushed)"
        )
    return DeployFailed(f"{problem} (nothing pushed)")


def sync_push(cli: str, options: list[str], sync: list[str]) -> None:
    """`wmill sync push`, its output shown without the advice that does not apply here."""
    done = subprocess.run(
        [cli, *sync, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_cli_env(),
    )
    output = ANSI.sub("", done.stdout)
    shown, left_out = cli_report(output)
    print(shown, end="" if shown.endswith("\n") or not shown else "\n")
    if left_out:
        print(f"deploy: {IGNORED_ADVICE}")
    if done.returncode != 0:
        raise DeployFailed(f"`wmill {' '.join(sync)}` failed: {_last_line(output)}")


def cli_report(output: str) -> tuple[str, bool]:
    """The CLI's output without its lint line (it validates flows, schedules and triggers;
    this repository has none), its 'wmill init' advice (wmill.yaml is ours, and a push names
    its workspace) and its stale metadata list (empty locks are how this repository deploys).
    Whether the stale list was left out."""
    kept: list[str] = []
    left_out = listing = False
    for line in output.splitlines():
        bare = line.strip()
        if listing and STALE_ENTRY.fullmatch(bare):
            continue
        listing = False
        if STALE_WARNING in bare:
            listing = left_out = True
            continue
        if any(noise in bare for noise in (*CLI_NOISE, *INIT_ADVICE)):
            continue
        if kept and not bare and not kept[-1].strip():
            continue
        kept.append(line)
    return "\n".join(kept).strip("\n") + ("\n" if kept else ""), left_out


def retired_scripts(cli: str, options: list[str]) -> list[str]:
    """The scripts under f/marketing that the workspace has and this repository does not
    (what a plain `sync push` would delete), read from the CLI's dry run."""
    done = subprocess.run(
        [cli, "sync", "push", "--dry-run", "--json-output", *options],
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


def connection(args: argparse.Namespace) -> tuple[Target, list[str]]:
    """Where the deploy goes, for our own calls and as the CLI's options: --base-url and
    --token, or a profile of the CLI (--workspace names it, else the active one), read where
    the CLI keeps them: $WMILL_CONFIG_DIR or the user's config folder, then
    windmill/remotes.ndjson (windmill-cli 1.819 getConfigDirPath, getActiveWorkspace). The
    CLI is always given --workspace: without it, in a git clone, it advises `wmill init`."""
    if args.base_url:
        token = args.token or os.environ.get("WM_TOKEN")
        if not (args.workspace and token):
            raise BadInput("--base-url needs --workspace and --token (or WM_TOKEN)")
        if not args.base_url.startswith(("http://", "https://")):
            raise BadInput("--base-url must start with https:// (or http://)")
        options = ["--base-url", args.base_url, "--workspace", args.workspace, "--token", token]
        return Target(args.base_url, args.workspace, token), options
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
        try:
            profile = json.loads(line) if len(line) > 2 else {}
            if profile.get("name") == name:
                target = Target(profile["remote"], profile["workspaceId"], profile["token"])
                return target, ["--workspace", name]
        except (ValueError, KeyError, AttributeError):
            raise BadInput(f"{store / 'remotes.ndjson'} is not the CLI's profile list") from None
    if not name:
        raise BadInput(
            "no workspace given and no active CLI profile: `scripts/wmill workspace add "
            "<name> <workspace id> <url> --token <token>` once, or pass --base-url, "
            "--workspace and --token"
        )
    raise BadInput(
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
            raise BadInput(
                "needs npm (it comes with Node.js) for windmill-cli (https://nodejs.org)"
            )
        print("deploy: installing the pinned windmill-cli (npm ci --prefix tests/windmill)")
        done = subprocess.run(
            [npm, "ci", "--prefix", str(PINNED_CLI.parents[2]), "--no-audit", "--no-fund",
             "--loglevel=error"],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if done.returncode != 0 or not PINNED_CLI.exists():
            said = _last_line(re.sub(r".*complete log of this run.*", "", done.stderr))
            raise DeployFailed(
                f"`npm ci --prefix tests/windmill` failed: {said} (npm's registry must be "
                "reachable; run it again, or see npm's log it names)"
            )
    return str(PINNED_CLI)


def check_metadata(node: str) -> None:
    """The .script.yaml files are what Windmill makes of the code: stale, the form and the
    preprocessor flag would be wrong. Exit 1 is stale, exit 2 Windmill's packages missing."""
    done = subprocess.run(
        [node, str(ROOT / "scripts" / "generate_metadata.mjs"), "--check"],
        capture_output=True,
        text=True,
    )
    if done.returncode == 1 and "stale Windmill metadata" in done.stdout:
        raise BadInput(
            "the scripts' Windmill metadata is stale: run "
            "`node scripts/generate_metadata.mjs` and commit the result"
        )
    if done.returncode != 0:
        # A crash: Node prints the stack, then its version; the error line says what.
        errors = [line for line in done.stderr.splitlines() if re.match(r"\w*Error\b", line)]
        said = errors[0] if errors else _last_line(done.stderr + done.stdout)
        raise BadInput(f"checking the scripts' metadata failed: {said}")


def get_json(cli: str, options: list[str], kind: str, name: str) -> dict | None:
    """The remote item, or None when the workspace has none; any other answer stops here."""
    done = subprocess.run(
        [cli, kind, "get", name, "--json", *options],
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


def run(cli: str, options: list[str], *command: str, capture: bool = True) -> None:
    done = subprocess.run(
        [cli, *command, *options],
        capture_output=capture,
        text=True,
        env=_cli_env(),
    )
    if done.returncode != 0:
        output = ANSI.sub("", (done.stdout or "") + (done.stderr or ""))
        raise DeployFailed(f"`wmill {' '.join(command)}` failed: {_last_line(output)}")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _cli_env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1"}


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


if __name__ == "__main__":
    sys.exit(main())
