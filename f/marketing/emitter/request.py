"""One delivery: POST one event to the Windmill webhook, with the event's id as the job id and
`raw=true`, so that the handler reads the body's exact bytes: without it Windmill hands over
only the parsed body, in which its worker rewrites `$var:`/`$res:` strings before any code
runs, and the handler refuses the delivery."""

import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx

from f.marketing.lib.contract import Event
from f.marketing.lib.errors import ServiceError
from f.marketing.lib.service_http import ServiceHttp

log = logging.getLogger("f.marketing.emitter")

# Windmill refuses a second job with an id it has: 400 "Job with id <id> already exists", or,
# when two pushes race, 400 "... duplicate key value violates unique constraint"
# (windmill-queue push_inner; windmill-common error.rs).
_ALREADY_QUEUED = re.compile(r"duplicate key|already exists", re.IGNORECASE)


@dataclass(frozen=True)
class Delivery:
    """How one event fared: delivered (with Windmill's job id) or not, and why."""

    event_id: str
    delivered: bool
    job_id: str | None = None
    reason: str = ""


def deliver(
    http: ServiceHttp, path: str, query: dict[str, str], event_id: str, event: Event, token: str
) -> Delivery:
    """Post the event, retrying as `http`'s policy says. Never raises for a failed delivery."""
    try:
        response: httpx.Response = http.request(
            "POST",
            path,
            action=f"deliver {event.event}",
            params={**query, "raw": "true", "job_id": event_id},
            json=event.body(),
        )
    except (ServiceError, httpx.HTTPError) as exc:
        if isinstance(exc, ServiceError) and exc.status and _ALREADY_QUEUED.search(exc.detail):
            # An earlier attempt landed and only its answer was lost: the job exists.
            return Delivery(event_id, True, job_id=event_id)
        reason = _redact(str(exc), token) if isinstance(exc, ServiceError) else type(exc).__name__
        log.error("event %s (%s) not delivered: %s", event_id, event.event, reason)
        return Delivery(event_id, False, reason=reason)
    return Delivery(event_id, True, job_id=_job_id(response))


def _job_id(response: httpx.Response) -> Any:
    return response.text.strip().strip('"') or None


def _redact(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
