"""What events do in the workspace: the f/marketing/routing resource's model (segments,
campaigns, Slack rules, field names, later attempts, Stripe prices, backfill rate limits)."""

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from f.marketing.lib.contract import EVENT_NAMES
from f.marketing.lib.service_settings import StrictModel

# A Mautic segment by id (7) or by alias ("plan-pro"). An alias reads better, survives a move
# between Mautic instances and lets f/marketing/setup create the segment; it costs one segment
# listing per job that needs it. Mautic keeps only [a-z0-9-] of an alias it saves
# (ListModel::saveEntity -> FormModel::cleanAlias(..., '-') -> InputHelper::alphanum), so
# "plan_pro" would be created as "planpro" and never found again by its routing name.
_ALIAS = re.compile(r"[a-z0-9][a-z0-9-]*")


def _segment_ref(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and _ALIAS.fullmatch(value):
        return value
    if isinstance(value, str) and "_" in value:
        raise ValueError(
            "a segment alias cannot hold _: Mautic keeps only lowercase letters, digits and - "
            "in an alias (use - instead)"
        )
    raise ValueError("must be a segment id (a number) or alias (lowercase letters, digits, -)")


SegmentRef = Annotated[int | str, BeforeValidator(_segment_ref)]


class Segments(StrictModel):
    """Mautic segments by alias or id: {"active": ["active"], "churned": ["churned"],
    "plans": {"pro": ["plan-pro"]}}"""

    active: list[SegmentRef] = []
    churned: list[SegmentRef] = []
    plans: dict[str, list[SegmentRef]] = {}

    def all(self) -> list[SegmentRef]:
        refs = [*self.active, *self.churned, *(r for ids in self.plans.values() for r in ids)]
        return list(dict.fromkeys(refs))


class Campaigns(StrictModel):
    """Mautic campaign ids (null for none): onboarding, upgrade, winback"""

    onboarding: int | None = None
    upgrade: int | None = None
    winback: int | None = None


class SlackRule(StrictModel):
    """A Slack notification: the events, and optionally the plans and sources, it is for"""

    name: str = Field(min_length=1)
    events: list[str] = Field(min_length=1)
    plans: list[str] | None = None
    sources: list[str] | None = None

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in EVENT_NAMES]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; use {', '.join(EVENT_NAMES)}")
        return value


# Names Twenty refuses for a custom field (twentyhq/twenty:
# packages/twenty-shared/src/metadata/constants/reserved-metadata-name-keywords.constant.ts).
# Its UI appends "Custom" to such a name, so a field labelled "Plan" is named `planCustom`.
# fmt: off
_TWENTY_CORE_OBJECTS = [
    "approvedAccessDomain", "appToken", "billingCustomer", "billingEntitlement", "billingMeter",
    "billingProduct", "billingSubscription", "billingSubscriptionItem", "featureFlag", "job",
    "keyValuePair", "pageLayout", "pageLayoutTab", "pageLayoutWidget", "postgresCredential",
    "twoFactorMethod", "user", "userWorkspace", "workspace", "role", "userWorkspaceRole",
]
TWENTY_RESERVED_NAMES = frozenset([
    "plan", "plans", "event", "events", "field", "fields", "link", "links", "currency",
    "currencies", "fullNames", "address", "addresses", "type", "types", "object", "objects",
    "index", "relation", "relations", "aggregate",
    *_TWENTY_CORE_OBJECTS, *(f"{name}s" for name in _TWENTY_CORE_OBJECTS),
])
# fmt: on
_TWENTY_NAME = re.compile(r"[a-z][a-zA-Z0-9]*")


def twenty_field_name(name: str | None) -> str | None:
    """A name Twenty can have for a custom field: camelCase, and not one it reserves."""
    if name is None:
        return None
    if name in TWENTY_RESERVED_NAMES:
        raise ValueError(
            f"Twenty reserves the name {name!r} and cannot have a field by that name; a field "
            f"labelled {name[0].upper() + name[1:]!r} in Twenty is named '{name}Custom': use that "
            f"(Settings > Data model > People shows each field's name)"
        )
    if not _TWENTY_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a Twenty field name: camelCase letters and digits, starting "
            f"with a lowercase letter (the name, not the label)"
        )
    return name


class TwentyFields(StrictModel):
    """Names (not labels) of the People fields in Twenty; null leaves a field unwritten."""

    plan: str | None = "subscriptionPlan"
    source: str | None = "signupSource"
    consent: str | None = "marketingConsent"
    churn_reason: str | None = "churnReason"
    churned_at: str | None = "churnedAt"

    _names = field_validator("*")(twenty_field_name)


