"""Send one lifecycle event to the Windmill webhook now and print the job id Windmill returns.

For smoke tests and manual replays. The destination comes from WINDMILL_WEBHOOK_URL and
WINDMILL_API_TOKEN (never from flags, so the token stays out of shell history). Delivery is
synchronous, with the emitter's retries. Exit status: 0 when Windmill took the job, 1 when it
did not, 2 for bad input (a file, a flag, an event that breaks the contract, no destination),
each failure in one line.

    python scripts/send_event.py scripts/examples/user_registered.json
    python scripts/send_event.py --event user.churned --email jane@acme.com --reason "price"
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from f.marketing.emitter import Emitter
from f.marketing.lib.contract import parse_event
from f.marketing.lib.errors import InvalidEvent

USAGE_ERROR = 2


class BadInput(Exception):
    """What the person typed cannot be sent; the message is the one line they see."""


FLAGS = {
    "email": "email",
    "name": "name",
    "plan": "plan",
    "source": "source",
    "previous_plan": "previousPlan",
    "new_plan": "newPlan",
    "reason": "reason",
    "timestamp": "timestamp",
}
NULLABLE = {"user.registered": ["name"], "user.churned": ["reason"]}


def body_from(args: argparse.Namespace) -> dict:
    if args.file:
        return read_body(Path(args.file).expanduser().absolute())
    body = {"event": args.event}
    body |= {key: getattr(args, flag) for flag, key in FLAGS.items() if getattr(args, flag)}
    if args.consent is not None:
        body["marketingConsent"] = args.consent
    for key in NULLABLE.get(args.event, []):
        body.setdefault(key, None)
    if "timestamp" not in body:
        from datetime import UTC, datetime

        body["timestamp"] = datetime.now(UTC).isoformat()
    return body


def read_body(path: Path) -> dict:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"no event file at {path}") from None
    except IsADirectoryError:
        raise BadInput(f"the event file {path} is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the event file {path}: {exc.__class__.__name__}") from None
    except ValueError as exc:
        raise BadInput(f"the event file {path} is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadInput(f"the event file {path} must hold one event, a JSON object")
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="a JSON file with the event body")
    parser.add_argument("--event", choices=["user.registered", "user.upgraded", "user.churned"])
    for flag in FLAGS:
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag)
    parser.add_argument("--consent", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    if not args.file and not args.event:
        parser.error("give a JSON file or --event")

    try:
        if not (os.environ.get("WINDMILL_WEBHOOK_URL") and os.environ.get("WINDMILL_API_TOKEN")):
            raise BadInput(
                "set WINDMILL_WEBHOOK_URL (the webhook of f/marketing/handle_user_event) and "
                "WINDMILL_API_TOKEN in the environment"
            )
        body = body_from(args)
        parse_event(body)  # refused here, with exit status 2, rather than as "not sent"
    except (BadInput, InvalidEvent) as problem:
        print(f"send_event: not sent: {problem}", file=sys.stderr)
        return USAGE_ERROR
    delivery = Emitter(sync=True).deliver(body)
    if not delivery.delivered:
        print(f"send_event: not sent: {delivery.reason}", file=sys.stderr)
        return 1
    print(delivery.job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
