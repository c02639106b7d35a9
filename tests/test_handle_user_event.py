"""The webhook handler end to end, against stateful stand-ins of Twenty, Mautic and Slack.

Assertions are on what each service holds after the run, and on the job's result.
"""

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from f.marketing.handle_user_event import main as handler
from f.marketing.lib.delivery_failures import DeliveryFailed
from f.marketing.lib.errors import ConfigError, InvalidEvent, JobFailed
from tests.conftest import run_as_webhook
from tests.conftest import run_event as main

EMAIL = "jane.doe@acme.com"


def registered(**overrides):
    body = {
        "event": "user.registered",
        "email": EMAIL,
        "name": "Jane Doe",
        "plan": "pro",
        "source": "google-ads",
        "marketingConsent": True,
        "timestamp": "2026-11-26T10:00:00Z",
    }
    return {**body, **overrides}


def upgraded(**overrides):
    body = {
        "event": "user.upgraded",
        "email": EMAIL,
        "previousPlan": "pro",
        "newPlan": "business",
        "timestamp": "2026-11-27T10:00:00Z",
    }
    return {**body, **overrides}


def churned(**overrides):
    body = {
        "event": "user.churned",
        "email": EMAIL,
        "reason": "too expensive",
        "timestamp": "2026-12-20T16:45:00Z",
    }
    return {**body, **overrides}


def steps(result: dict) -> dict[str, tuple[str, str]]:
    return {f"{s['service']} {s['action']}": (s["status"], s["detail"]) for s in result["steps"]}


# --- user.registered ------------------------------------------------------------------------


def test_registered_with_consent_lands_everywhere(services, windmill):
    result = main(**registered())

    person = services.twenty.person_by_email(EMAIL)
    assert person["name"] == {"firstName": "Jane", "lastName": "Doe"}
    assert (person["subscriptionPlan"], person["signupSource"], person["marketingConsent"]) == (
        "pro",
        "google-ads",
        True,
    )
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["fields"]["firstname"] == "Jane"
    assert contact["fields"]["plan"] == "pro"
    assert contact["dnc"] == []
    assert contact["id"] in services.mautic.segment_members[1]  # active
    assert contact["id"] in services.mautic.segment_members[3]  # plan pro
    assert contact["id"] not in services.mautic.segment_members[2]
    assert services.mautic.campaign_members[10] == {contact["id"]}  # onboarding sequence
    assert len(services.slack.messages) == 1
    assert "New signup: Jane Doe on pro" in services.slack.messages[0]["text"]

    assert result["ok"] is True
    summary = steps(result)
    assert summary["twenty upsert person"][0] == "created"
    assert summary["mautic upsert contact"][0] == "created"
    assert summary["mautic add to onboarding campaign 10"][0] == "done"
    assert summary["slack notify (rule: paid signup)"][0] == "done"


def test_registered_without_consent_gets_no_segment_campaign_or_email(services, windmill):
    result = main(**registered(marketingConsent=False))

    assert services.twenty.person_by_email(EMAIL)["marketingConsent"] is False
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact is not None, "the contact exists, so sales and support can see it"
    assert [(d["channel"], d["reason"]) for d in contact["dnc"]] == [("email", 3)]
    assert all(contact["id"] not in members for members in services.mautic.segment_members.values())
    assert all(
        contact["id"] not in members for members in services.mautic.campaign_members.values()
    )
    summary = steps(result)
    assert summary["mautic add to segments 1, 3"] == ("skipped", "no marketing consent on record")
    assert summary["mautic add to onboarding campaign 10"][0] == "skipped"


def test_registered_on_a_free_plan_from_a_plain_source_posts_nothing(services, windmill):
    result = main(**registered(plan="free", source="organic"))
    assert services.slack.messages == []
    assert steps(result)["slack notify"] == ("skipped", "no Slack rule matched")
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["id"] in services.mautic.segment_members[2]


def test_a_source_rule_matches_on_the_source(services, windmill):
    main(**registered(plan="free", source="partner"))
    assert len(services.slack.messages) == 1
    assert "partner signup" in json.dumps(services.slack.messages[0])


