"""Run the webhook handler locally on an example event, as Windmill would.

A dry run unless --live: it validates the event, loads the configuration and prints the calls
it would make, calling nothing. With --live it writes to the services in
scripts/credentials.local.json, and says which hosts first. Resources come from a
WM_MOCKED_API_FILE built here (the example routing and those credentials). The result is the
only thing on stdout, as JSON; the job's log lines go to stderr.

    python scripts/run_local.py [EVENT_JSON] [--live] [--credentials FILE] [--routing FILE]
"""

import argparse
import json
import sys
from typing import Any
from urllib.parse import urlsplit

from local_windmill import (
    CREDENTIALS,
    EXAMPLES,
    RESOURCE_MODELS,
    ROUTING,
    SetupProblem,
    given_path,
    mocked_workspace,
    read_credentials,
    read_json,
    read_routing,
)

# Placeholders so that the configuration loads for a dry run, which calls nothing.
UNSET = {
    "f/marketing/twenty": {"base_url": "https://twenty.invalid", "api_key": "unset"},
    "f/marketing/mautic": {
        "base_url": "https://mautic.invalid",
        "username": "unset",
        "password": "unset",
    },
}
USAGE_ERROR = 2  # bad input: a file, a flag or the event itself


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("event", nargs="?", default=str(EXAMPLES / "user_registered.json"))
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--live", action="store_true", help="write to the services for real")
    run.add_argument("--dry-run", action="store_true", help="plan only (the default)")
    parser.add_argument("--credentials", default=str(CREDENTIALS))
    parser.add_argument("--routing", default=str(ROUTING))
    args = parser.parse_args()

    credentials = given_path(args.credentials)
    try:
        body = read_json(given_path(args.event), "event file")
        resources = read_routing(given_path(args.routing))
        if args.live and not credentials.exists():
            raise SetupProblem(
                f"--live needs credentials at {credentials}: copy "
                "scripts/credentials.example.json there and fill it in"
            )
        resources |= read_credentials(credentials) if credentials.exists() else UNSET
    except SetupProblem as problem:
        print(f"run-example: {problem}", file=sys.stderr)
        return USAGE_ERROR
    if args.live:
        print(f"run-example: live run, writing to {', '.join(hosts(resources))}", file=sys.stderr)
    else:
        print("run-example: dry run, nothing is sent (--live to run for real)", file=sys.stderr)

    with mocked_workspace(resources):
        from f.marketing.handle_user_event import main as handle
        from f.marketing.handle_user_event import preprocessor
        from f.marketing.lib.errors import InvalidEvent, MarketingError

        try:
            # As a webhook with ?raw=true delivers it: the preprocessor takes the exact body.
            raw = json.dumps(body)
            event = {"kind": "webhook", "body": body, "raw_string": raw}
            result = handle(**preprocessor(event), dry_run=not args.live)
        except InvalidEvent as exc:
            print(f"run-example: the event file does not fit the contract: {exc}", file=sys.stderr)
            return USAGE_ERROR
        except MarketingError as exc:
            print(f"run-example: the job failed: {_one_line(exc)}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def hosts(resources: dict[str, Any]) -> list[str]:
    """Where a live run writes: each service's host, never a full URL (a Slack webhook's path
    is its secret)."""
    found = []
    for path in ("f/marketing/twenty", "f/marketing/mautic", "f/marketing/slack"):
        if path in resources:
            settings = RESOURCE_MODELS[path].model_validate(resources[path])
            urls = ("base_url", "webhook_url", "api_base_url")
            url = next(u for u in (getattr(settings, k, None) for k in urls) if u)
            found.append(f"{path.rsplit('/', 1)[1]} at {urlsplit(url).hostname}")
    return found


def _one_line(exc: Exception) -> str:
    """A job's message may list done and not-done steps on several lines: one line here."""
    return " / ".join(line.strip() for line in str(exc).splitlines() if line.strip())


if __name__ == "__main__":
    sys.exit(main())
