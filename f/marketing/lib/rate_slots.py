"""Free slots of a service's rate limit, shared by the jobs of a workspace.

When a burst meets a rate limit, every job that comes back after the same Retry-After comes
back together and most are refused again: each return costs a job and a call. Instead, the
jobs line up: a rate-limited job takes the next free slot of the limit (one call's worth of
it, 60 / limit seconds) after Retry-After and comes back then; a job that starts while slots
are taken takes the next one without calling the service at all. The line is a state resource
per service, holding when the next slot is free.

Two jobs that read the line at once may take the same slot: one of them is refused then, and
takes a slot at the end of the line. That costs one more return, never an event: each return
is a later attempt with an id of its own (lib/attempt_schedule.py).
"""

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from f.marketing.lib.job_log import log

FOLDER = "f/marketing/rate_slots"
# No burst this package meets fills more than this of a line (6 h is 36,000 events at
# 100 a minute); a time further ahead is not one a job wrote.
MAX_AHEAD = timedelta(hours=6)


def now() -> datetime:
    """The clock the line is kept in (a module function, for a stand-in's clock in tests)."""
    return datetime.now(UTC)


class Line(Protocol):
    def get(self, path: str) -> Any | None: ...
    def upsert(self, path: str, value: Any, resource_type: str) -> None: ...


class RateSlots:
    """The line of one service's slots (`per_minute` calls a minute)."""

    def __init__(self, workspace: Line, service: str, per_minute: int) -> None:
        self._workspace = workspace
        self._path = f"{FOLDER}/{service.lower()}"
        self._interval = timedelta(seconds=60 / per_minute)

    def now(self) -> datetime:
        return now()

    def taken_until(self) -> datetime | None:
        """When the next slot is free, if the line holds one."""
        value = self._workspace.get(self._path)
        try:
            free = datetime.fromisoformat(value["next_free"]) if isinstance(value, dict) else None
        except (TypeError, KeyError, ValueError):
            free = None
        if free is None:
            return None  # none yet, or one this version cannot read: a new line starts
        if free.tzinfo is None or free > now() + MAX_AHEAD:
            # Not one a job wrote (an edit by hand, a worker's clock far off): trusting it
            # would hold every event back.
            log.warning("rate-limit line %s: an unusable time; a new line starts", self._path)
            return None
        return free

    def take(self, earliest: datetime, free: datetime | None = None) -> datetime:
        """Take the first free slot at or after `earliest`; when it starts. `free`: what
        taken_until() just answered, to save reading it again."""
        free = free if free is not None else self.taken_until()
        slot = max(earliest, free) if free else earliest
        value = {"next_free": (slot + self._interval).isoformat()}
        self._workspace.upsert(self._path, value, "state")
        return slot