def test_consent_given_later_lifts_only_our_own_do_not_contact(services, windmill):
    main(**registered(marketingConsent=False))
    main(**registered(marketingConsent=True, timestamp="2026-11-28T10:00:00Z"))

    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["dnc"] == []
    assert contact["id"] in services.mautic.campaign_members[10]


def test_an_unsubscribe_made_in_mautic_is_never_lifted(services, windmill):
    contact_id = services.mautic.add_contact(
        EMAIL, dnc=[{"channel": "email", "reason": 1, "comments": "User unsubscribed"}]
    )
    result = main(**registered(marketingConsent=True))

    contact = services.mautic.contacts[contact_id]
    assert [d["reason"] for d in contact["dnc"]] == [1]
    assert contact_id not in services.mautic.campaign_members[10]
    assert steps(result)["mautic lift do-not-contact"][0] == "skipped"


def test_a_name_with_slack_markup_cannot_ping_the_channel(services, windmill):
    main(**registered(name="<!channel> & co"))
    text = json.dumps(services.slack.messages[0])
    assert "<!channel>" not in text
    assert "&lt;!channel&gt; &amp; co" in text


# --- user.upgraded --------------------------------------------------------------------------


def test_upgraded_moves_plan_segments_and_starts_the_upgrade_sequence(services, windmill):
    main(**registered())
    result = main(**upgraded())

    assert services.twenty.person_by_email(EMAIL)["subscriptionPlan"] == "business"
    assert services.twenty.person_by_email(EMAIL)["name"]["firstName"] == "Jane"  # kept
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["fields"]["plan"] == "business"
    assert contact["id"] not in services.mautic.segment_members[3]
    assert contact["id"] in services.mautic.segment_members[4]
    assert contact["id"] in services.mautic.segment_members[1]  # still active
    assert contact["id"] in services.mautic.campaign_members[11]
    assert steps(result)["slack notify (rule: upgrade)"][0] == "done"
    assert "Upgrade: jane.doe@acme.com pro → business" in services.slack.messages[-1]["text"]


def test_upgraded_without_consent_on_record_gets_no_marketing(services, windmill):
    main(**registered(marketingConsent=False))
    main(**upgraded())

    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["fields"]["plan"] == "business"
    assert contact["id"] not in services.mautic.segment_members[4]
    assert contact["id"] not in services.mautic.campaign_members[11]


def test_upgraded_for_someone_mautic_never_saw_is_kept_out_of_marketing(services, windmill):
    result = main(**upgraded())

    contact = services.mautic.contact_by_email(EMAIL)
    assert [d["reason"] for d in contact["dnc"]] == [3]
    assert contact["id"] not in services.mautic.campaign_members[11]
    assert steps(result)["mautic mark do-not-contact"][0] == "done"
    assert services.twenty.person_by_email(EMAIL)["subscriptionPlan"] == "business"


# --- user.churned ---------------------------------------------------------------------------


def test_churned_records_the_reason_and_moves_to_the_churned_segment(services, windmill):
    main(**registered())
    result = main(**churned())

    person = services.twenty.person_by_email(EMAIL)
    assert person["churnReason"] == "too expensive"
    assert person["churnedAt"].startswith("2026-12-20T16:45:00")
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["fields"]["churn_reason"] == "too expensive"
    assert contact["id"] not in services.mautic.segment_members[1]
    assert contact["id"] not in services.mautic.segment_members[3]
    assert contact["id"] in services.mautic.segment_members[5]
    assert contact["id"] in services.mautic.campaign_members[12]
    assert steps(result)["mautic remove from active and plan segments 1, 2, 3, 4"] == (
        "done",
        "removed from 1, 3",
    )


def test_churned_without_consent_gets_no_win_back(services, windmill):
    main(**registered(marketingConsent=False))
    main(**churned())
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["id"] not in services.mautic.campaign_members[12]
    assert contact["id"] not in services.mautic.segment_members[5]


