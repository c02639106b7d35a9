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

FOLDER = "f/marketing/rate_slots"


def now() -> datetime:
    """The clock the line is kept in (a module function, for a stand-in's clock in tests)."""
    return datetime.now(UTC)


class Line(Protocol):
    def get(self, path: str) -> Any | None: ...
    def create(self, path: str, value: Any, resource_type: str) -> bool: ...
    def update(self, path: str, value: Any) -> None: ...


class RateSlots:
    """The line of one service's slots (`per_minute` calls a minute)."""

    def __init__(self, workspace: Line, service: str, per_minute: int) -> None:
        self._workspace = workspace
        self._path = f"{FOLDER}/{service.lower()}"
        self._interval = timedelta(seconds=60 / per_minute)
        self._exists: bool | None = None  # whether the line's resource exists, once read

    def now(self) -> datetime:
        return now()

    def taken_until(self) -> datetime | None:
        """When the next slot is free, if the line holds one."""
        value = self._workspace.get(self._path)
        self._exists = value is not None
        try:
            return datetime.fromisoformat(value["next_free"]) if isinstance(value, dict) else None
        except (TypeError, KeyError, ValueError):
            return None  # one this version cannot read: a new line starts

    def take(self, earliest: datetime, free: datetime | None = None) -> datetime:
        """Take the first free slot at or after `earliest`; when it starts. `free`: what
        taken_until() just answered, to save reading it again."""
        free = free if free is not None else self.taken_until()
        slot = max(earliest, free) if free else earliest
        value = {"next_free": (slot + self._interval).isoformat()}
        if self._exists or not self._workspace.create(self._path, value, "state"):
            self._workspace.update(self._path, value)
        self._exists = True
        return slot
