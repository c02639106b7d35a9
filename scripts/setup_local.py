"""Run f/marketing/setup locally: check Twenty, Mautic and Slack against the routing, and with
--apply add what is missing, exactly as the Windmill script does.

Credentials come from scripts/credentials.local.json (see credentials.example.json), the
routing from scripts/examples/routing.resource.json unless --routing names another file; both
are checked before any call. Windmill's own part (who may write the folder) is checked only
when run in Windmill. Each check is printed once; with --json, stdout is one JSON document
whatever the outcome (log lines go to stderr).

    python scripts/setup_local.py [--apply] [--test-message] [--credentials FILE]
                                  [--routing FILE] [--json]
"""

import argparse
import json
import sys
from typing import Any

from local_windmill import (
    CREDENTIALS,
    ROUTING,
    SetupProblem,
    given_path,
    mocked_workspace,
    read_credentials,
    read_routing,
)

USAGE_ERROR = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apply", action="store_true", help="create what is missing")
    parser.add_argument("--test-message", action="store_true", help="post a test to Slack")
    parser.add_argument("--credentials", default=str(CREDENTIALS))
    parser.add_argument("--routing", default=str(ROUTING))
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    def finish(code: int, line: str, result: dict[str, Any]) -> int:
        if args.json:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        print(line, file=sys.stderr if code or args.json else sys.stdout)
        return code

    credentials = given_path(args.credentials)
    try:
        if not credentials.exists():
            raise SetupProblem(
                f"no credentials at {credentials}: copy scripts/credentials.example.json there "
                f"and fill it in"
            )
        resources = read_routing(given_path(args.routing)) | read_credentials(credentials)
    except SetupProblem as problem:
        return finish(USAGE_ERROR, f"setup: {problem}", {"ok": False, "error": str(problem)})

    # The job logs its report: the output itself, unless the output is JSON.
    with mocked_workspace(resources, logs=sys.stderr if args.json else sys.stdout):
        from f.marketing.lib.errors import MarketingError, SetupIncomplete
        from f.marketing.setup import main as setup

        try:
            result = setup(apply=args.apply, send_test_message=args.test_message)
        except SetupIncomplete as exc:
            # The report above has every check; the message's first line is the verdict.
            verdict = str(exc).splitlines()[0]
            return finish(1, f"setup: set-up incomplete: {verdict}", exc.result)
        except MarketingError as exc:
            return finish(1, f"setup: {exc}", {"ok": False, "error": str(exc)})
    return finish(0, f"Ready for events: {result['summary']}", result)


if __name__ == "__main__":
    sys.exit(main())
