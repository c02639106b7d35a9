"""Later attempts of one event: which attempt this job is, and how the next one is queued when
a service failed for a while (the schedule and the attempts' ids: lib/attempt_schedule.py).

A later attempt is a new job of the same script, queued with a delay and an id derived from
the event's key, so that one failed attempt queues exactly one next attempt however often it
is re-run; a replay, or a re-run of an old attempt, starts a chain of its own.
"""

import json
import uuid
from dataclasses import dataclass
from typing import Any

from f.marketing.lib.attempt_schedule import NextAttempt, attempt_of, next_attempt
from f.marketing.lib.errors import InvalidEvent, JobFailed, MarketingError
from f.marketing.lib.job_log import log
from f.marketing.lib.job_result import JobResult
from f.marketing.lib.routing import Retries
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


def as_payload(body: dict[str, Any]) -> dict[str, str]:
    """The arguments of a job that carries an event (a later attempt, a replay): JSON text,
    which Windmill's worker never rewrites."""
    return {"payload": json.dumps(body, ensure_ascii=False, separators=(",", ":"))}


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
    ):
        self.event_key, self.retries, self.resources = event_key, retries, resources
        self.next_run = next_run
        self.key = chain_key(event_key, replay_of)
        self.attempt = attempt_of(self.key, current_job_id(), retries)

    def queue(self, failed: JobFailed, name: str, notes: list[str], labels: list[str]) -> dict:
        """Queue the next attempt and end well; after the last one, fail for the error handler."""
        retries = self.retries
        upcoming = self._upcoming(self.key, failed)
        try:
            queued, next_job = self._queue(upcoming, self.next_run.args)
            if next_job is None:
                # The next attempt of this chain ran long ago: this job is a re-run of an old
                # attempt (Runs page). Its own chain goes on, or the event would end here.
                fork = current_job_id()
                upcoming = self._upcoming(chain_key(self.event_key, fork), failed)
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

    def _upcoming(self, key: str, failed: JobFailed) -> NextAttempt:
        upcoming = next_attempt(
            key,
            self.attempt,
            self.retries,
            retry_after=failed.retry_after,
            rate_limited=failed.rate_limited,
        )
        if upcoming is None:
            raise JobFailed(
                f"{failed}\nGave up: this was attempt {self.attempt.number} of "
                f"{self.retries.attempts}; replay it with f/marketing/replay once the cause is "
                f"fixed.",
                failed.summary,
            ) from None
        return upcoming

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
