"""Calls to one service spaced evenly under its rate limit, so a long run never meets a 429
of its own making (a 429 that comes anyway, from other traffic, is still honoured)."""

import time
from collections.abc import Callable


class Pacer:
    """At most `per_minute` calls a minute, one every 60/per_minute seconds; None: no limit."""

    def __init__(
        self,
        per_minute: float | None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        # Looked up at each call, not here, so that a test can stand in for time itself.
        self.clock, self.sleep = clock, sleep
        self.calls = 0
        self._next = float("-inf")

    def __call__(self, *_: object) -> None:
        """Wait for this call's turn (usable as an httpx request hook)."""
        now = (self.clock or time.monotonic)()
        if now < self._next:
            (self.sleep or time.sleep)(self._next - now)
            now = self._next
        self._next = now + self.interval
        self.calls += 1
