"""One delivery: POST one event to the Windmill webhook, with a job id derived from the event's
id (f/marketing/lib/delivery_job.py) and `raw=true`, so that the handler reads the body's exact
bytes: without it Windmill hands over only the parsed body, in which its worker rewrites
`$var:`/`$res:` strings before any code runs, and the handler refuses the delivery. The SaaS's
emitter and the outbox sweep (f/marketing/outbox_sweep.py) both deliver through here.

Windmill's answers, read in windmill-common error.rs (every error is plain text, its kind
first) and windmill-api jobs.rs:
- 201 with the job's id as the body is the only success: anything else with a 2xx (a proxy's
  or a login page's 200) is not a queued job. Redirects are not followed.
- 400 "Job with id … already exists", or "… duplicate key value violates unique constraint"
  when two pushes race: an earlier attempt landed, so the event is delivered.
- 400 "SqlErr: …" / "Sql error: …" is the database failing (a pool timeout, a failover), not
  the request: tried again. Any other 400 (bad arguments) is final.
- 401 "Not authorized: …" is a bad token, or a token lookup whose database read failed: tried
  once more, then final.
- 408, 429 and 5xx other than 501 are transient; Retry-After is honoured.
"""

import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx

from f.marketing.lib.delivery_job import (
    ALREADY_QUEUED,
    WEBHOOK_SHAPE,
    as_payload,
    delivery_job_id,
    webhook_target,
)
from f.marketing.lib.errors import ServiceError
from f.marketing.lib.service_http import ServiceHttp

log = logging.getLogger(__name__)

_DATABASE_ERROR = re.compile(r"sql ?err(or)?\b", re.IGNORECASE)


@dataclass(frozen=True)
class Delivery:
    """How one event fared: delivered (with Windmill's job id) or not, and why."""

    event_id: str
    delivered: bool
    job_id: str | None = None
    reason: str = ""
    already_queued: bool = False
    """Windmill had the job already: an earlier attempt, the other sender of an outbox row."""
    transient: bool = False
    """Not delivered for a cause that may pass (Windmill down or busy): worth a later try."""


def deliver(
    http: ServiceHttp,
    path: str,
    query: dict[str, str],
    event_id: str,
    body: dict[str, Any],
    token: str,
    *,
    as_job_arguments: bool = False,
) -> Delivery:
    """Post the body, retrying as `http`'s policy says. Never raises for a failed delivery.

    The body is sent as it is: the handler, not the sender, decides whether it is valid, and
    refuses a bad one in a failed job that names the field. With `as_job_arguments` (the
    sweep, which sends with its job's unscoped token) the job is queued as later attempts
    and replays are: the body as JSON text in `payload`, which Windmill never rewrites, and
    `skip_preprocessor`, so the job keeps no request headers (a webhook job that fails before
    its preprocessor runs keeps them in its arguments, Authorization included). The job id is
    the same either way, so Windmill still refuses the second sender."""
    name = str(body.get("event"))[:40]
    email = body.get("email") if isinstance(body.get("email"), str) else ""
    target = webhook_target(path)
    if target is None:
        reason = f"WINDMILL_WEBHOOK_URL is not a webhook URL ({WEBHOOK_SHAPE})"
        log.error("event %s (%s) not delivered: %s", event_id, name, reason)
        return Delivery(event_id, False, reason=reason)
    job_id = delivery_job_id(*target, event_id)

    def read(response: httpx.Response) -> str:
        if response.status_code != 201 or response.text.strip().strip('"') != job_id:
            raise ValueError("not a queued job")
        return job_id

    params = {**query, "raw": "true", "job_id": job_id}
    sent: dict[str, Any] = body
    if as_job_arguments:
        params = {**query, "skip_preprocessor": "true", "job_id": job_id}
        sent = as_payload(body)
    try:
        http.request(
            "POST",
            path,
            action=f"deliver {name}",
            params=params,
            json=sent,
            read=read,
            also_transient=_transient,
            follow_redirects=False,
        )
    except (ServiceError, httpx.HTTPError) as exc:
        refused = exc.detail if isinstance(exc, ServiceError) and exc.status == 400 else ""
        if ALREADY_QUEUED.search(refused):
            # An earlier attempt landed and only its answer was lost: the job exists.
            return Delivery(event_id, True, job_id=job_id, already_queued=True)
        reason = (
            _redact(str(exc), token, str(email))
            if isinstance(exc, ServiceError)
            else type(exc).__name__
        )
        transient = not isinstance(exc, ServiceError) or exc.transient
        log.error("event %s (%s) not delivered: %s", event_id, name, reason)
        return Delivery(event_id, False, job_id=job_id, reason=reason, transient=transient)
    return Delivery(event_id, True, job_id=job_id)


def _transient(response: httpx.Response, attempt: int) -> bool:
    if response.status_code == 400:
        text = response.text.lstrip()
        return bool(_DATABASE_ERROR.match(text)) and not ALREADY_QUEUED.search(text)
    return response.status_code == 401 and attempt == 1


def windmill_error(response: httpx.Response) -> str:
    """The first line of Windmill's message: the kind and the reason, not the rest of what
    it may echo back."""
    return (response.text.strip().splitlines() or [response.reason_phrase])[0][:200]


def _redact(text: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    return text
