"""Which steps one event takes, in which order, planned from the event and the routing before
any call: the dry run shows this list, the real run runs it (lib/run_steps.py), so the two
never drift.

Order is fixed: Twenty, then Mautic, then Slack; a failed Twenty or Mautic step stops the job
and nothing after it runs, so Slack is only reached after both succeeded.
"""

from typing import assert_never

from f.marketing.lib.consent import Consent
from f.marketing.lib.contract import Event, UserChurned, UserRegistered, UserUpgraded
from f.marketing.lib.person_values import churn_values, registration_values, upgrade_values
from f.marketing.lib.routing import Routing
from f.marketing.lib.steps import (
    Step,
    add_to_campaign,
    add_to_segments,
    lift_our_dnc,
    mark_without_consent,
    notify,
    remove_from_campaign,
    remove_from_segments,
    upsert_contact,
    upsert_person,
)
from f.marketing.lib.twenty_client import person_body


def plan(
    event: Event, routing: Routing, slack_enabled: bool, slack_problem: str | None = None
) -> list[Step]:
    """The steps for one event. Raises ConfigError before any call if routing cannot serve it."""
    match event:
        case UserRegistered():
            steps = _plan_registered(event, routing)
        case UserUpgraded():
            steps = _plan_upgraded(event, routing)
        case UserChurned():
            steps = _plan_churned(event, routing)
        case _:
            assert_never(event)
    slack = notify(event, routing, slack_enabled, slack_problem)
    return [s for s in [*steps, slack] if s is not None]


def _plan_registered(event: UserRegistered, routing: Routing) -> list[Step | None]:
    mf, seg = routing.fields.mautic, routing.segments
    person, contact = registration_values(event, routing)
    if event.marketingConsent:
        mautic_steps = [upsert_contact(contact, mf.consent, Consent.GIVEN), lift_our_dnc()]
    else:
        mautic_steps = [upsert_contact(contact, mf.consent, Consent.REFUSED)]
    return [
        upsert_person(person_body(event.email, event.name, person)),
        *mautic_steps,
        *_welcome_back(routing),
        add_to_segments([*seg.active, *seg.plans.get(event.plan, [])]),
        add_to_campaign(routing.campaigns.onboarding, "onboarding"),
    ]


def _plan_upgraded(event: UserUpgraded, routing: Routing) -> list[Step | None]:
    mf, seg = routing.fields.mautic, routing.segments
    new_segments = seg.plans.get(event.newPlan, [])
    # Every other plan's segments, not only previousPlan's: when an older plan change arrives
    # after a newer one (Stripe does not deliver in order, and the stale one is skipped), the
    # contact may still be in the plan before both.
    other_plans = [s for ids in seg.plans.values() for s in ids if s not in new_segments]
    person, contact = upgrade_values(event, routing)
    return [
        upsert_person(person_body(event.email, None, person)),
        upsert_contact(contact, mf.consent, Consent.ON_RECORD),
        mark_without_consent(),
        *_welcome_back(routing),
        remove_from_segments(list(dict.fromkeys(other_plans)), "other plans'"),
        # `active` too: an upgrade after a churn is a return (members are not added again).
        add_to_segments([*seg.active, *new_segments]),
        add_to_campaign(routing.campaigns.upgrade, "upgrade"),
    ]


def _plan_churned(event: UserChurned, routing: Routing) -> list[Step | None]:
    mf, seg = routing.fields.mautic, routing.segments
    plan_segments = [s for ids in seg.plans.values() for s in ids]
    leaving = list(dict.fromkeys([*seg.active, *plan_segments]))
    person, contact = churn_values(event, routing)
    return [
        upsert_person(person_body(event.email, None, person)),
        upsert_contact(contact, mf.consent, Consent.ON_RECORD),
        mark_without_consent(),
        remove_from_segments(leaving, "active and plan"),
        add_to_segments(seg.churned),
        add_to_campaign(routing.campaigns.winback, "win-back"),
    ]


def _welcome_back(routing: Routing) -> list[Step | None]:
    """A returning user leaves what churn put them in: the churned segments, the win-back."""
    churned = routing.segments.churned
    return [
        remove_from_segments(churned, "churned"),
        remove_from_campaign(routing.campaigns.winback, "win-back", churned),
    ]
