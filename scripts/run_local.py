"""Run the webhook handler locally on an example event, as Windmill would.

Resources come from a WM_MOCKED_API_FILE built here: the example routing, plus the credentials
in scripts/credentials.local.json when that file exists. Without credentials the run is a dry
run: it validates the event, loads the configuration and prints the calls it would make.

    python scripts/run_local.py [EVENT_JSON] [--dry-run] [--credentials FILE]
"""

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "scripts" / "examples"
CREDENTIALS = ROOT / "scripts" / "credentials.local.json"
RESOURCE_PATHS = ("f/marketing/twenty", "f/marketing/mautic", "f/marketing/slack")
PLACEHOLDER = re.compile(r"<[^<>]+>|\.example\.com")  # as in credentials.example.json


class SetupProblem(Exception):
    """A local file that cannot be used; the message is the one line the user sees."""


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SetupProblem(f"no {what} at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupProblem(f"cannot read the {what} {path}: {exc.__class__.__name__}") from None
    except ValueError as exc:
        raise SetupProblem(f"the {what} {path} is not valid JSON ({exc})") from None


def read_credentials(path: Path) -> dict[str, Any]:
    """The credentials file: resources by path, with every example placeholder replaced."""
    value = read_json(path, "credentials file")
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise SetupProblem(
            f"{path} must be a JSON object of resources by path, like credentials.example.json"
        )
    unknown = sorted(set(value) - set(RESOURCE_PATHS))
    if unknown:
        raise SetupProblem(
            f"{path}: unknown resource {unknown[0]}; use {', '.join(RESOURCE_PATHS)}"
        )
    for resource, fields in value.items():
        for name, field in fields.items():
            if isinstance(field, str) and PLACEHOLDER.search(field):
                raise SetupProblem(
                    f"{path}: {resource} {name} still holds the example's placeholder; fill it in"
                )
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("event", nargs="?", default=str(EXAMPLES / "user_registered.json"))
    parser.add_argument("--dry-run", action="store_true", help="plan only, even with credentials")
    parser.add_argument("--credentials", default=str(CREDENTIALS))
    parser.add_argument("--routing", default=str(EXAMPLES / "routing.resource.json"))
    args = parser.parse_args()

    try:
        body = read_json(Path(args.event), "event file")
        resources = {"f/marketing/routing": read_json(Path(args.routing), "routing")["value"]}
        credentials = Path(args.credentials)
        real = credentials.exists() and not args.dry_run
        if credentials.exists():
            resources |= read_credentials(credentials)
    except SetupProblem as problem:
        print(f"run-example: {problem}", file=sys.stderr)
        return 2
    if not credentials.exists():
        # Placeholders so that the configuration loads; a dry run calls nothing.
        resources |= {
            "f/marketing/twenty": {"base_url": "https://twenty.invalid", "api_key": "unset"},
            "f/marketing/mautic": {
                "base_url": "https://mautic.invalid",
                "username": "unset",
                "password": "unset",
            },
        }
        print(f"No {credentials.name}: dry run (copy credentials.example.json to run for real)")

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as mock:
        json.dump({"resources": resources, "variables": {}}, mock)
    os.environ["WM_MOCKED_API_FILE"] = mock.name
    os.environ.setdefault("WM_WORKSPACE", "local")
    sys.path.insert(0, str(ROOT))
    try:
        from f.marketing.errors import MarketingError
        from f.marketing.handle_user_event import main as handle
        from f.marketing.handle_user_event import preprocessor

        try:
            # As a webhook delivers it: the preprocessor keeps the event's fields.
            args = preprocessor({"kind": "webhook", "body": body})
            result = handle(**args, dry_run=not real)
        except MarketingError as exc:
            print(f"Job failed: {exc}", file=sys.stderr)
            return 1
    finally:
        os.unlink(mock.name)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
