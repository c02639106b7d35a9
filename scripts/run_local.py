"""Run the webhook handler locally on an example event, as Windmill would.

Resources come from a WM_MOCKED_API_FILE built here: the example routing, plus the credentials
in scripts/credentials.local.json when that file exists. Without credentials the run is a dry
run: it validates the event, loads the configuration and prints the calls it would make.

    python scripts/run_local.py [EVENT_JSON] [--dry-run] [--credentials FILE]
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "scripts" / "examples"
CREDENTIALS = ROOT / "scripts" / "credentials.local.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("event", nargs="?", default=str(EXAMPLES / "user_registered.json"))
    parser.add_argument("--dry-run", action="store_true", help="plan only, even with credentials")
    parser.add_argument("--credentials", default=str(CREDENTIALS))
    parser.add_argument("--routing", default=str(EXAMPLES / "routing.resource.json"))
    args = parser.parse_args()

    body = json.loads(Path(args.event).read_text())
    resources = {"f/marketing/routing": json.loads(Path(args.routing).read_text())["value"]}
    credentials = Path(args.credentials)
    real = credentials.exists() and not args.dry_run
    if credentials.exists():
        resources |= json.loads(credentials.read_text())
    else:
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

        try:
            result = handle(**body, dry_run=not real)
        except MarketingError as exc:
            print(f"Job failed: {exc}", file=sys.stderr)
            return 1
    finally:
        os.unlink(mock.name)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
