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
from typing import Any, Literal

from f.marketing.config import load_settings
from f.marketing.contract import (
    BODY_FIELDS,
    MODELS,
    cut_fields,
    event_key,
    fields_of,
    parse_event,
)
from f.marketing.errors import InvalidEvent
from f.marketing.event_job import EventJob, Later, NextRun
from f.marketing.job_log import log_to_stdout
from f.marketing.refusal import fail_as_recorded, record
from f.marketing.windmill_api import job_workspace

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
    event: Literal["user.registered", "user.upgraded", "user.churned"],
    email: str,
    name: str | None = None,
    plan: str | None = None,
    source: str | None = None,
    marketingConsent: bool | None = None,
    previousPlan: str | None = None,
    newPlan: str | None = None,
    reason: str | None = None,
    timestamp: str | None = None,
    dry_run: bool = False,
    payload: str = "",
    from_webhook: bool = False,
    failed: str = "",
) -> dict:
    """Upsert the person in Twenty and the contact in Mautic, then notify Slack by rule.

    Args:
        event: The lifecycle event; it decides which of the fields below are read.
        email: The user's email address.
        name: user.registered: full name (optional).
        plan: user.registered: the plan signed up for.
        source: user.registered: where the signup came from.
        marketingConsent: user.registered: whether the user agreed to marketing email.
        previousPlan: user.upgraded: the plan before.
        newPlan: user.upgraded: the plan after.
        reason: user.churned: why the user left (optional).
        timestamp: ISO 8601 time of the event; empty means now.
        dry_run: Validate and list the calls this event would make, without making any.
        payload: The event as JSON text instead of the fields above: the webhook's exact body,
            or what a later attempt or a replay carries. Leave it empty in the form.
        from_webhook: Set by the webhook: the event must then come as payload. Leave it off.
        failed: Set when a webhook delivery failed: this job then fails with that message in
            its place (f/marketing/refusal.py). Leave it empty.
    """
    log_to_stdout()
    if failed:
        fail_as_recorded(failed)
    fields = {
        "event": event,
        "email": email,
        "name": name,
        "plan": plan,
        "source": source,
        "marketingConsent": marketingConsent,
        "previousPlan": previousPlan,
        "newPlan": newPlan,
        "reason": reason,
        "timestamp": timestamp,
    }
    if not from_webhook:
        return _handle(_from_payload(payload, fields) if payload else fields, dry_run)
    try:
        if not payload:
            raise InvalidEvent(None, [f"body: {NO_RAW_BODY}"])
        return _handle(_from_payload(payload, fields), dry_run)
    except Exception as exc:  # a delivery's job must not fail: it would keep the token
        return record(SCRIPT_PATH, {"payload": payload}, exc, [])


def _handle(given: dict[str, Any], dry_run: bool) -> dict:
    # The form sends untouched optional text fields as "", a webhook may too: both mean "not given".
    given = {key: None if value == "" else value for key, value in given.items()}
    notes = []
    if given.get("timestamp") is None:
        given["timestamp"] = datetime.now(UTC).isoformat()
        notes.append("timestamp not given: used the job's start time")
    kind = given.get("event")
    known = isinstance(kind, str) and kind in MODELS
    body = {key: given.get(key) for key in fields_of(kind)} if known else given
    parsed = parse_event(body)
    notes += cut_fields(body)
    resources = job_workspace()
    try:
        settings = load_settings(reader=resources.get)
        # The next attempt carries the event as JSON text, which Windmill never rewrites.
        next_run = NextRun(SCRIPT_PATH, as_payload(parsed.body()), skip_preprocessor=True)
        later = Later(event_key(parsed), settings.routing.retries, resources, next_run)
        return EventJob(parsed, settings, later, notes).handle(dry_run)
    finally:
        resources.close()


def as_payload(body: dict[str, Any]) -> dict[str, str]:
    """The arguments of a job that carries an event (a later attempt, a replay)."""
    return {"payload": json.dumps(body, ensure_ascii=False, separators=(",", ":"))}


def _from_payload(payload: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The body's fields, from the payload's JSON text; the form's fields must be empty."""
    if any(value not in (None, "") for value in fields.values()):
        raise InvalidEvent(None, ["payload: give the event either as payload or as its fields"])
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidEvent(None, ["body: must be a JSON object with the event's fields"])
    return {key: body.get(key) for key in BODY_FIELDS}
