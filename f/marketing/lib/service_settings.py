"""What each service's Windmill resource must hold to be used: URLs, credentials, secrets.

One model per resource type (c_twenty, c_mautic, c_slack_notify, c_stripe); the resource types
pushed to Windmill are generated from these (scripts/export_schemas.py), so the form a person
fills in and the check a job makes cannot drift apart.
"""

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StrictModel(BaseModel):
    """A resource's model: an unknown key is refused, not ignored (a typo would otherwise
    silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _base_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise ValueError("must start with https:// (or http:// for a local server)")
    return value


class TwentySettings(StrictModel):
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


class MauticSettings(StrictModel):
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
        if (self.basic_auth is None) == (self.oauth_client is None):
            raise ValueError(
                "set either username and password (basic auth) or client_id and client_secret "
                "(OAuth2 client credentials), not both and not neither"
            )
        return self

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """Username and password, when both are set: basic auth."""
        return (self.username, self.password) if self.username and self.password else None

    @property
    def oauth_client(self) -> tuple[str, str] | None:
        """Client id and secret, when both are set: OAuth2 client credentials."""
        if self.client_id and self.client_secret:
            return self.client_id, self.client_secret
        return None


def _secure_url(value: str | None) -> str | None:
    """https, or http to this machine only (a stand-in or a local proxy)."""
    if value is None:
        return None
    url = urlsplit(value.strip())
    local = url.hostname in {"127.0.0.1", "localhost", "::1"}
    if not url.hostname or not (url.scheme == "https" or (url.scheme == "http" and local)):
        raise ValueError("must be an https:// URL")
    return value.strip()


class SlackSettings(StrictModel):
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


class StripeSettings(StrictModel):
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
