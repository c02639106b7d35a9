"""The one contract for lifecycle events, shared by the handler and the emitter.

Field names are the webhook body's keys (camelCase), so a body maps onto a model unchanged.
"""

import hashlib
import re
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from f.marketing.lib.errors import InvalidEvent

# Deliberately stricter than RFC 5322: Mautic cleans values before matching, so a sloppy
# address such as "te,st@user..email" can match and update someone else (mautic#7963).
_LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL = re.compile(rf"^{_LOCAL}@(?:{_LABEL}\.)+[a-z]{{2,63}}$")


def normalise_email(value: str) -> str:
    """Trim and lowercase, as Twenty stores it; reject anything that is not a plain address."""
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    return email


def split_name(name: str) -> tuple[str, str]:
    """First word as first name, the rest as last name: the usual CRM import rule."""
    first, _, last = name.strip().partition(" ")
    return first, last.strip()


def _trimmed(value: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _iso_string_only(value: Any) -> Any:
    # Lax datetime parsing would take 1700000000 as a date; the contract says ISO 8601 text.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string, e.g. 2026-11-26T10:00:00Z")
    return value


# Longer text is cut, not refused: a signup must not be lost to a long name. 191 is the width of
# Mautic's text columns (mautic/mautic: app/bundles/LeadBundle/Field/SchemaDefinition.php,
# MAX_VARCHAR_LENGTH); a churn reason goes to a long-text field.
TEXT_LIMITS = {"name": 191, "source": 191, "reason": 2000}


def _cut_to(limit: int) -> AfterValidator:
    return AfterValidator(lambda text: text[:limit].rstrip())


Email = Annotated[
    StrictStr,
    AfterValidator(normalise_email),
    Field(max_length=254, json_schema_extra={"format": "email"}, description="The user's email"),
]
Name = Annotated[
    StrictStr, Field(min_length=1), AfterValidator(_trimmed), _cut_to(TEXT_LIMITS["name"])
]
Source = Annotated[
    StrictStr, Field(min_length=1), AfterValidator(_trimmed), _cut_to(TEXT_LIMITS["source"])
]
Reason = Annotated[StrictStr, _cut_to(TEXT_LIMITS["reason"])]
Plan = Annotated[StrictStr, AfterValidator(_trimmed), Field(min_length=1, max_length=64)]
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_string_only),
    Field(description="When it happened: ISO 8601 with a time zone, e.g. 2026-11-26T10:00:00Z"),
]


class _Event(BaseModel):
    # Built on first use: a job validates one kind of event, and each build costs milliseconds
    # of every job's start-up.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def body(self) -> dict[str, Any]:
        """The JSON body the webhook carries for this event."""
        return self.model_dump(mode="json")


class UserRegistered(_Event):
    """A user signed up."""

    event: Literal["user.registered"]
    email: Email
    name: Name | None = Field(description="Full name; null when unknown; cut to 191 characters")
    plan: Plan = Field(description="The plan signed up for, e.g. free, pro")
    source: Source = Field(
        description="Where the signup came from, e.g. google-ads; cut to 191 characters"
    )
    marketingConsent: StrictBool = Field(description="Whether the user agreed to marketing email")
    timestamp: Timestamp


class UserUpgraded(_Event):
    """A user moved to another plan."""

    event: Literal["user.upgraded"]
    email: Email
    previousPlan: Plan
    newPlan: Plan
    timestamp: Timestamp


class UserChurned(_Event):
    """A user left."""

    event: Literal["user.churned"]
    email: Email
    reason: Reason | None = Field(
        description="Why the user left; null when unknown; cut to 2000 characters"
    )
    timestamp: Timestamp


# The one list of events: everything else (names, body fields, the JSON Schema) derives from it.
Event = UserRegistered | UserUpgraded | UserChurned
MODELS: dict[str, type[_Event]] = {
    typing.get_args(model.model_fields["event"].annotation)[0]: model
    for model in typing.get_args(Event)
}
EVENT_NAMES: tuple[str, ...] = tuple(MODELS)
# Every key a webhook body may carry, across the three events, in contract order.
BODY_FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys(name for model in MODELS.values() for name in model.model_fields)
)


def build_models() -> None:
    """Build the event models now, for a caller that validates on several threads: pydantic
    2.11.0-2.11.4 let a thread validate with a half-built deferred model (pydantic#11849)."""
    for model in MODELS.values():
        model.model_rebuild()


def event_key(event: Event) -> str:
    """The event's identity, from what it says: the same event sent twice (a duplicate webhook,
    a re-run, a later attempt) has the same key. A hash, so that no email is stored with it."""
    raw = f"{event.event}|{event.email}|{event.timestamp.isoformat()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def fields_of(event: str) -> tuple[str, ...]:
    """The body keys of one event, in contract order."""
    return tuple(MODELS[event].model_fields)


def parse_event(data: dict[str, Any]) -> Event:
    """Validate a webhook body; raise InvalidEvent naming each bad field, without echoing values."""
    name = data.get("event")
    if not isinstance(name, str) or name not in MODELS:
        got = "missing" if name is None else "got another value"
        raise InvalidEvent(None, [f"event: must be one of {', '.join(EVENT_NAMES)} ({got})"])
    try:
        return MODELS[name].model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise InvalidEvent(name, [_describe(err) for err in exc.errors()]) from None


def cut_fields(data: dict[str, Any]) -> list[str]:
    """A note for each text field of the body that parsing cut to its limit."""
    return [
        f"{field}: longer than {limit} characters; stored the first {limit}"
        for field, limit in TEXT_LIMITS.items()
        if isinstance(data.get(field), str) and len(data[field].strip()) > limit
    ]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the three event bodies, for senders in other languages."""
    adapter: TypeAdapter[Event] = TypeAdapter(Annotated[Event, Field(discriminator="event")])
    schema = adapter.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "User lifecycle event",
        "description": "The body of one webhook call to f/marketing/handle_user_event.",
        **schema,
    }


def _describe(err: Any) -> str:
    field = ".".join(str(part) for part in err["loc"]) or "body"
    kind = err["type"]
    if kind == "missing" or ("input" in err and err["input"] is None):
        return f"{field}: required"
    if kind == "extra_forbidden":
        return f"{field}: not a field of this event"
    if kind == "value_error":
        return f"{field}: {err['ctx']['error']}"
    return f"{field}: {err['msg'][0].lower()}{err['msg'][1:]}"