@pytest.mark.parametrize(
    "back",
    [registered(timestamp="2027-01-05T10:00:00Z"), upgraded(timestamp="2027-01-05T10:00:00Z")],
    ids=lambda b: b["event"],
)
def test_a_returning_user_leaves_the_churned_segment_and_the_win_back(services, windmill, back):
    main(**registered())
    main(**churned())
    contact_id = services.mautic.contact_by_email(EMAIL)["id"]
    assert contact_id in services.mautic.campaign_members[12]

    main(**back)
    assert contact_id not in services.mautic.segment_members[5]
    assert contact_id not in services.mautic.campaign_members[12], "win-back mails stop"
    assert contact_id in services.mautic.segment_members[1]


def test_a_user_who_never_churned_is_not_taken_out_of_the_win_back(services, windmill):
    main(**registered())
    result = main(**upgraded())
    assert steps(result)["mautic remove from win-back campaign 12"] == (
        "skipped",
        "not in a churned segment",
    )
    assert services.mautic.calls(path_contains="/campaigns/12/") == []


# --- campaign membership --------------------------------------------------------------------


def test_membership_is_read_from_the_campaign_so_an_unpublished_one_is_not_restarted(
    services, windmill
):
    """GET /api/contacts/{id}/campaigns hides unpublished campaigns; re-adding a member of one
    that allows restarts would send the sequence again once it is published."""
    main(**registered())
    services.mautic.campaigns[10]["published"] = False
    result = main(**registered())
    contact_id = services.mautic.contact_by_email(EMAIL)["id"]
    assert services.mautic.campaign_rotations[(10, contact_id)] == 1
    assert steps(result)["mautic add to onboarding campaign 10"] == (
        "skipped",
        "already in the campaign",
    )


def test_membership_is_known_without_access_to_the_campaign_so_it_never_restarts(
    services, windmill
):
    """The campaign_leads stats list every member for any API user who may view contacts,
    whoever built the campaign and whether it is published."""
    main(**registered())
    services.mautic.permissions.discard("campaign:campaigns:viewother")
    services.mautic.campaigns[10].update(published=False, owner="someone-else")
    result = main(**registered())
    contact_id = services.mautic.contact_by_email(EMAIL)["id"]
    assert services.mautic.campaign_rotations[(10, contact_id)] == 1, "no second sequence"
    assert steps(result)["mautic add to onboarding campaign 10"] == (
        "skipped",
        "already in the campaign",
    )


@pytest.mark.parametrize("mautic6", [False, True], ids=["mautic5", "mautic6"])
def test_campaign_membership_is_checked_alike_on_mautic_5_and_6(services, windmill, mautic6):
    """Mautic 6 answers a `where` on GET /api/campaigns/{id}/contacts with 400; every event
    that checks membership (a re-registration, an upgrade, a churn) works on both."""
    services.mautic.mautic6 = mautic6
    main(**registered())
    main(**registered())  # again: checks onboarding membership
    main(**upgraded())
    main(**upgraded())
    main(**churned())
    main(**churned())
    contact_id = services.mautic.contact_by_email(EMAIL)["id"]
    rotations = {cid: services.mautic.campaign_rotations[(cid, contact_id)] for cid in (10, 11, 12)}
    assert rotations == {10: 1, 11: 1, 12: 1}
    assert services.mautic.campaign_members[12] == {contact_id}


@pytest.mark.parametrize(
    "change",
    [{"published": False}, {"global": False}],
    ids=["unpublished", "not-visible-to-others"],
)
def test_a_segment_the_api_user_may_not_use_fails_the_job_saying_why(services, windmill, change):
    services.mautic.segments[3].update(change)
    services.mautic.permissions.discard("lead:lists:viewother")
    with pytest.raises(JobFailed) as caught:
        main(**registered())
    message = str(caught.value)
    assert "add to segments 1, 3 failed: add to segment 3 (HTTP 403)" in message
    assert "segment 3 is unpublished, or the Mautic API user may not use it" in message
    assert "Segments: View Others" in message


# --- blanks ---------------------------------------------------------------------------------


def test_a_one_word_name_keeps_the_stored_last_name_in_both(services, windmill):
    main(**registered())
    main(**registered(name="Janet", timestamp="2026-11-28T10:00:00Z"))
    person = services.twenty.person_by_email(EMAIL)
    contact = services.mautic.contact_by_email(EMAIL)
    assert person["name"] == {"firstName": "Janet", "lastName": "Doe"}
    assert (contact["fields"]["firstname"], contact["fields"]["lastname"]) == ("Janet", "Doe")