class MauticFields(StrictModel):
    """Aliases of the contact fields in Mautic; null leaves a field unwritten, except consent."""

    plan: str | None = "plan"
    source: str | None = "signup_source"
    # Read back on every later event to decide who may get marketing email: always needed.
    consent: str = "marketing_consent"
    churn_reason: str | None = "churn_reason"
    churned_at: str | None = "churned_at"

    @field_validator("consent", mode="before")
    @classmethod
    def _consent_is_needed(cls, value: Any) -> Any:
        if value is None:
            raise ValueError(
                "cannot be null: the consent field is how later events know who agreed to "
                "marketing email; create a boolean contact field and name its alias here"
            )
        return value


class FieldNames(StrictModel):
    """Custom field names in Twenty and Mautic; null leaves a field unwritten"""

    twenty: TwentyFields = TwentyFields()
    mautic: MauticFields = MauticFields()
    # Twenty SELECT fields accept only their option values (e.g. PRO); map plans onto them here.
    twenty_plan_values: dict[str, str] | None = None


class Retries(StrictModel):
    """Later attempts of an event that failed for a while (a service down, a rate limit).

    `delays[i]` is how long after failed attempt i+1 the next one starts, in seconds: by
    default 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h, about 45 h in all (delivery services
    teams trust retry for a day or more). `jitter` spreads each delay by up to ± that share.
    """

    delays: list[Annotated[int, Field(ge=1, le=7 * 24 * 3600)]] = Field(
        default=[60, 300, 1800, 7200, 21600, 43200, 86400], max_length=20
    )
    jitter: float = Field(default=0.1, ge=0, le=0.5)

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1


class RateLimits(StrictModel):
    """Calls a minute a backfill may make (f/marketing/backfill; null: no pacing), and the
    limits the services enforce, into whose free slots rate-limited events come back"""

    twenty_per_minute: int | None = Field(
        90,
        ge=1,
        description="Twenty allows 100 a minute on a default server and 50 on its cloud; "
        "leave room for the live events",
    )
    mautic_per_minute: int | None = Field(
        300,
        ge=1,
        description="Mautic limits calls per hour only when its API rate limiter is on: "
        "set this to that hourly limit / 60, less some room",
    )
    twenty_limit_per_minute: int | None = Field(
        100,
        ge=1,
        description="The limit Twenty enforces (100 a minute on a default server, 50 on its "
        "cloud): a rate-limited event comes back in the next free slot of it, and events that "
        "arrive while slots are taken queue behind them without calling; null: after "
        "Retry-After",
    )
    mautic_limit_per_minute: int | None = Field(
        None,
        ge=1,
        description="The limit Mautic's API rate limiter enforces, as calls a minute (its "
        "hourly limit / 60); null: after Retry-After",
    )

    def enforced(self, service: str) -> int | None:
        """Calls a minute the service allows, when known (`service` in any case)."""
        known = {"twenty": self.twenty_limit_per_minute, "mautic": self.mautic_limit_per_minute}
        return known.get(service.lower())


class StripeRouting(StrictModel):
    """How f/marketing/stripe_events turns Stripe subscription events into plan changes"""

    prices: dict[str, str] = Field(
        {},
        description="Plan name by price id (price_...) or lookup key; a price not listed "
        "takes its lookup key as the plan name",
    )
    no_subscription_plan: str = Field(
        "free", min_length=1, description="The plan of a customer without a subscription"
    )
    on_cancel: Literal["plan_change", "churn"] = Field(
        "plan_change",
        description="customer.subscription.deleted: plan_change to no_subscription_plan, or "
        "churn (user.churned)",
    )
    on_subscribe: Literal["ignore", "plan_change"] = Field(
        "ignore",
        description="customer.subscription.created: ignore (the sign-up sends user.registered), "
        "or plan_change from no_subscription_plan",
    )
    email_metadata_key: str = Field(
        "email",
        min_length=1,
        description="The subscription's or customer's metadata key holding the user's email in "
        "the SaaS; without it, the customer's email",
    )


class Routing(StrictModel):
    """Segments, campaigns, Slack rules, field names, retries, Stripe prices and backfill rate
    limits for f/marketing/handle_user_event, stripe_events and backfill"""

    segments: Segments = Segments()
    campaigns: Campaigns = Campaigns()
    slack_rules: list[SlackRule] = []
    fields: FieldNames = FieldNames()
    retries: Retries = Retries()
    stripe: StripeRouting = StripeRouting()
    rate_limits: RateLimits = RateLimits()

    def known_plans(self) -> set[str]:
        """Every plan name the routing mentions (empty when it names none)."""
        named = {
            *self.segments.plans,
            *(self.fields.twenty_plan_values or {}),
            *self.stripe.prices.values(),
        }
        return named | {self.stripe.no_subscription_plan} if named else set()
