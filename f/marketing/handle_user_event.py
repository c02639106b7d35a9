# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
"""Handle one SaaS user lifecycle event: Twenty CRM, then Mautic, then Slack.

The SaaS posts the event body to this script's webhook; a person can run it from the form.
Workspace are read from f/marketing/{twenty,mautic,slack,routing} unless picked in the form.
"""

from datetime import UTC, datetime
from typing import Literal

from f.marketing.config import Retries, Settings, load_settings
from f.marketing.contract import (
    BODY_FIELDS,
    MODELS,
    Event,
    cut_fields,
    event_key,
    fields_of,
    parse_event,
)
from f.marketing.delivery import Attempt, attempt_of, next_attempt
from f.marketing.errors import InvalidEvent, JobFailed, MarketingError
from f.marketing.job_log import log, log_to_stdout
from f.marketing.resources import c_marketing_routing, c_mautic, c_slack_notify, c_twenty
from f.marketing.windmill_api import Workspace, current_job_id, job_workspace
from f.marketing.workflow import Context, run
from f.marketing.workflow import plan as plan_steps

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
        return _handle(parsed, notes, dry_run, settings, resources)
    finally:
        resources.close()


def _handle(
    parsed: Event, notes: list[str], dry_run: bool, settings: Settings, resources: Workspace
) -> dict:
    steps = plan_steps(
        parsed,
        settings.routing,
        slack_enabled=settings.slack is not None,
        slack_problem=settings.slack_problem,
    )

    if dry_run:
        log.info("%s: dry run, %d steps planned, no call made", parsed.event, len(steps))
        return {
            "event": parsed.event,
            "dry_run": True,
            "would_call": [step.describe() for step in steps],
            "notes": notes,
            "wm_labels": [parsed.event, "dry-run"],
        }

    key = event_key(parsed)
    retries = settings.routing.retries
    attempt = attempt_of(key, current_job_id(), retries)
    try:
        with Context.connect(settings, resources) as ctx:
            results = run(steps, ctx, parsed.event)
    except JobFailed as failed:
        if not failed.transient:
            raise
        return _try_later(parsed, key, attempt, failed, resources, retries, notes)

    labels = [parsed.event]
    for result in results:
        if result["status"] in {"failed", "uncertain"}:
            notes.append(f"{result['service']} {result['action']}: {result['detail']}")
            labels.append(f"{result['service']}-{result['status']}")
    notes += ctx.notes
    return {
        "event": parsed.event,
        "ok": True,
        "attempt": attempt.number,
        "steps": results,
        "notes": notes,
        "wm_labels": labels,
    }


def _try_later(
    parsed: Event,
    key: str,
    attempt: Attempt,
    failed: JobFailed,
    resources: Workspace,
    retries: Retries,
    notes: list[str],
) -> dict:
    """Queue the next attempt and end well; after the last attempt, fail for the error handler."""
    upcoming = next_attempt(
        key, attempt, retries, retry_after=failed.retry_after, rate_limited=failed.rate_limited
    )
    if upcoming is None:
        raise JobFailed(
            f"{failed}\nGave up: this was attempt {attempt.number} of {retries.attempts}; "
            f"replay it with f/marketing/replay once the cause is fixed.",
            failed.summary,
        ) from None
    next_job = upcoming.job_id
    try:
        if resources.job_exists(upcoming.sibling_job_id):  # a re-run that failed another way
            queued, next_job = False, upcoming.sibling_job_id
        else:
            queued = resources.queue_job(
                SCRIPT_PATH, parsed.body(), delay=upcoming.delay, job_id=next_job
            )
    except MarketingError as exc:
        raise JobFailed(
            f"{failed}\nThe next attempt could not be queued ({exc}): replay this job.",
            failed.summary,
        ) from None
    when = upcoming.at.isoformat(timespec="seconds")
    log.info(
        "%s: attempt %d of %d %s; %s for %s",
        parsed.event, attempt.number, retries.attempts,
        "was rate limited" if failed.rate_limited else "failed for a while",
        "next attempt queued" if queued else "next attempt was already queued", when,
    )  # fmt: skip
    return {
        **failed.summary,
        "status": "retry-scheduled",
        "attempt": attempt.number,
        "reason": str(failed).splitlines()[0],
        "next_attempt": upcoming.attempt.number,
        "next_attempt_at": when,
        "next_job_id": next_job,
        "notes": notes,
        "wm_labels": [parsed.event, "retry-scheduled"],
    }