def test_a_churn_without_reason_keeps_the_stored_reason_in_both(services, windmill):
    main(**registered())
    main(**churned())
    main(**churned(reason=None, timestamp="2027-02-01T10:00:00Z"))
    person = services.twenty.person_by_email(EMAIL)
    contact = services.mautic.contact_by_email(EMAIL)
    assert person["churnReason"] == contact["fields"]["churn_reason"] == "too expensive"
    assert person["churnedAt"].startswith("2027-02-01T10:00:00")


# --- idempotency ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", [registered(), upgraded(), churned()], ids=lambda b: b["event"])
def test_the_same_event_twice_creates_nothing_twice(services, windmill, body):
    if body["event"] != "user.registered":
        main(**registered())
    main(**body)
    people, contacts = dict(services.twenty.people), dict(services.mautic.contacts)
    members = {k: set(v) for k, v in services.mautic.segment_members.items()}
    rotations = dict(services.mautic.campaign_rotations)
    posted = len(services.slack.messages)

    second = main(**body)

    assert len(services.twenty.people) == len(people) == 1
    assert len(services.mautic.contacts) == len(contacts) == 1
    assert {k: set(v) for k, v in services.mautic.segment_members.items()} == members
    assert services.mautic.campaign_rotations == rotations, "no email sequence restarted"
    assert len(services.slack.messages) == posted, "no second Slack message"
    assert second["ok"] is True


def test_twenty_events_run_at_once_each_delivered_twice_post_twenty_messages(services, windmill):
    bodies = [
        registered(email=f"user{i}@acme.com", timestamp=f"2026-11-26T10:{i:02d}:00Z")
        for i in range(20)
    ]
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(lambda body: main(**body), bodies + bodies))

    assert all(r["ok"] for r in results)
    posted = [json.dumps(m["blocks"]) for m in services.slack.messages]
    assert len(posted) == 20 == len(set(posted))
    assert len(windmill.ledger()) == 20
    assert {entry["state"] for entry in windmill.ledger().values()} == {"posted"}


def test_a_ledger_the_job_may_not_write_is_reported_and_the_alert_still_posted(services, windmill):
    windmill.api.folder_writable = False
    result = main(**registered())
    assert len(services.slack.messages) == 1
    assert any(
        "Slack ledger unavailable" in note and "write access to the folder" in note
        for note in result["notes"]
    )


def test_a_ledger_record_that_fails_is_reported(services, windmill):
    windmill.api.fault(503, times=10, method="POST", path_contains="/update_value/")
    result = main(**registered())
    assert len(services.slack.messages) == 1
    assert any("could not record that this event was posted" in n for n in result["notes"])


def test_a_re_run_after_a_crash_finishes_the_job_without_repeating_it(services, windmill):
    services.mautic.fault(status=503, times=4, path_contains="/campaigns/10/")
    assert "add to onboarding campaign 10" in main(**registered())["reason"]
    assert services.slack.messages == []

    main(**registered())
    contact = services.mautic.contact_by_email(EMAIL)
    assert services.mautic.campaign_rotations[(10, contact["id"])] == 1
    assert len(services.slack.messages) == 1


# --- round trips ----------------------------------------------------------------------------


def test_a_job_reads_the_slack_resource_only_when_a_rule_may_post(services, windmill):
    """Windmill calls are a job's fixed cost: a free signup matches no Slack rule, so its job
    reads Twenty's, Mautic's and the routing's resources and the rate-limit line, not Slack's."""
    main(**registered(plan="free"))
    reads = [r.url.path.split("get_value_interpolated/")[1]
             for r in windmill.api.calls("GET", "get_value_interpolated")]  # fmt: skip
    assert reads == [
        "f/marketing/twenty", "f/marketing/mautic", "f/marketing/routing",
        "f/marketing/rate_slots/twenty",
    ]  # fmt: skip
    assert services.slack.messages == []

    main(**registered(email="paid@example.com"))  # a paid signup: the rule may post
    reads = windmill.api.calls("GET", "get_value_interpolated")[4:]
    assert "f/marketing/slack" in [r.url.path.split("get_value_interpolated/")[1] for r in reads]
    assert len(services.slack.messages) == 1


