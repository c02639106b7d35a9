"""Slack rules, the message they produce, and the ledger that keeps a post from repeating."""

from datetime import UTC, datetime, timedelta

from f.marketing.config import SlackRule
from f.marketing.contract import parse_event
from f.marketing.notifications import Ledger, build_message, fingerprint, matching_rules

SIGNUP = parse_event(
    {
        "event": "user.registered",
        "email": "jane@acme.com",
        "name": None,
        "plan": "pro",
        "source": "partner",
        "marketingConsent": False,
        "timestamp": "2026-11-26T10:00:00Z",
    }
)
UPGRADE = parse_event(
    {
        "event": "user.upgraded",
        "email": "jane@acme.com",
        "previousPlan": "free",
        "newPlan": "business",
        "timestamp": "2026-11-26T10:00:00Z",
    }
)


def rule(**kwargs) -> SlackRule:
    return SlackRule(**{"name": "r", "events": ["user.registered"], **kwargs})


def test_a_rule_matches_on_event_plan_and_source():
    assert matching_rules(SIGNUP, [rule()]) != []
    assert matching_rules(SIGNUP, [rule(plans=["pro"])]) != []
    assert matching_rules(SIGNUP, [rule(plans=["business"])]) == []
    assert matching_rules(SIGNUP, [rule(sources=["partner"], plans=["pro"])]) != []
    assert matching_rules(SIGNUP, [rule(events=["user.churned"])]) == []


def test_upgrades_match_on_the_new_plan_and_never_on_a_source():
    assert matching_rules(UPGRADE, [rule(events=["user.upgraded"], plans=["business"])]) != []
    assert matching_rules(UPGRADE, [rule(events=["user.upgraded"], sources=["partner"])]) == []


def test_the_message_always_has_fallback_text_and_stays_within_block_limits():
    message = build_message(SIGNUP, [rule(name="paid signup")])
    assert message.text == "New signup: jane@acme.com on pro"
    assert message.rules == ("paid signup",)
    assert len(message.blocks) <= 50
    assert len(message.blocks[0]["text"]["text"]) <= 150
    assert all(len(f["text"]) <= 2000 for f in message.blocks[1]["fields"])


def test_a_long_churn_reason_is_cut_to_fit_a_field():
    churn = parse_event(
        {
            "event": "user.churned",
            "email": "jane@acme.com",
            "reason": "x" * 2000,
            "timestamp": "2026-11-26T10:00:00Z",
        }
    )
    message = build_message(churn, [rule(events=["user.churned"])])
    assert all(len(f["text"]) <= 2000 for f in message.blocks[1]["fields"])


def test_the_fingerprint_names_the_event_not_the_person():
    key = fingerprint(SIGNUP)
    assert "jane" not in key and len(key) == 24
    assert key != fingerprint(UPGRADE)


class Store:
    def __init__(self, value=None):
        self.value = value

    def load(self):
        return self.value

    def save(self, value):
        self.value = value


def test_the_ledger_remembers_and_forgets_after_thirty_days():
    store = Store()
    now = datetime(2026, 11, 26, tzinfo=UTC)
    ledger = Ledger(store.load, store.save, now=lambda: now)
    assert not ledger.seen("a")
    ledger.record("a")
    assert ledger.seen("a")

    later = Ledger(store.load, store.save, now=lambda: now + timedelta(days=31))
    later.record("b")
    assert set(store.value) == {"b"}


def test_the_ledger_is_bounded():
    store = Store({f"k{i}": "2026-11-26T00:00:00+00:00" for i in range(6000)})
    Ledger(store.load, store.save, now=lambda: datetime(2026, 11, 26, 1, tzinfo=UTC)).record("new")
    assert len(store.value) == 5000 and "new" in store.value
