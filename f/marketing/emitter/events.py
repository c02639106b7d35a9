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
    return {
        "event": "user.registered",
        "email": email,
        "name": name,
        "plan": plan,
        "source": source,
        "marketingConsent": marketing_consent,
        "timestamp": _now_if_none(timestamp),
    }


def user_upgraded(
    email: str, *, previous_plan: str, new_plan: str, timestamp: datetime | str | None = None
) -> dict[str, Any]:
    """A user moved to another plan (a downgrade too)."""
    return {
        "event": "user.upgraded",
        "email": email,
        "previousPlan": previous_plan,
        "newPlan": new_plan,
        "timestamp": _now_if_none(timestamp),
    }


def user_churned(
    email: str, *, reason: str | None, timestamp: datetime | str | None = None
) -> dict[str, Any]:
    """A user left; `reason` when they said why."""
    return {
        "event": "user.churned",
        "email": email,
        "reason": reason,
        "timestamp": _now_if_none(timestamp),
    }


def _now_if_none(value: datetime | str | None) -> datetime | str:
    return datetime.now(UTC).isoformat() if value is None else value
