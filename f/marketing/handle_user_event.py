# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
"""Handle one SaaS user lifecycle event: Twenty CRM, then Mautic, then Slack.

The SaaS posts the event body to this script's webhook with `?raw=true`; a person can run it
from the form. Resources are always the workspace's f/marketing/{twenty,mautic,slack,routing}:
no argument a caller sets decides which hosts the job talks to.
"""

import json
from datetime import UTC, datetime
from typing import Any

from f.marketing.lib.contract import (
    BODY_FIELDS,
    MODELS,
    cut_fields,
    event_key,
    fields_of,
    parse_event,
)
from f.marketing.lib.delivery_failures import delivered
from f.marketing.lib.delivery_job import as_payload
from f.marketing.lib.errors import InvalidEvent
from f.marketing.lib.event_job import EventJob
from f.marketing.lib.job_log import log_to_stdout
from f.marketing.lib.later_attempts import Later, NextRun
from f.marketing.lib.settings import load_settings
from f.marketing.lib.slack_message import matching_rules
from f.marketing.lib.windmill_api import job_workspace

SCRIPT_PATH = "f/marketing/handle_user_event"
NO_RAW_BODY = (
    "Windmill passed no raw body: the webhook URL needs ?raw=true (the event is read from its "
    "exact bytes; Windmill rewrites $var:/$res: strings in a parsed body)"
)


def preprocessor(event: dict) -> dict:
    """Webhook calls: hand `main` the exact body Windmill received, nothing else.

    Only `raw_string` (`?raw=true`) is read: before any code runs, Windmill's worker rewrites
    strings starting with `$var:`, `$res:` or `$` plus a reserved variable's name in the
    parsed `body` (worker common.rs, transform_json), so a name such as `$WM_TOKEN` would
    arrive as a secret; a JSON text starting with `{` is never rewritten. Nothing here can
    fail (a failed preprocessor keeps the whole trigger event, token included, as the job's
    arguments): `main` refuses what is wrong. The body cannot turn on a dry run either.
    """
    raw = event.get("raw_string") if isinstance(event, dict) else None
    return {"payload": raw if isinstance(raw, str) else "", "from_webhook": True}


def main(
    payload: str,
    dry_run: bool = False,
    from_webhook: bool = False,
    failed: str = "",
    replay_of: str = "",
) -> dict:
    """Upsert the person in Twenty and the contact in Mautic, then notify Slack by rule.

    The event comes as JSON text, never as separate fields: Windmill rewrites `$var:`/`$res:`
    strings in a job's arguments before any code runs, with the rights of the job's owner, and
    anyone who may run this script (a webhook token's holder, skipping the preprocessor) could
    otherwise have a secret written into Twenty, Mautic and Slack, or shown in a dry run's
    plan. A JSON text is never rewritten.

    Args:
        payload: The event as JSON, e.g. {"event": "user.registered", "email":
            "jane@acme.com", "name": "Jane Doe", "plan": "pro", "source": "ads",
            "marketingConsent": true, "timestamp": "2026-11-26T10:00:00Z"} (the webhook's
            exact body; scripts/examples has one per event).
        dry_run: Validate and list the calls this event would make, without making any.
        from_webhook: Set by the webhook (its preprocessor). Leave it off.
        failed: Set when a webhook delivery failed: this job then fails in its place with the
            delivery's message (f/marketing/lib/delivery_failures.py). Leave it empty.
        replay_of: Set by f/marketing/replay: the failed job this run replays, so that its
            later attempts get job ids of their own. Leave it empty.
    """
    log_to_stdout()
    return delivered(
        SCRIPT_PATH,
        [],
        lambda: _handle(_fields(payload, from_webhook), dry_run, replay_of),
        from_webhook=from_webhook,
        failed=failed,
    )


def _handle(given: dict[str, Any], dry_run: bool, replay_of: str) -> dict:
    # A body may send "" for what it does not know: it means "not given", as null does.
    given = {key: None if value == "" else value for key, value in given.items()}
    notes = []
    if given.get("timestamp") is None:
        given["timestamp"] = datetime.now(UTC).isoformat()
        notes.append("timestamp not given: used the job's start time")
    kind = given.get("event")
    body = given
    if isinstance(kind, str) and kind in MODELS:
        body = {key: given.get(key) for key in fields_of(kind)}
    parsed = parse_event(body)
    notes += cut_fields(body)
    with job_workspace() as resources:
        settings = load_settings(
            reader=resources.get,
            slack_wanted=lambda routing: bool(matching_rules(parsed, routing.slack_rules)),
        )
        # The next attempt carries the event as JSON text, which Windmill never rewrites.
        args = as_payload(parsed.body()) | ({"replay_of": replay_of} if replay_of else {})
        next_run = NextRun(SCRIPT_PATH, args, skip_preprocessor=True)
        later = Later(
            event_key(parsed),
            settings.routing.retries,
            resources,
            next_run,
            replay_of,
            rate_limits=settings.routing.rate_limits,
        )
        return EventJob(parsed, settings, later, notes).handle(dry_run)


def _fields(payload: Any, from_webhook: bool) -> dict[str, Any]:
    """The body's fields, from the payload's JSON text (never echoing what it holds)."""
    if from_webhook and not payload:
        raise InvalidEvent(None, [f"body: {NO_RAW_BODY}"])
    try:
        body = json.loads(payload) if isinstance(payload, str) else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidEvent(None, ["payload: must be a JSON object with the event's fields"])
    return {key: body.get(key) for key in BODY_FIELDS}
