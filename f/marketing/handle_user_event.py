# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
"""Handle one SaaS user lifecycle event: Twenty CRM, then Mautic, then Slack.

The SaaS posts the event body to this script's webhook; a person can run it from the form.
Workspace are read from f/marketing/{twenty,mautic,slack,routing} unless picked in the form.
"""

from datetime import UTC, datetime
from typing import Literal

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
from f.marketing.resources import c_marketing_routing, c_mautic, c_slack_notify, c_twenty
from f.marketing.windmill_api import job_workspace

SCRIPT_PATH = "f/marketing/handle_user_event"


def preprocessor(event: dict) -> dict:
    """Webhook and route calls: keep the event's own fields and drop everything else.

    Without this, a body could set `dry_run` or carry its own `slack`, `mautic`... resource and
    post to another workspace. Manual runs from the form skip it and keep those inputs.
    """
    body = event.get("body") if isinstance(event, dict) else None
    if not isinstance(body, dict):
        raise InvalidEvent(None, ["body: must be a JSON object with the event's fields"])
    return {key: body.get(key) for key in BODY_FIELDS}


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
    twenty: c_twenty | None = None,
    mautic: c_mautic | None = None,
    slack: c_slack_notify | None = None,
    routing: c_marketing_routing | None = None,
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
        twenty: Leave empty to use f/marketing/twenty.
        mautic: Leave empty to use f/marketing/mautic.
        slack: Leave empty to use f/marketing/slack (no resource there: no Slack messages).
        routing: Leave empty to use f/marketing/routing.
    """
    log_to_stdout()
    given = {
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
    # The form sends untouched optional text fields as "", a webhook may too: both mean "not given".
    given = {key: None if value == "" else value for key, value in given.items()}
    notes = []
    if given["timestamp"] is None:
        given["timestamp"] = datetime.now(UTC).isoformat()
        notes.append("timestamp not given: used the job's start time")
    known = isinstance(event, str) and event in MODELS
    body = {key: given[key] for key in fields_of(event)} if known else given
    parsed = parse_event(body)
    notes += cut_fields(body)
    resources = job_workspace()
    try:
        settings = load_settings(twenty, mautic, slack, routing, reader=resources.get)
        next_run = NextRun(SCRIPT_PATH, parsed.body())
        later = Later(event_key(parsed), settings.routing.retries, resources, next_run)
        return EventJob(parsed, settings, later, notes).handle(dry_run)
    finally:
        resources.close()
