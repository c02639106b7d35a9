"""Run f/marketing/setup locally: check Twenty, Mautic and Slack against the routing, and with
--apply add what is missing, exactly as the Windmill script does.

Credentials come from scripts/credentials.local.json (see credentials.example.json), the
routing from scripts/examples/routing.resource.json unless --routing names another file.
Windmill's own part (who may write the folder) is checked only when run in Windmill.

    python scripts/setup_local.py [--apply] [--test-message] [--credentials FILE] [--routing FILE]
"""

import argparse
import json
import sys
from pathlib import Path

from local_windmill import (
    CREDENTIALS,
    ROUTING,
    SetupProblem,
    mocked_workspace,
    read_credentials,
    read_routing,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apply", action="store_true", help="create what is missing")
    parser.add_argument("--test-message", action="store_true", help="post a test to Slack")
    parser.add_argument("--credentials", default=str(CREDENTIALS))
    parser.add_argument("--routing", default=str(ROUTING))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    credentials = Path(args.credentials)
    try:
        if not credentials.exists():
            raise SetupProblem(
                f"no credentials at {credentials}: copy scripts/credentials.example.json there "
                f"and fill it in"
            )
        resources = read_routing(Path(args.routing)) | read_credentials(credentials)
    except SetupProblem as problem:
        print(f"setup: {problem}", file=sys.stderr)
        return 2

    with mocked_workspace(resources):
        from f.marketing.lib.errors import SetupIncomplete
        from f.marketing.setup import main as setup

        try:
            result = setup(apply=args.apply, send_test_message=args.test_message)
        except SetupIncomplete as exc:
            print(f"Set-up incomplete: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(f"Ready for events: {result['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
