"""The event contract: what the handler and the emitter accept, and how they say no."""

import pytest

from f.marketing.lib.contract import UserChurned, UserRegistered, UserUpgraded, parse_event
from f.marketing.lib.errors import InvalidEvent

REGISTERED = {
    "event": "user.registered",
    "email": "jane@acme.com",
    "name": "Jane Doe",
    "plan": "pro",
    "source": "ads",
    "marketingConsent": True,
    "timestamp": "2026-11-26T10:00:00Z",
}


def problems(body: dict) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body)
    return str(caught.value)


def test_each_event_body_parses_into_its_model():
    assert isinstance(parse_event(REGISTERED), UserRegistered)
    upgraded = {
        "event": "user.upgraded",
        "email": "a@b.io",
        "previousPlan": "free",
        "newPlan": "pro",
        "timestamp": "2026-11-26T10:00:00+01:00",
    }
    assert isinstance(parse_event(upgraded), UserUpgraded)
    churned = {
        "event": "user.churned",
        "email": "a@b.io",
        "reason": None,
        "timestamp": "2026-11-26T10:00:00Z",
    }
    assert isinstance(parse_event(churned), UserChurned)


def test_email_is_trimmed_and_lowercased_like_twenty_stores_it():
    assert parse_event({**REGISTERED, "email": "  Jane.Doe@ACME.com "}).email == "jane.doe@acme.com"


def test_name_may_be_null():
    assert parse_event({**REGISTERED, "name": None}).name is None


@pytest.mark.parametrize(
    "email",
    ["", "jane", "jane@", "@acme.com", "te,st@user..email", "jane@acme", "a b@acme.com", 42],
)
def test_malformed_email_is_rejected_without_echoing_it(email):
    message = problems({**REGISTERED, "email": email})
    assert "email:" in message
    if isinstance(email, str) and email:
        assert email not in message


def test_unknown_event_names_the_field():
    assert "event: must be one of user.registered, user.upgraded, user.churned" in problems(
        {**REGISTERED, "event": "user.deleted"}
    )


def test_missing_event_is_rejected():
    assert "event:" in problems({k: v for k, v in REGISTERED.items() if k != "event"})


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("marketingConsent", "yes", "marketingConsent: input should be a valid boolean"),
        ("marketingConsent", None, "marketingConsent: required"),
        ("plan", 3, "plan: input should be a valid string"),
        ("plan", "  ", "plan: must not be empty"),
        ("timestamp", 1764151200, "timestamp: must be an ISO 8601 date-time"),
        ("timestamp", "2026-11-26T10:00:00", "timestamp: input should have timezone info"),
        ("timestamp", "yesterday", "timestamp:"),
    ],
)
def test_wrong_types_name_the_field(field, value, expected):
    assert expected in problems({**REGISTERED, field: value})


def test_every_problem_is_reported_at_once():
    message = problems(
        {"event": "user.upgraded", "email": "x", "timestamp": "2026-11-26T10:00:00Z"}
    )
    assert "email:" in message and "previousPlan: required" in message
    assert "newPlan: required" in message


def test_fields_of_another_event_are_refused():
    assert "plan: not a field of this event" in problems(
        {
            "event": "user.churned",
            "email": "a@b.io",
            "reason": None,
            "plan": "pro",
            "timestamp": "2026-11-26T10:00:00Z",
        }
    )


def test_body_round_trips_as_json():
    event = parse_event(REGISTERED)
    assert parse_event(event.body()) == event
