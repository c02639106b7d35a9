"""Send one lifecycle event to the Windmill webhook now and print the job id Windmill returns.

For smoke tests and manual replays. The destination comes from WINDMILL_WEBHOOK_URL and
WINDMILL_API_TOKEN (never from flags, so the token stays out of shell history). Delivery is
synchronous, with the emitter's retries; the exit status is 0 only when Windmill took the job.

    python scripts/send_event.py scripts/examples/user_registered.json
    python scripts/send_event.py --event user.churned --email jane@acme.com --reason "price"
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from f.marketing.emitter import Emitter

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
        return json.loads(Path(args.file).read_text(encoding="utf-8"))
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

    delivery = Emitter(sync=True).deliver(body_from(args))
    if not delivery.delivered:
        print(f"not sent: {delivery.reason}", file=sys.stderr)
        return 1
    print(delivery.job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
