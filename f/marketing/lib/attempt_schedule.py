"""Later attempts of an event whose services failed for a while: queued, never slept through.

Windmill's open-source edition has no retry setting for a script, but a job can queue a run
of the same script to start later, which holds no worker while it waits. Each later attempt
gets a job id derived from the event's key and its place in the schedule, so:
- one failed attempt queues exactly one next attempt, even when the job is re-run or
  Windmill's answer to the queueing is lost (Windmill refuses a second job with that id);
- a job knows which attempt it is from its own id, so nothing in a webhook body can set it.
The queued job has no parent, so the last attempt's failure reaches the workspace error
handler, which a child job's never does.

Two kinds of "later": an outage (a 5xx, a timeout) moves to the next step of the schedule
(1 min, 5 min, ... 24 h); a rate limit (429) comes back as soon as the service allows, spread
out so that a burst does not return all at once, and does not use up the outage schedule.
"""

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from f.marketing.lib.routing import Retries
from f.marketing.lib.service_http import RetryPolicy

# An event job's calls: a rate limit ends the call at once (with its Retry-After), and the job
# queues its next attempt instead of holding a worker while the limit refills.
QUEUE_ON_RATE_LIMIT = RetryPolicy(wait_on_rate_limit=False)
# Fixed, so that every worker derives the same ids (any uuid would do; this one is ours).
ATTEMPTS = uuid.UUID("6f5b1a52-3f7e-4c1d-9a61-2b8e51c0d7a4")
# Rate-limited returns per step of the schedule; past this a rate limit counts as an outage.
MAX_RATE_LIMITED = 100
# A rate-limited job comes back after Retry-After plus up to this spread, doubling with each
# return (1, 2, 4 ... 30 s), so that the jobs of a burst come back one by one.
SPREAD = 1.0
MAX_SPREAD = 30.0


@dataclass(frozen=True)
class Attempt:
    number: int  # step of the outage schedule, from 1
    rate_limited: int = 0  # returns after a rate limit within this step

    def job_id(self, key: str) -> str:
        suffix = f":{self.rate_limited}" if self.rate_limited else ""
        return str(uuid.uuid5(ATTEMPTS, f"{key}:{self.number}{suffix}"))


FIRST = Attempt(1)


def attempt_job_id(key: str, number: int, rate_limited: int = 0) -> str:
    return Attempt(number, rate_limited).job_id(key)


def attempt_of(key: str, job_id: str, retries: Retries) -> Attempt:
    """Which attempt of the event this job is: the first unless this scheme queued it."""
    try:
        if uuid.UUID(job_id).version != 5:  # not one of ours (the emitter: v4; Windmill: ULIDs)
            return FIRST
    except ValueError:
        return FIRST
    for number in range(1, retries.attempts + 1):
        for returns in range(0 if number > 1 else 1, MAX_RATE_LIMITED + 1):
            candidate = Attempt(number, returns)
            if job_id == candidate.job_id(key):
                return candidate
    return FIRST


@dataclass(frozen=True)
class NextAttempt:
    attempt: Attempt
    delay: int  # seconds from now
    job_id: str
    at: datetime
    # The other way this attempt could have gone on (after a re-run that failed otherwise):
    # if that job exists, this one is not queued.
    sibling_job_id: str


def next_attempt(
    key: str,
    current: Attempt,
    retries: Retries,
    *,
    retry_after: float | None = None,
    rate_limited: bool = False,
    slot_in: float | None = None,
    jitter: Callable[[], float] = random.random,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> NextAttempt | None:
    """When to try again after a failed attempt, or None after the last one. `slot_in`: a
    rate-limited attempt's free slot of the limit, in seconds (lib/rate_slots.py), taken in
    place of Retry-After plus a spread."""
    outage = Attempt(current.number + 1)
    returned = Attempt(current.number, current.rate_limited + 1)
    if rate_limited and returned.rate_limited <= MAX_RATE_LIMITED:
        spread = min(MAX_SPREAD, SPREAD * 2**current.rate_limited)
        delay = (retry_after or 1.0) + spread * jitter() if slot_in is None else slot_in
        following, sibling = returned, outage
    elif current.number < retries.attempts:
        base = retries.delays[current.number - 1]
        delay = base * (1 + retries.jitter * (2 * jitter() - 1))
        delay, following, sibling = max(delay, retry_after or 0.0), outage, returned
    else:
        return None
    # A slot is the earliest a call may go: never round it down.
    seconds = max(1, math.ceil(delay) if slot_in is not None and rate_limited else round(delay))
    return NextAttempt(
        following,
        seconds,
        following.job_id(key),
        now() + timedelta(seconds=seconds),
        sibling.job_id(key),
    )
