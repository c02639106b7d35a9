"""Slack rules, the message they produce, and the ledger that keeps a post from repeating."""

from datetime import UTC, datetime, timedelta

import pytest
import respx

from f.marketing.lib.contract import event_key, parse_event
from f.marketing.lib.errors import ServiceError
from f.marketing.lib.routing import SlackRule
from f.marketing.lib.service_http import ServiceHttp
from f.marketing.lib.slack_ledger import LEDGER_PREFIX, Claim, SlackLedger
from f.marketing.lib.slack_message import build_message, matching_rules
from f.marketing.lib.windmill_api import WindmillApi
from tests.fakes import FakeWindmill

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


def test_the_event_key_names_the_event_not_the_person():
    key = event_key(SIGNUP)
    assert "jane" not in key and len(key) == 24
    assert key != event_key(UPGRADE)


@pytest.fixture
def workspace():
    with respx.mock(assert_all_called=False) as router:
        api = FakeWindmill()
        api.mount(router)
        resources = WindmillApi(
            ServiceHttp(
                "Windmill",
                f"{api.base_url}/api",
                headers={"Authorization": f"Bearer {api.token}"},
                sleep=lambda s: None,
            ),
            api.workspace,
        )
        yield api, resources


NOW = datetime(2026, 11, 26, tzinfo=UTC)


def ledger(resources, *, at=NOW, owner=None) -> SlackLedger:
    return SlackLedger(resources, now=lambda: at, owner=owner)


def test_a_claim_is_taken_once_and_a_posted_event_stays_posted(workspace):
    api, resources = workspace
    first, second = ledger(resources, owner="job-1"), ledger(resources, owner="job-2")
    assert first.claim("abc") is Claim.CLAIMED
    assert second.claim("abc") is Claim.BUSY, "the first job is posting it"
    first.settle("abc", "posted")
    assert second.claim("abc") is Claim.POSTED
    assert api.value(LEDGER_PREFIX + "abc")["state"] == "posted"
    assert api.resources[LEDGER_PREFIX + "abc"]["resource_type"] == "state"


@pytest.mark.parametrize("state", ["posted", "uncertain"])
def test_a_post_that_happened_or_may_have_is_never_claimed_again(workspace, state):
    _, resources = workspace
    ledger(resources, owner="job-1").claim("abc")
    ledger(resources, owner="job-1").settle("abc", state)
    assert ledger(resources, owner="job-2").claim("abc") is Claim.POSTED


def test_a_failed_post_or_an_abandoned_claim_can_be_taken_over(workspace):
    _, resources = workspace
    ledger(resources, owner="job-1").claim("failed")
    ledger(resources, owner="job-1").settle("failed", "failed")
    assert ledger(resources, owner="job-2").claim("failed") is Claim.CLAIMED

    ledger(resources, owner="job-1").claim("died")  # and the job never came back
    later = NOW + timedelta(minutes=11)
    assert ledger(resources, owner="job-2", at=later).claim("died") is Claim.CLAIMED


def test_a_failed_read_raises_and_leaves_every_other_entry_alone(workspace):
    api, resources = workspace
    for key in ("a", "b"):
        ledger(resources).claim(key)
        ledger(resources).settle(key, "posted")
    api.fault(500, times=10, method="GET")
    with pytest.raises(ServiceError, match="HTTP 500"):
        ledger(resources).claim("a")
    assert {p: e["value"]["state"] for p, e in api.resources.items()} == {
        LEDGER_PREFIX + "a": "posted",
        LEDGER_PREFIX + "b": "posted",
    }


def test_a_claim_the_job_may_not_write_is_an_error_not_a_silent_pass(workspace):
    api, resources = workspace
    api.folder_writable = False
    with pytest.raises(ServiceError, match="write access to the folder"):
        ledger(resources).claim("abc")


def test_old_entries_are_pruned_now_and_then(workspace):
    api, resources = workspace
    for key in ("0-old", "1-old", "2-new"):
        api.put(LEDGER_PREFIX + key, {"state": "posted"}, "state")
    for key in ("0-old", "1-old"):
        api.resources[LEDGER_PREFIX + key]["edited_at"] = "2026-10-01T00:00:00.000000Z"
    api.put("f/marketing/routing", {}, "c_marketing_routing")
    api.resources["f/marketing/routing"]["edited_at"] = "2020-01-01T00:00:00.000000Z"

    assert ledger(resources).prune("1abc") == 0, "only about one post in sixteen prunes"
    assert ledger(resources).prune("0abc") == 2
    assert set(api.resources) == {LEDGER_PREFIX + "2-new", "f/marketing/routing"}
