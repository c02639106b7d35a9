"""Later attempts of an event whose services failed for a while: queued, never slept through.

Windmill's open-source edition has no retry setting for a script, but a job can queue a run
of the same script to start later, which holds no worker while it waits. Each later attempt
gets a job id derived from the event's key and the attempt number, so:
- one failed attempt queues exactly one next attempt, even when the job is re-run or
  Windmill's answer to the queueing is lost (Windmill refuses a second job with that id);
- a job knows which attempt it is from its own id, so nothing in a webhook body can set it.
The queued job has no parent, so the last attempt's failure reaches the workspace error
handler, which a child job's never does.
"""

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from f.marketing.config import Retries

# Fixed, so that every worker derives the same ids (any uuid would do; this one is ours).
ATTEMPTS = uuid.UUID("6f5b1a52-3f7e-4c1d-9a61-2b8e51c0d7a4")


def attempt_job_id(key: str, attempt: int) -> str:
    return str(uuid.uuid5(ATTEMPTS, f"{key}:{attempt}"))


def attempt_of(key: str, job_id: str, retries: Retries) -> int:
    """Which attempt of the event this job is: 1 unless it is a job this scheme queued."""
    for attempt in range(2, retries.attempts + 1):
        if job_id == attempt_job_id(key, attempt):
            return attempt
    return 1


@dataclass(frozen=True)
class NextAttempt:
    attempt: int
    delay: int  # seconds from now
    job_id: str
    at: datetime


def next_attempt(
    key: str,
    attempt: int,
    retries: Retries,
    retry_after: float | None = None,
    *,
    jitter: Callable[[], float] = random.random,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> NextAttempt | None:
    """When to try again after a failed `attempt`, or None after the last one.

    The schedule's delay, spread by ± `retries.jitter` so that a burst that failed together
    does not come back together, and never sooner than the service asked (Retry-After).
    """
    if attempt >= retries.attempts:
        return None
    base = retries.delays[attempt - 1]
    delay = base * (1 + retries.jitter * (2 * jitter() - 1))
    delay = max(delay, retry_after or 0.0)
    seconds = max(1, round(delay))
    return NextAttempt(
        attempt + 1, seconds, attempt_job_id(key, attempt + 1), now() + timedelta(seconds=seconds)
    )
