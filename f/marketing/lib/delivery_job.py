"""The Windmill job id of an event's delivery: the same from every sender of one event.

A webhook call names its job (`?job_id=`), and Windmill refuses a second push of an id it has
with 400 "Job with id … already exists", which a sender reads as "an earlier attempt landed".
Job ids are unique across the whole instance (the `v2_job` table's key; windmill-queue
jobs.rs `push`), so the job id is derived from the workspace, the script and the event's id
rather than being the event's id: a staging database copied from production, or a second
workspace on the same instance, sending the same outbox row ids gets jobs of its own instead
of a refusal that reads as success. The TypeScript emitter derives it alike
(f/marketing/emitter/ts/emitter.ts `deliveryJobId`); both are checked against one example.
"""

import json
import re
import uuid
from typing import Any

# Fixed, so that every sender derives the same ids (any uuid would do; this one is ours).
DELIVERIES = uuid.UUID("9d2c4e71-5b8a-4f03-a6e2-7c41d0b9f358")
# What a webhook URL's path must be: `/api/w/<workspace>/jobs/run/p/<script path>`. The
# synchronous routes (`run_wait_result`) would hold the SaaS's request until the job ends.
_WEBHOOK_PATH = re.compile(r"/api/w/(?P<workspace>[\w-]+)/jobs/run/p/(?P<script>[\w/.-]+?)/?")
WEBHOOK_SHAPE = "…/api/w/<workspace>/jobs/run/p/f/marketing/handle_user_event"
# Windmill's refusal of an id it has: checked (400 "Job with id … already exists"), or two
# pushes raced on the table's key (400 "SqlErr: … duplicate key …"). Every sender reads it so.
ALREADY_QUEUED = re.compile(r"duplicate key|already exists", re.IGNORECASE)


def delivery_job_id(workspace: str, script: str, event_id: str) -> str:
    return str(uuid.uuid5(DELIVERIES, f"{workspace}/{script}/{event_id}"))


def webhook_target(path: str) -> tuple[str, str] | None:
    """(workspace, script path) of a webhook URL's path, or None when it is not one."""
    found = _WEBHOOK_PATH.fullmatch(path)
    return (found["workspace"], found["script"]) if found else None


def check_event_id(event_id: str) -> str:
    """The id in canonical form. Only a random (v4) or time-ordered (v7) UUID is taken: an id
    made from something else (a user's id, a counter) could be shared by two events, and the
    second would be refused as already delivered. ValueError names the rule, not the id."""
    try:
        parsed = uuid.UUID(event_id)
    except (TypeError, ValueError, AttributeError):
        raise ValueError("event id must be a UUID") from None
    if parsed.version not in (4, 7) or parsed.variant != uuid.RFC_4122:
        raise ValueError("event id must be a random (v4) or time-ordered (v7) UUID")
    return str(parsed)


def as_payload(body: dict[str, Any]) -> dict[str, str]:
    """The arguments of a job that carries an event without the preprocessor (a later
    attempt, a replay, the outbox sweep's): JSON text, which Windmill's worker never rewrites."""
    return {"payload": json.dumps(body, ensure_ascii=False, separators=(",", ":"))}
