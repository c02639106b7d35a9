"""Read and check the four Windmill resources the handler is configured by.

Resources are read through Windmill's API (or `WM_MOCKED_API_FILE` in local runs), and they
are edited in Windmill's UI without a redeploy.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from f.marketing.lib.contract import EVENT_NAMES
from f.marketing.lib.errors import ConfigError, ServiceError

TWENTY_PATH = "f/marketing/twenty"
MAUTIC_PATH = "f/marketing/mautic"
SLACK_PATH = "f/marketing/slack"
ROUTING_PATH = "f/marketing/routing"
STRIPE_PATH = "f/marketing/stripe"


M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _base_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise ValueError("must start with https:// (or http:// for a local server)")
    return value


class TwentySettings(_Strict):
    """Twenty CRM REST API access for f/marketing scripts"""

    base_url: str = Field(
        description="https://api.twenty.com for Twenty Cloud, or https://<your domain>"
    )
    api_key: str = Field(
        min_length=1,
        description="API key from Settings > APIs & Webhooks; store it as a secret variable and "
        "reference it ($var:...)",
    )

    _url = field_validator("base_url")(_base_url)


class MauticSettings(_Strict):
    """Mautic REST API access for f/marketing scripts: basic auth or OAuth2 client credentials"""

    base_url: str = Field(description="https://<your mautic>, without /api")
    username: str | None = Field(
        None, description="Basic auth: a Mautic API user (needs 'Enable HTTP basic auth')"
    )
    password: str | None = Field(
        None, description="Basic auth: its password (a secret variable, $var:...)"
    )
    client_id: str | None = Field(
        None, description="OAuth2: the public id from Settings > API Credentials"
    )
    client_secret: str | None = Field(
        None, description="OAuth2: the secret key (a secret variable, $var:...)"
    )

    _url = field_validator("base_url")(_base_url)

    @model_validator(mode="after")
    def _one_auth(self) -> "MauticSettings":
        basic = bool(self.username and self.password)
        oauth = bool(self.client_id and self.client_secret)
        if basic == oauth:
            raise ValueError(
                "set either username and password (basic auth) or client_id and client_secret "
                "(OAuth2 client credentials), not both and not neither"
            )
        return self


def _secure_url(value: str | None) -> str | None:
    """https, or http to this machine only (a stand-in or a local proxy)."""
    if value is None:
        return None
    url = urlsplit(value.strip())
    local = url.hostname in {"127.0.0.1", "localhost", "::1"}
    if not url.hostname or not (url.scheme == "https" or (url.scheme == "http" and local)):
        raise ValueError("must be an https:// URL")
    return value.strip()


class SlackSettings(_Strict):
    """Where f/marketing posts Slack notifications: an incoming webhook, or a bot token and
    channel"""

    # Any https host: Slack's government cloud (GovSlack) posts from slack-gov.com.
    webhook_url: str | None = Field(
        None,
        description="Incoming webhook URL (any https host, e.g. hooks.slack.com or GovSlack's); "
        "it is a credential: reference a secret variable ($var:...)",
    )
    token: str | None = Field(
        None,
        description="Bot token (xoxb-...) with chat:write, instead of webhook_url; a secret "
        "variable",
    )
    channel: str | None = Field(
        None, description="With token: the channel ID (C0123ABCD), the bot must be a member"
    )
    api_base_url: str = Field(
        "https://slack.com/api",
        description="With token: the Web API base, https://slack.com/api unless your workspace "
        "is elsewhere (GovSlack: https://slack-gov.com/api)",
    )

    _urls = field_validator("webhook_url", "api_base_url")(_secure_url)

    @model_validator(mode="after")
    def _one_way(self) -> "SlackSettings":
        if bool(self.webhook_url) == bool(self.token):
            raise ValueError("set either webhook_url, or token and channel (a bot token)")
        if self.token and not self.channel:
            raise ValueError("channel (a channel ID such as C0123ABCD) is required with token")
        return self


def _signing_secret(value: str | None) -> str | None:
    if not value:
        return None
    if not value.startswith("whsec_"):
        raise ValueError(
            "must be the endpoint's signing secret (whsec_...), from Stripe's Developers > "
            "Webhooks > your endpoint > Signing secret; not an API key"
        )
    return value


class StripeSettings(_Strict):
    """Stripe webhook signing secrets and a read-only API key for f/marketing/stripe_events"""

    # Two fields, not a list: Windmill resolves $var: references in an object's fields, not
    # inside arrays (windmill-api resources.rs, get_value_interpolated).
    signing_secret: str = Field(
        min_length=1,
        description="The webhook endpoint's signing secret (whsec_...); a secret variable "
        "($var:...)",
    )
    previous_signing_secret: str | None = Field(
        None,
        description="While rolling the secret (Stripe keeps the old one for up to 24 h): the "
        "old one, with the new in signing_secret; empty otherwise",
    )
    api_key: str = Field(
        description="A restricted key (rk_live_...) with Customers, Subscriptions and Events: "
        "Read, to read back what an event names; a secret variable"
    )
    tolerance_seconds: int = Field(
        300,
        ge=30,
        le=3600,
        description="How old a signature may be before a request is refused as a replay",
    )
    api_base_url: str = Field(
        "https://api.stripe.com", description="Stripe's API; change it only for a proxy"
    )

    _secrets = field_validator("signing_secret", "previous_signing_secret")(_signing_secret)
    _url = field_validator("api_base_url")(_secure_url)

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str) -> str:
        if not value.startswith(("rk_", "sk_")):
            raise ValueError("must be a Stripe API key: a restricted key (rk_...) is best")
        return value

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.signing_secret, self.previous_signing_secret) if s]


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


class Segments(_Strict):
    """Mautic segments by alias or id: {"active": ["active"], "churned": ["churned"],
    "plans": {"pro": ["plan-pro"]}}"""

    active: list[SegmentRef] = []
    churned: list[SegmentRef] = []
    plans: dict[str, list[SegmentRef]] = {}

    def all(self) -> list[SegmentRef]:
        refs = [*self.active, *self.churned, *(r for ids in self.plans.values() for r in ids)]
        return list(dict.fromkeys(refs))


class Campaigns(_Strict):
    """Mautic campaign ids (null for none): onboarding, upgrade, winback"""

    onboarding: int | None = None
    upgrade: int | None = None
    winback: int | None = None


class SlackRule(_Strict):
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


class TwentyFields(_Strict):
    """Names (not labels) of the People fields in Twenty; null leaves a field unwritten."""

    plan: str | None = "subscriptionPlan"
    source: str | None = "signupSource"
    consent: str | None = "marketingConsent"
    churn_reason: str | None = "churnReason"
    churned_at: str | None = "churnedAt"

    _names = field_validator("*")(twenty_field_name)


class MauticFields(_Strict):
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


class FieldNames(_Strict):
    """Custom field names in Twenty and Mautic; null leaves a field unwritten"""

    twenty: TwentyFields = TwentyFields()
    mautic: MauticFields = MauticFields()
    # Twenty SELECT fields accept only their option values (e.g. PRO); map plans onto them here.
    twenty_plan_values: dict[str, str] | None = None


class Retries(_Strict):
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


class RateLimits(_Strict):
    """Calls a minute a backfill may make (f/marketing/backfill); null: no pacing"""

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


class StripeRouting(_Strict):
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


class Routing(_Strict):
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


@dataclass(frozen=True)
class Settings:
    twenty: TwentySettings
    mautic: MauticSettings
    slack: SlackSettings | None
    routing: Routing
    # Why the Slack resource could not be read, when it exists but failed: not "no Slack".
    slack_problem: str | None = None


_HELP = {
    TWENTY_PATH: ("c_twenty", "base_url, api_key"),
    MAUTIC_PATH: ("c_mautic", "base_url, and username + password or client_id + client_secret"),
    SLACK_PATH: ("c_slack_notify", "webhook_url, or token + channel"),
    ROUTING_PATH: (
        "c_marketing_routing",
        "segments, campaigns, slack_rules, fields, retries, stripe, rate_limits",
    ),
    STRIPE_PATH: (
        "c_stripe",
        "signing_secret (and previous_signing_secret while rolling it), api_key",
    ),
}


def parse_resource(model: type[M], path: str, value: Any, *, default_path: str = "") -> M:
    """Validate one resource value; the error names the path, the type and the bad fields."""
    kind, fields = _HELP[default_path or path]
    if not isinstance(value, dict):
        raise ConfigError(
            f"Resource {path} does not exist (or is not an object): create it in Windmill "
            f"with resource type {kind} and the fields {fields}"
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(
            f"Resource {path} (type {kind}) is malformed: {problems}. Expected fields: {fields}"
        ) from None


# Reads one resource: its value, None when there is none, ServiceError when the read failed.
Reader = Callable[[str], Any]


class ResourceUnreadable(ConfigError):
    """A resource exists (or may) but could not be read: not the same as "there is none"."""


def load_resource(
    model: type[M], given: Any, default_path: str, reader: Reader, *, optional: bool = False
) -> M | None:
    """The resource passed to `main`, else the one at its path (None if optional and absent).

    A string is a "$res:f/..." that Windmill left unresolved (webhook calls): read that path.
    """
    path = given.removeprefix("$res:") if isinstance(given, str) else default_path
    try:
        value = given if isinstance(given, dict) else reader(path)
    except ServiceError as exc:
        raise ResourceUnreadable(f"Resource {path} could not be read{exc.reason}") from None
    if value is None and optional:
        return None
    return parse_resource(model, path, value, default_path=default_path)


def load_settings(
    twenty: Any = None,
    mautic: Any = None,
    slack: Any = None,
    routing: Any = None,
    *,
    reader: Reader,
) -> Settings:
    """Use the resources passed to `main`, else read them from their default paths.

    Slack is optional: no resource at f/marketing/slack means no notifications, but one that
    exists and cannot be read (401, 5xx) is a Slack failure the result reports.
    """
    slack_settings, slack_problem = None, None
    try:
        slack_settings = load_resource(SlackSettings, slack, SLACK_PATH, reader, optional=True)
    except ResourceUnreadable as exc:
        slack_problem = str(exc)
    return Settings(
        twenty=_required(load_resource(TwentySettings, twenty, TWENTY_PATH, reader)),
        mautic=_required(load_resource(MauticSettings, mautic, MAUTIC_PATH, reader)),
        slack=slack_settings,
        routing=_required(load_resource(Routing, routing, ROUTING_PATH, reader)),
        slack_problem=slack_problem,
    )


def _required(value: M | None) -> M:
    assert value is not None, "only optional resources may be absent"
    return value
