"""Read and check the Windmill resources a job is configured by, into its Settings.

Resources are read through Windmill's API (or `WM_MOCKED_API_FILE` in local runs), and they
are edited in Windmill's UI without a redeploy. A resource that is missing or malformed is a
ConfigError naming its path, its type and the fields wrong, never their values.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from f.marketing.lib.errors import ConfigError, ServiceError
from f.marketing.lib.routing import Routing
from f.marketing.lib.service_settings import (
    MauticSettings,
    SlackSettings,
    TwentySettings,
)

TWENTY_PATH = "f/marketing/twenty"
MAUTIC_PATH = "f/marketing/mautic"
SLACK_PATH = "f/marketing/slack"
ROUTING_PATH = "f/marketing/routing"
STRIPE_PATH = "f/marketing/stripe"


M = TypeVar("M", bound=BaseModel)


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
    slack_wanted: Callable[[Routing], bool] | None = None,
) -> Settings:
    """Use the resources passed to `main`, else read them from their default paths.

    Slack is optional: no resource at f/marketing/slack means no notifications, but one that
    exists and cannot be read (401, 5xx) is a Slack failure the result reports. When
    `slack_wanted` says the routing gives this job nothing to post, it is not read at all:
    one Windmill call less for most events.
    """
    twenty_settings = _required(load_resource(TwentySettings, twenty, TWENTY_PATH, reader))
    mautic_settings = _required(load_resource(MauticSettings, mautic, MAUTIC_PATH, reader))
    routing_settings = _required(load_resource(Routing, routing, ROUTING_PATH, reader))
    slack_settings, slack_problem = None, None
    if slack_wanted is None or slack_wanted(routing_settings):
        try:
            slack_settings = load_resource(SlackSettings, slack, SLACK_PATH, reader, optional=True)
        except ResourceUnreadable as exc:
            slack_problem = str(exc)
    return Settings(
        twenty=twenty_settings,
        mautic=mautic_settings,
        slack=slack_settings,
        routing=routing_settings,
        slack_problem=slack_problem,
    )


def _required(value: M | None) -> M:
    assert value is not None, "only optional resources may be absent"
    return value
