"""The ledger that stops a Slack message from being posted twice for one event.

It holds one Windmill state resource per notified event, named by the event's fingerprint, so
a duplicate webhook or a re-run of the same event posts nothing new. Fingerprints are hashes:
no email is stored.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from f.marketing.lib.windmill_api import Workspace

LEDGER_PREFIX = "f/marketing/slack_posted/"
LEDGER_DAYS = 30
STALE_CLAIM_SECONDS = 600


class Claim(Enum):
    CLAIMED = "claimed"  # this job posts it
    POSTED = "posted"  # posted before (or maybe posted: an answer was lost)
    BUSY = "busy"  # another job is posting it right now


class SlackLedger:
    """One small state resource per notified event, so a duplicate never posts twice.

    A claim is a create, which Windmill refuses for a path that exists: two deliveries of one
    event cannot both claim it, and jobs for different events never touch the same resource
    (no read-modify-write of a shared list, so nothing is lost or wiped). The claim is read
    back to catch the narrow race where two creates both pass Windmill's existence check.
    Entries older than 30 days are pruned now and then.
    """

    def __init__(
        self,
        resources: Workspace,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        owner: str | None = None,
    ) -> None:
        self._resources = resources
        self._now = now
        self._owner = owner or uuid.uuid4().hex

    def claim(self, key: str) -> Claim:
        """Raises ServiceError when the ledger cannot be read or written."""
        path = LEDGER_PREFIX + key
        if not self._resources.create(path, self._entry("posting"), "state"):
            current = self._resources.get(path)
            entry = current if isinstance(current, dict) else {}
            if entry.get("state") in {"posted", "uncertain"}:
                return Claim.POSTED
            if entry.get("state") == "posting" and not self._stale(entry):
                return Claim.BUSY
            self._resources.update(path, self._entry("posting"))  # failed or abandoned
        mine = self._resources.get(path)
        return (
            Claim.CLAIMED
            if isinstance(mine, dict) and mine.get("by") == self._owner
            else Claim.BUSY
        )

    def settle(self, key: str, state: str) -> None:
        """Record how the post ended: posted, uncertain (never repeated) or failed (may be)."""
        self._resources.update(LEDGER_PREFIX + key, self._entry(state))

    def prune(self, key: str) -> int:
        """On about one post in sixteen, delete up to 100 entries older than 30 days."""
        if not key.startswith("0"):
            return 0
        cutoff = (self._now() - timedelta(days=LEDGER_DAYS)).isoformat()
        old = [
            item["path"]
            for item in self._resources.list_paths(LEDGER_PREFIX)
            if str(item.get("edited_at") or "9999") < cutoff
        ]
        for path in old[:100]:
            self._resources.delete(path)
        return len(old[:100])

    def _entry(self, state: str) -> dict[str, str]:
        return {"state": state, "at": self._now().isoformat(), "by": self._owner}

    def _stale(self, entry: dict[str, Any]) -> bool:
        # A job that claimed and then died: after its timeout (300 s) no one is posting.
        cutoff = (self._now() - timedelta(seconds=STALE_CLAIM_SECONDS)).isoformat()
        return str(entry.get("at") or "") < cutoff
