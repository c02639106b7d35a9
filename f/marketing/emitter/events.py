"""The three events the SaaS sends, each written once: its keyword arguments become the body.

Both the module functions (`f.marketing.emitter.user_registered(...)`) and an Emitter's
methods are these functions, bound to where the body goes.
"""

from datetime import UTC, datetime
from typing import Any


def user_registered(
    email: str,
    *,
    name: str | None,
    plan: str,
    source: str,
    marketing_consent: bool,
    timestamp: datetime | str | None = None,
) -> dict[str, Any]:
    """A user signed up (with or without marketing consent)."""
    return _body(
        "user.registered", email, timestamp,
        name=name, plan=plan, source=source, marketingConsent=marketing_consent,
    )  # fmt: skip


def user_upgraded(
    email: str, *, previous_plan: str, new_plan: str, timestamp: datetime | str | None = None
) -> dict[str, Any]:
    """A user moved to another plan (a downgrade too)."""
    return _body("user.upgraded", email, timestamp, previousPlan=previous_plan, newPlan=new_plan)


def user_churned(
    email: str, *, reason: str | None, timestamp: datetime | str | None = None
) -> dict[str, Any]:
    """A user left; `reason` when they said why."""
    return _body("user.churned", email, timestamp, reason=reason)


def _body(event: str, email: str, timestamp: datetime | str | None, **fields: Any) -> dict:
    """The wire body: the contract's camelCase names; no timestamp means now."""
    when = datetime.now(UTC).isoformat() if timestamp is None else timestamp
    return {"event": event, "email": email, **fields, "timestamp": when}
