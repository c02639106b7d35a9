# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
"""Replay the lifecycle events that finally failed in a time window, once the cause is fixed.

It lists the failed handle_user_event and stripe_events jobs of Windmill's job history, reads
each one by id (a listing carries neither args nor result), and, when `confirm` is on, queues
each event again as a new job (a first attempt, with the full retry schedule). The new job's
id is derived from the failed job's, so replaying the same window twice queues nothing twice.
Every step is idempotent, so a replayed event that had partly gone through does not act
twice. The event is taken as the job got it: a webhook delivery's exact body (a job that
failed keeps Windmill's trigger event as its arguments), or the JSON text a later attempt
carried, and it is queued as JSON text, which Windmill never rewrites. A Stripe event is
replayed by its id alone: the new job reads it back from Stripe, so even a refused request's
claimed id is safe to replay. Canceled jobs are left alone: someone stopped them.
"""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from f.marketing.lib.contract import BODY_FIELDS
from f.marketing.lib.delivery_job import as_payload
from f.marketing.lib.errors import ConfigError
from f.marketing.lib.job_log import log_to_stdout
from f.marketing.lib.windmill_api import Progress, WindmillApi, job_workspace

HANDLER = "f/marketing/handle_user_event"
STRIPE = "f/marketing/stripe_events"
EDGE = timedelta(seconds=1)
REPLAYS = uuid.UUID("0b7d8f0e-4a39-4f6e-8c1e-5d2a9e7b3c61")
# An event the contract refused fails the same way however often it is replayed.
INVALID = re.compile(r"^Invalid ([\w.]+ ){0,2}event:")


def replay_job_id(failed_job_id: str) -> str:
    return str(uuid.uuid5(REPLAYS, failed_job_id))


def main(since: str = "", until: str = "", confirm: bool = False) -> dict:
    """List the failed events of the window; with confirm, queue each again.

    Args:
        since: Start of the window, ISO 8601 (empty: 24 hours ago).
        until: End of the window, ISO 8601 (empty: now).
        confirm: Queue them. Off: only list what would be queued.
    """
    log = log_to_stdout()
    start, end = _window(since, until)
    workspace = job_workspace()
    if not isinstance(workspace, WindmillApi):
        raise ConfigError("replay reads Windmill's job history: run it in Windmill")
    with workspace:
        failed = []
        # Older servers compare whole seconds, strictly: ask a second wider on each side,
        # then keep what is inside the window (completed_jobs.rs; newer ones are inclusive).
        after, before = (start - EDGE).isoformat(), (end + EDGE).isoformat()
        for script in (HANDLER, STRIPE):
            found = [
                j for j in workspace.failed_jobs(script, after, before) if _within(j, start, end)
            ]
            log.info("%d failed %s jobs from %s to %s", len(found), script, start, end)
            failed += [{**job, "script_path": script} for job in found]
        failed.sort(key=lambda job: str(job.get("created_at")))
        listed: list[dict] = []
        progress = Progress(workspace, len(failed))
        for done, job in enumerate(failed, start=1):
            listed.append(_replay(workspace, job, confirm))
            progress.show(done)
    counts: dict[str, int] = {}
    for item in listed:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return {
        "window": [start.isoformat(), end.isoformat()],
        "confirm": confirm,
        "counts": counts,
        "jobs": listed,
        "wm_labels": ["replay" if confirm else "replay-dry-run"],
    }


def _replay(workspace: WindmillApi, listed: dict, confirm: bool) -> dict:
    script = listed["script_path"]
    item = {"failed_job": listed.get("id"), "script": script, "failed_at": listed.get("created_at")}
    if listed.get("canceled"):
        return {**item, "status": "skipped", "reason": "canceled, not failed"}
    job = workspace.read_job(str(listed["id"]))
    stored = job.get("args")
    args: dict[str, Any] = stored if isinstance(stored, dict) else {}
    text = _event_text(args)
    body, event = _stripe_body(text) if script == STRIPE else _handler_body(text, args)
    error = _first_line(job.get("result"))
    item |= {"event": event, "error": error}
    if INVALID.match(error) or body is None:
        reason = "the event itself is invalid"
        if text is None and (_was_delivery(args) or "failed" in args):
            reason = "delivered without ?raw=true: its exact body was never passed on"
        return {**item, "status": "skipped", "reason": reason}
    replay_id = replay_job_id(str(listed["id"]))
    if not confirm:
        return {**item, "status": "would queue", "replay_job": replay_id}
    # Its own chain of later attempts: the failed chain's job ids stay taken (lib/event_job.py).
    args = {**body, "replay_of": str(listed["id"])}
    queued = workspace.queue_job(script, args, delay=0, job_id=replay_id, skip_preprocessor=True)
    return {**item, "status": "queued" if queued else "already replayed", "replay_job": replay_id}


def _was_delivery(args: dict[str, Any]) -> bool:
    return isinstance(args.get("event"), dict) and args["event"].get("kind") is not None


def _event_text(args: dict[str, Any]) -> str | None:
    """The event as JSON text: a webhook delivery's exact body (the trigger event a failed
    job keeps: windmill-worker stores the preprocessor's output only when the job succeeds),
    or the payload a later attempt, a replay or a preprocessed run carried."""
    if _was_delivery(args):
        raw = args["event"].get("raw_string")
        return raw if isinstance(raw, str) and raw else None
    payload = args.get("payload")
    return payload if isinstance(payload, str) and payload else None


def _handler_body(text: str | None, args: dict[str, Any]) -> tuple[dict | None, str | None]:
    if text is not None:
        try:
            body = json.loads(text)
        except ValueError:
            return None, None
        kind = body.get("event") if isinstance(body, dict) else None
        return ({"payload": text} if isinstance(kind, str) else None), _kind(kind)
    if _was_delivery(args):
        return None, None
    fields = {key: args.get(key) for key in BODY_FIELDS if args.get(key) not in (None, "")}
    kind = fields.get("event")  # a run from the form: its fields, as JSON text now
    return (as_payload(fields) if isinstance(kind, str) else None), _kind(kind)


def _kind(kind: Any) -> str | None:
    return kind if isinstance(kind, str) and re.fullmatch(r"user\.[a-z]+", kind) else None


def _stripe_body(text: str | None) -> tuple[dict | None, str | None]:
    """The event's id, from the raw body Stripe sent or the id a later attempt carried."""
    payload = (text or "").strip()
    try:
        event = json.loads(payload) if payload.startswith("{") else {"id": payload}
    except ValueError:
        return None, None
    event_id = event.get("id") if isinstance(event, dict) else None
    if not isinstance(event_id, str) or not re.fullmatch(r"evt_[A-Za-z0-9]+", event_id):
        return None, None
    kind = event.get("type") if isinstance(event.get("type"), str) else "event"
    return {"payload": event_id}, f"stripe {kind} {event_id}"


def _within(job: dict, start: datetime, end: datetime) -> bool:
    try:
        created = _moment(str(job.get("created_at")), "created_at")
    except ConfigError:
        return True  # a shape we cannot read: listed rather than lost
    return start <= created <= end


def _window(since: str, until: str) -> tuple[datetime, datetime]:
    end = _moment(until, "until") if until else datetime.now(UTC)
    start = _moment(since, "since") if since else end - timedelta(days=1)
    if start >= end:
        raise ConfigError("since must be before until")
    return start, end


def _moment(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{name}: not an ISO 8601 date-time, e.g. 2026-11-26T10:00:00Z") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def _first_line(result: object) -> str:
    error = result.get("error") if isinstance(result, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or "").strip().splitlines()[0][:300] if message else ""