def test_calls_per_event(services, windmill):
    """The budget of calls per event; each upsert is one call, never a look-up-then-create."""
    slack = "POST /services/T000TEST/B000TEST/s3cr3tW3bh00kT0k3n"
    main(**registered())
    assert services.calls() == [
        "POST /rest/people",
        "POST /api/contacts/new",
        "POST /api/segments/1/contact/1/add",
        "POST /api/segments/3/contact/1/add",
        "POST /api/campaigns/10/contact/1/add",
        slack,
    ]
    before = len(services.calls())

    main(**upgraded())
    assert services.calls()[before:] == [
        "POST /rest/people",
        "POST /api/contacts/new",
        "GET /api/contacts/1/segments",
        "POST /api/segments/3/contact/1/remove",
        "POST /api/segments/4/contact/1/add",
        "GET /api/stats/campaign_leads",
        "POST /api/campaigns/11/contact/1/add",
        slack,
    ]
    before = len(services.calls())

    main(**churned())
    assert services.calls()[before:] == [
        "POST /rest/people",
        "POST /api/contacts/new",
        "GET /api/contacts/1/segments",
        "POST /api/segments/1/contact/1/remove",
        "POST /api/segments/4/contact/1/remove",
        "POST /api/segments/5/contact/1/add",
        "GET /api/stats/campaign_leads",
        "POST /api/campaigns/12/contact/1/add",
        slack,
    ]
    before = len(services.calls())

    main(**registered(timestamp="2027-01-05T10:00:00Z"))  # back after churning
    assert services.calls()[before:] == [
        "POST /rest/people",
        "POST /api/contacts/new",
        "GET /api/contacts/1/segments",
        "POST /api/segments/5/contact/1/remove",
        "POST /api/campaigns/12/contact/1/remove",
        "POST /api/segments/1/contact/1/add",
        "POST /api/segments/3/contact/1/add",
        "GET /api/stats/campaign_leads",
        slack,
    ]


def test_registration_without_consent_costs_three_calls(services, windmill):
    main(**registered(marketingConsent=False, plan="free", source="organic"))
    assert services.calls() == ["POST /rest/people", "GET /api/contacts", "POST /api/contacts/new"]


# --- bad input and dry run ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (registered(event="user.deleted"), "event: must be one of"),
        (registered(email="not-an-email"), "email: not a valid email address"),
        (registered(email=None), "email:"),
        (registered(marketingConsent=None), "marketingConsent: required"),
        (registered(plan=None), "plan: required"),
        (upgraded(newPlan=""), "newPlan: required"),
        (churned(timestamp="last tuesday"), "timestamp:"),
        (registered(event=["user.registered"]), "event: must be one of"),
        (registered(event={"name": "user.registered"}), "event: must be one of"),
        (registered(timestamp=0), "timestamp: must be an ISO 8601 date-time string"),
        (registered(timestamp=False), "timestamp: must be an ISO 8601 date-time string"),
        (registered(timestamp=[]), "timestamp: must be an ISO 8601 date-time string"),
        (churned(timestamp={}), "timestamp: must be an ISO 8601 date-time string"),
    ],
)
def test_bad_input_fails_before_any_call(services, windmill, body, expected):
    with pytest.raises(InvalidEvent, match=expected):
        main(**body)
    assert services.total_calls == 0


@pytest.mark.parametrize("via", ["form", "webhook"])
def test_an_error_never_echoes_the_value_it_refuses(services, windmill, via):
    body = registered(event="user.deleted-jane@acme.com")
    with pytest.raises((InvalidEvent, DeliveryFailed)) as caught:
        main(**body) if via == "form" else run_as_webhook(handler, body)
    assert "jane" not in str(caught.value) and "deleted" not in str(caught.value)
    assert "event: must be one of" in str(caught.value)


