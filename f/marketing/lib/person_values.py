"""What an event writes: Twenty's person fields and Mautic's contact values, by the routing's
field names. Shared by the live events' steps and the backfill, so the two write alike."""

from datetime import UTC
from typing import Any

from f.marketing.lib.contract import UserChurned, UserRegistered, UserUpgraded, split_name
from f.marketing.lib.errors import ConfigError
from f.marketing.lib.routing import Routing


def registration_values(
    event: UserRegistered, routing: Routing
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a registration writes: Twenty's person fields and Mautic's contact values."""
    tw, mf = routing.fields.twenty, routing.fields.mautic
    person = _named(
        (tw.plan, _twenty_plan(event.plan, routing)),
        (tw.source, event.source),
        (tw.consent, event.marketingConsent),
    )
    contact = {"email": event.email}
    if event.name:
        first, last = split_name(event.name)
        contact |= _named(("firstname", first), ("lastname", last or None))
    contact |= _named(
        (mf.plan, event.plan), (mf.source, event.source), (mf.consent, event.marketingConsent)
    )
    return person, contact


def upgrade_values(event: UserUpgraded, routing: Routing) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a plan change writes: Twenty's person fields and Mautic's contact values."""
    tw, mf = routing.fields.twenty, routing.fields.mautic
    person = _named((tw.plan, _twenty_plan(event.newPlan, routing)))
    return person, {"email": event.email, **_named((mf.plan, event.newPlan))}


def churn_values(event: UserChurned, routing: Routing) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a churn writes: Twenty's person fields and Mautic's contact values."""
    tw, mf = routing.fields.twenty, routing.fields.mautic
    when = event.timestamp.astimezone(UTC)
    person = _named((tw.churn_reason, event.reason), (tw.churned_at, when.isoformat()))
    contact = {
        "email": event.email,
        # Mautic date-time fields take "Y-m-d H:i:s" (UTC here).
        **_named(
            (mf.churn_reason, event.reason),
            (mf.churned_at, when.strftime("%Y-%m-%d %H:%M:%S")),
        ),
    }
    return person, contact


def _named(*pairs: tuple[str | None, Any]) -> dict[str, Any]:
    """Field name → value, leaving out fields mapped to null and values the event lacks.

    A value the event does not know is left out rather than sent blank: Twenty would clear
    the stored value and Mautic would keep it, and the two must agree.
    """
    return {name: value for name, value in pairs if name and value is not None}


def _twenty_plan(plan_name: str, routing: Routing) -> str:
    values = routing.fields.twenty_plan_values
    if values is None:
        return plan_name
    if plan_name not in values:
        raise ConfigError(
            f"Resource f/marketing/routing: fields.twenty_plan_values has no entry for plan "
            f"{plan_name!r}; add the Twenty option value for it"
        )
    return values[plan_name]
