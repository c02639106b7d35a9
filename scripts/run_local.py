"""Run the webhook handler locally on an example event, as Windmill would.

Resources come from a WM_MOCKED_API_FILE built here: the example routing, plus the credentials
in scripts/credentials.local.json when that file exists. Without credentials the run is a dry
run: it validates the event, loads the configuration and prints the calls it would make.

    python scripts/run_local.py [EVENT_JSON] [--dry-run] [--credentials FILE]
"""

import argparse
import json
import sys
from pathlib import Path

from local_windmill import (
    CREDENTIALS,
    EXAMPLES,
    ROUTING,
    SetupProblem,
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("event", nargs="?", default=str(EXAMPLES / "user_registered.json"))
    parser.add_argument("--dry-run", action="store_true", help="plan only, even with credentials")
    parser.add_argument("--credentials", default=str(CREDENTIALS))
    parser.add_argument("--routing", default=str(ROUTING))
    args = parser.parse_args()

    credentials = Path(args.credentials)
    try:
        body = read_json(Path(args.event), "event file")
        resources = read_routing(Path(args.routing))
        resources |= read_credentials(credentials) if credentials.exists() else UNSET
    except SetupProblem as problem:
        print(f"run-example: {problem}", file=sys.stderr)
        return 2
    real = credentials.exists() and not args.dry_run
    if not credentials.exists():
        print(f"No {credentials.name}: dry run (copy credentials.example.json to run for real)")

    with mocked_workspace(resources):
        from f.marketing.handle_user_event import main as handle
        from f.marketing.handle_user_event import preprocessor
        from f.marketing.lib.errors import MarketingError

        try:
            # As a webhook with ?raw=true delivers it: the preprocessor takes the exact body.
            raw = json.dumps(body)
            event = {"kind": "webhook", "body": body, "raw_string": raw}
            result = handle(**preprocessor(event), dry_run=not real)
        except MarketingError as exc:
            print(f"Job failed: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