def test_a_long_name_or_source_is_cut_to_fit_and_noted_not_refused(services, windmill):
    long_name = "Jane " + "x" * 300
    result = main(**registered(name=long_name, source="s" * 250))

    person = services.twenty.person_by_email(EMAIL)
    contact = services.mautic.contact_by_email(EMAIL)
    assert person["name"]["lastName"] == contact["fields"]["lastname"] == "x" * 186
    assert person["signupSource"] == contact["fields"]["signup_source"] == "s" * 191
    assert "name: longer than 191 characters; stored the first 191" in result["notes"]
    assert "source: longer than 191 characters; stored the first 191" in result["notes"]


def test_a_missing_resource_fails_before_any_call(services, windmill):
    del windmill.resources["f/marketing/mautic"]
    windmill.write()
    with pytest.raises(ConfigError, match=r"f/marketing/mautic .*c_mautic"):
        main(**registered())
    assert services.total_calls == 0


def test_a_resource_the_job_cannot_read_fails_before_any_call_saying_so(services, windmill):
    windmill.api.unreadable.add("f/marketing/mautic")
    with pytest.raises(ConfigError) as caught:
        main(**registered())
    assert "f/marketing/mautic could not be read" in str(caught.value)
    assert "HTTP 401" in str(caught.value) and "may not access it" in str(caught.value)
    assert services.total_calls == 0


@pytest.mark.parametrize("failure", ["unreadable", "server-error"])
def test_a_slack_resource_that_cannot_be_read_is_a_slack_failure_not_no_slack(
    services, windmill, failure
):
    if failure == "unreadable":
        windmill.api.unreadable.add("f/marketing/slack")
    else:
        windmill.api.fault(500, times=10, path_contains="/f/marketing/slack")
    result = main(**registered())
    status, detail = steps(result)["slack notify"]
    assert status == "failed" and "f/marketing/slack could not be read" in detail
    assert "slack-failed" in result["wm_labels"]
    assert services.mautic.contact_by_email(EMAIL) is not None


def test_no_slack_resource_means_no_slack(services, windmill):
    del windmill.resources["f/marketing/slack"]
    windmill.write()
    result = main(**registered())
    assert steps(result)["slack notify"] == ("skipped", "no Slack resource configured")
    assert result["wm_labels"] == ["user.registered"]


def test_a_plan_with_no_twenty_option_fails_before_any_call(services, windmill):
    windmill.resources["f/marketing/routing"]["fields"] = {"twenty_plan_values": {"pro": "PRO"}}
    windmill.write()
    with pytest.raises(ConfigError, match="no entry for plan 'enterprise'"):
        main(**registered(plan="enterprise"))
    assert services.total_calls == 0


def test_plan_values_are_mapped_for_a_twenty_select_field(services, windmill):
    windmill.resources["f/marketing/routing"]["fields"] = {"twenty_plan_values": {"pro": "PRO"}}
    windmill.write()
    main(**registered())
    assert services.twenty.person_by_email(EMAIL)["subscriptionPlan"] == "PRO"
    assert services.mautic.contact_by_email(EMAIL)["fields"]["plan"] == "pro"


@pytest.mark.parametrize("body", [registered(), upgraded(), churned()], ids=lambda b: b["event"])
def test_dry_run_lists_the_calls_and_makes_none(services, windmill, body):
    result = main(**body, dry_run=True)
    assert services.total_calls == 0
    assert result["dry_run"] is True
    planned = [(c["service"], c["request"]) for c in result["would_call"]]
    assert planned[:2] == [
        ("twenty", "POST /rest/people?upsert=true"),
        ("mautic", "POST /api/contacts/new"),
    ]
    assert result["would_call"][-1]["service"] == "slack"


@pytest.mark.parametrize(
    "body",
    [registered(marketingConsent=False, name="Jane"), upgraded(), churned()],
    ids=["registered-no-consent", "upgraded", "churned"],
)
def test_the_dry_run_shows_the_bodies_the_real_run_sends(services, windmill, body):
    planned = {
        step["request"].split(", then ")[-1]: step["body"]
        for step in main(**body, dry_run=True)["would_call"]
        if "body" in step
    }
    main(**body)
    sent = {
        f"{r.method} {r.url.path}": json.loads(r.content)
        for fake in (services.twenty, services.mautic)
        for r in fake.requests
        if r.method == "POST"
    }
    assert planned["POST /rest/people?upsert=true"] == sent["POST /rest/people"]
    assert planned["POST /api/contacts/new"] == sent["POST /api/contacts/new"]
    if body["event"] != "user.registered":
        contact_id = services.mautic.contact_by_email(EMAIL)["id"]
        dnc_add = sent[f"POST /api/contacts/{contact_id}/dnc/email/add"]
        assert planned["POST /api/contacts/{id}/dnc/email/add"] == dnc_add


