"""Later attempts of one event: which attempt this job is, and how the next one is queued when
a service failed for a while (the schedule and the attempts' ids: lib/attempt_schedule.py).

A later attempt is a new job of the same script, queued with a delay and an id derived from
the event's key, so that one failed attempt queues exactly one next attempt however often it
is re-run; a replay, or a re-run of an old attempt, starts a chain of its own.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from f.marketing.lib.attempt_schedule import NextAttempt, attempt_of, next_attempt
from f.marketing.lib.errors import InvalidEvent, JobFailed, MarketingError
from f.marketing.lib.job_log import log
from f.marketing.lib.job_result import JobResult
from f.marketing.lib.rate_slots import RateSlots
from f.marketing.lib.routing import RateLimits, Retries
from f.marketing.lib.windmill_api import Workspace, current_job_id


def chain_key(event_key: str, replay_of: str) -> str:
    """The key of one chain of attempts: a replay starts a chain of its own, since the failed
    chain's attempt ids stay taken in Windmill's job history (a second job with a known id is
    refused), and its later attempts would otherwise be taken for ones already queued.

    `replay_of` must be a job id: it is copied into the next attempt's arguments, and the
    worker would have replaced a `$var:` given there with the secret it names."""
    if not replay_of:
        return event_key
    try:
        uuid.UUID(replay_of)
    except (ValueError, AttributeError, TypeError):
        raise InvalidEvent(None, ["replay_of: not a job id"]) from None
    return f"{event_key}:replay:{replay_of}"


@dataclass(frozen=True)
class NextRun:
    """How a later attempt is queued: which script, with which arguments."""

    script: str
    args: dict[str, Any]
    # A script whose preprocessor checks a signature gets its later attempts without it.
    skip_preprocessor: bool = False


class Later:
    """The attempts of one event: which one this job is, and how to queue the next."""

    def __init__(
        self,
        event_key: str,
        retries: Retries,
        resources: Workspace,
        next_run: NextRun,
        replay_of: str = "",
        *,
        rate_limits: RateLimits | None = None,
    ):
        self.event_key, self.retries, self.resources = event_key, retries, resources
        self.next_run = next_run
        self.rate_limits = rate_limits or RateLimits()
        self.key = chain_key(event_key, replay_of)
        self.attempt = attempt_of(self.key, current_job_id(), retries)

    def behind_the_line(
        self, services: list[str], name: str, notes: list[str], labels: list[str]
    ) -> dict | None:
        """Before any call: when one of the `services` has its slots taken by a burst, queue
        this event into the next free one and end well, having called nothing. None: go on.
        An attempt that comes back into its slot goes on without looking."""
        if self.attempt.rate_limited:
            return None
        for service in services:
            slots = self._slots(service)
            if slots is None:
                continue
            try:
                free = slots.taken_until()
                at = slots.take(slots.now(), free) if free and free > slots.now() else None
            except MarketingError as exc:  # no line to read: call, as without one
                log.warning("%s's rate-limit line could not be read (%s)", service, exc)
                continue
            if at is not None:
                waiting = JobFailed(
                    f"{name}: {service}'s rate limit is taken until {free:%H:%M:%S}; no call made",
                    {},
                    transient=True,
                    rate_limited=True,
                    service=service,
                )
                return self.queue(waiting, name, notes, labels, slot=at)
        return None

    def queue(
        self,
        failed: JobFailed,
        name: str,
        notes: list[str],
        labels: list[str],
        *,
        slot: datetime | None = None,
    ) -> dict:
        """Queue the next attempt and end well; after the last one, fail for the error handler.
        A rate-limited attempt comes back in the next free slot of its service's limit, when
        the limit is known (`slot`, when taken already)."""
        retries = self.retries
        slots = self._slots(failed.service) if failed.rate_limited else None
        slot_in = None
        if slots:
            try:
                slot = slot or slots.take(slots.now() + timedelta(seconds=failed.retry_after or 0))
                slot_in = max(0.0, (slot - slots.now()).total_seconds())
            except MarketingError as exc:  # after Retry-After plus a spread, as without one
                log.warning("%s's rate-limit line could not be written (%s)", failed.service, exc)
        upcoming = self._upcoming(self.key, failed, slot_in)
        try:
            queued, next_job = self._queue(upcoming, self.next_run.args)
            if next_job is None:
                # The next attempt of this chain ran long ago: this job is a re-run of an old
                # attempt (Runs page). Its own chain goes on, or the event would end here.
                fork = current_job_id()
                upcoming = self._upcoming(chain_key(self.event_key, fork), failed, slot_in)
                queued, next_job = self._queue(upcoming, {**self.next_run.args, "replay_of": fork})
        except MarketingError as exc:
            raise JobFailed(
                f"{failed}\nThe next attempt could not be queued ({exc}): replay this job.",
                failed.summary,
            ) from None
        when = upcoming.at.isoformat(timespec="seconds")
        log.info(
            "%s: attempt %d of %d %s; %s for %s",
            name, self.attempt.number, retries.attempts,
            "was rate limited" if failed.rate_limited else "failed for a while",
            "next attempt queued" if queued else "next attempt was already queued", when,
        )  # fmt: skip
        return JobResult(
            [name, *labels, "retry-scheduled"],
            fields={
                **failed.summary,
                "status": "retry-scheduled",
                "attempt": self.attempt.number,
                "reason": str(failed).splitlines()[0],
                "next_attempt": upcoming.attempt.number,
                "next_attempt_at": when,
                "next_job_id": next_job,
            },
            notes=notes,
        ).as_dict()

    def _upcoming(self, key: str, failed: JobFailed, slot_in: float | None) -> NextAttempt:
        upcoming = next_attempt(
            key,
            self.attempt,
            self.retries,
            retry_after=failed.retry_after,
            rate_limited=failed.rate_limited,
            slot_in=slot_in,
        )
        if upcoming is None:
            raise JobFailed(
                f"{failed}\nGave up: this was attempt {self.attempt.number} of "
                f"{self.retries.attempts}; replay it with f/marketing/replay once the cause is "
                f"fixed.",
                failed.summary,
            ) from None
        return upcoming

    def _slots(self, service: str | None) -> RateSlots | None:
        per_minute = self.rate_limits.enforced(service or "")
        return RateSlots(self.resources, service or "", per_minute) if per_minute else None

    def _queue(self, upcoming: NextAttempt, args: dict[str, Any]) -> tuple[bool, str | None]:
        """(queued now, the next job's id); the id is None when the chain's next attempt ran
        already. A sibling waiting (a re-run that failed another way) is the next attempt."""
        if self.resources.job_state(upcoming.sibling_job_id) == "queued":
            return False, upcoming.sibling_job_id
        queued = self.resources.queue_job(
            self.next_run.script,
            args,
            delay=upcoming.delay,
            job_id=upcoming.job_id,
            skip_preprocessor=self.next_run.skip_preprocessor,
        )
        if queued or self.resources.job_state(upcoming.job_id) != "completed":
            return queued, upcoming.job_id
        return False, None