def test_empty_form_fields_count_as_not_given(services, windmill):
    main(**registered(name="", timestamp=""), previousPlan="", newPlan="", reason="")
    assert services.twenty.person_by_email(EMAIL)["name"] == {"firstName": "", "lastName": ""}


def test_a_manual_run_without_timestamp_uses_the_job_start(services, windmill):
    result = main(**{k: v for k, v in registered().items() if k != "timestamp"})
    assert result["notes"] == ["timestamp not given: used the job's start time"]


# --- result and logs ------------------------------------------------------------------------


def test_result_and_logs_carry_no_secret(services, windmill, caplog):
    services.slack.fault(status=503, times=10)
    with caplog.at_level(logging.DEBUG):
        result = main(**registered())
    dumped = json.dumps(result) + caplog.text
    for secret in (
        services.twenty.api_key,
        services.mautic.password,
        "s3cr3tW3bh00kT0k3n",
        "hooks.slack.com",
    ):
        assert secret not in dumped
    assert steps(result)["slack notify (rule: paid signup)"][0] == "failed"


def test_logs_say_what_happened_not_to_whom(services, windmill, caplog):
    with caplog.at_level(logging.INFO, logger="f.marketing"):
        main(**registered())
    assert "twenty upsert person: created" in caplog.text
    assert EMAIL not in caplog.text and "Jane" not in caplog.text


def test_the_job_is_labelled_for_the_runs_page(services, windmill):
    assert main(**registered())["wm_labels"] == ["user.registered"]


# --- as Windmill calls it -------------------------------------------------------------------


@pytest.mark.parametrize("example", ["user_registered", "user_upgraded", "user_churned"], ids=str)
def test_the_example_webhook_bodies_run_as_windmill_passes_them(services, windmill, example):
    body = json.loads(Path(f"scripts/examples/{example}.json").read_text())
    result = run_as_webhook(handler, body)
    assert result["ok"] is True
    assert services.twenty.person_by_email(body["email"]) is not None


def test_a_webhook_body_cannot_turn_on_dry_run_or_bring_its_own_resources(services, windmill):
    """Only the event's fields pass the preprocessor: the resources stay the workspace's."""
    elsewhere = "https://hooks.slack.com/services/T666/B666/elsewhere"
    body = registered() | {
        "dry_run": True,
        "slack": {"webhook_url": elsewhere},
        "mautic": {"base_url": "https://mautic.attacker.test", "username": "u", "password": "p"},
    }
    result = run_as_webhook(handler, body)

    assert result["ok"] is True and "dry_run" not in result
    assert services.mautic.contact_by_email(EMAIL) is not None
    assert len(services.slack.messages) == 1
    assert not [c for c in services.calls() if "T666" in c or "attacker" in c]


def test_a_manual_run_keeps_its_dry_run_switch(services, windmill):
    assert main(**registered(), dry_run=True)["dry_run"] is True
    assert services.total_calls == 0


@pytest.mark.parametrize("body", [["user.registered"], "user.registered", None], ids=str)
def test_a_webhook_body_that_is_not_an_object_fails_before_any_call(services, windmill, body):
    with pytest.raises(DeliveryFailed, match="payload: must be a JSON object"):
        run_as_webhook(handler, body)
    assert services.total_calls == 0


def test_a_webhook_body_without_name_or_with_extra_keys_is_fine(services, windmill):
    body = {k: v for k, v in registered().items() if k != "name"} | {"utm": "x", "id": "e1"}
    assert run_as_webhook(handler, body)["ok"] is True
    assert services.twenty.person_by_email(EMAIL)["name"]["firstName"] == ""
