"""Stripe's webhook, end to end: signed deliveries from the Stripe stand-in go through
f/marketing/stripe_events and change the stand-ins of Twenty, Mautic and Slack."""

import json
import time

import pytest

from f.marketing.lib.delivery_failures import DeliveryFailed
from f.marketing.lib.errors import (
    InvalidEvent,
    JobFailed,
    SetupIncomplete,
    SignatureRefused,
)
from f.marketing.stripe_events import main
from tests.conftest import run_as_webhook
from tests.conftest import run_event as handle_user_event
from tests.fakes import FakeStripe
from tests.job_runner import JobRunner
from tests.test_handle_user_event import EMAIL, registered

SECRET = "whsec_test_endpoint_secret"
OLD_SECRET = "whsec_test_secret_being_rolled"
SCRIPT = "f/marketing/stripe_events"


@pytest.fixture
def stripe(services, windmill) -> FakeStripe:
    fake = FakeStripe(signing_secrets=(SECRET,))
    fake.add_price("price_pro_monthly", "pro_monthly")
    fake.add_price("price_pro_yearly", "pro_yearly")
    fake.add_price("price_business", "business")
    fake.add_price("price_legacy")  # no lookup key, and not in the routing
    fake.mount(services.router)
    windmill.resources["f/marketing/stripe"] = {
        "signing_secret": SECRET,
        "api_key": fake.api_key,
        "api_base_url": fake.base_url,
    }
    windmill.resources["f/marketing/routing"]["stripe"] = {
        "prices": {"pro_monthly": "pro", "pro_yearly": "pro"}
    }
    windmill.write()
    return fake


@pytest.fixture
def jane(stripe, services, windmill) -> str:
    """Jane signed up on pro (the SaaS sent user.registered) and pays for it in Stripe."""
    handle_user_event(**registered())
    customer = stripe.add_customer("billing@acme.com", {"email": EMAIL})
    return stripe.subscribe(customer, "price_pro_monthly")["data"]["object"]["id"]


def deliver(stripe: FakeStripe, event: dict, **signing) -> dict:
    """One webhook delivery of the event, as Stripe makes it and Windmill hands it over."""
    raw, headers = stripe.delivery(event, **signing)
    return run_as_webhook(main, json.loads(raw), raw=raw, headers=headers)


def stripe_calls(services, path_part: str = "/v1/") -> list[str]:
    return [c for c in services.calls() if path_part in c]


def marketing_calls(services) -> list[str]:
    return [c for c in services.calls() if "/v1/" not in c]


def plan_everywhere(services) -> tuple[str, str]:
    person = services.twenty.person_by_email(EMAIL)
    contact = services.mautic.contact_by_email(EMAIL)
    return person["subscriptionPlan"], contact["fields"]["plan"]


# --- what each event does -------------------------------------------------------------------


def test_a_price_change_to_another_plan_is_a_plan_change_everywhere(stripe, services, jane):
    slack_before = len(services.slack.messages)
    result = deliver(stripe, stripe.change_price(jane, "price_business"))

    assert result["event"] == "user.upgraded" and result["ok"] is True
    assert result["stripe_type"] == "customer.subscription.updated"
    assert plan_everywhere(services) == ("business", "business")
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["id"] in services.mautic.segment_members[4]
    assert contact["id"] not in services.mautic.segment_members[3]
    assert contact["id"] in services.mautic.campaign_members[11]
    assert len(services.slack.messages) == slack_before + 1
    assert "pro → business" in services.slack.messages[-1]["text"]
    assert "stripe" in result["wm_labels"]


def test_a_downgrade_is_a_plan_change_too(stripe, services, jane):
    deliver(stripe, stripe.change_price(jane, "price_business"))
    deliver(stripe, stripe.change_price(jane, "price_pro_yearly"))
    assert plan_everywhere(services) == ("pro", "pro")


def test_a_price_change_within_the_same_plan_changes_nothing(stripe, services, jane):
    before = len(services.calls())
    result = deliver(stripe, stripe.change_price(jane, "price_pro_yearly"))
    assert result["skipped"] == "the plan stays pro"
    assert result["wm_labels"] == ["stripe", "no-plan-change"]
    assert len(services.calls()) == before, "no call at all"


def test_an_update_that_is_not_a_price_change_changes_nothing(stripe, services, jane):
    result = deliver(stripe, stripe.set_status(jane, "past_due"))
    assert result["skipped"] == "no price change (status changed)"
    assert marketing_calls(services)[-1].startswith("POST")  # the registration's last call


def test_an_unhandled_event_type_is_acknowledged_and_ignored(stripe, services):
    before = len(services.calls())
    event = stripe.other_event("invoice.paid", {"id": "in_1", "object": "invoice"})
    result = deliver(stripe, event)
    assert result == {
        "stripe_event": event["id"],
        "stripe_type": "invoice.paid",
        "ok": True,
        "skipped": "invoice.paid changes no plan: ignored",
        "notes": [],
        "wm_labels": ["stripe", "ignored"],
    }
    assert len(services.calls()) == before


def test_a_new_subscription_is_ignored_unless_the_routing_says_otherwise(
    stripe, services, windmill
):
    handle_user_event(**registered(plan="free"))
    customer = stripe.add_customer(EMAIL)
    created = stripe.subscribe(customer, "price_business")
    assert deliver(stripe, created)["wm_labels"] == ["stripe", "ignored"]
    assert plan_everywhere(services) == ("free", "free")

    windmill.resources["f/marketing/routing"]["stripe"]["on_subscribe"] = "plan_change"
    windmill.write()
    result = deliver(stripe, created)
    assert result["event"] == "user.upgraded"
    assert plan_everywhere(services) == ("business", "business")


def test_a_cancellation_moves_to_the_no_subscription_plan(stripe, services, jane):
    result = deliver(stripe, stripe.cancel(jane, feedback="too_expensive"))
    assert result["event"] == "user.upgraded"
    assert plan_everywhere(services) == ("free", "free")


def test_a_cancellation_is_a_churn_when_the_routing_says_so(stripe, services, windmill, jane):
    windmill.resources["f/marketing/routing"]["stripe"]["on_cancel"] = "churn"
    windmill.write()
    result = deliver(stripe, stripe.cancel(jane, feedback="too_expensive"))
    assert result["event"] == "user.churned"
    assert services.twenty.person_by_email(EMAIL)["churnReason"] == "too_expensive"
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["id"] in services.mautic.segment_members[5]


def test_a_cancellation_while_another_subscription_lives_takes_that_ones_plan(
    stripe, services, jane
):
    customer = stripe.subscriptions[jane]["customer"]
    stripe.subscribe(customer, "price_business")  # switched by subscribing anew
    result = deliver(stripe, stripe.cancel(jane))
    assert result["event"] == "user.upgraded"
    assert plan_everywhere(services) == ("business", "business")
    assert any("still subscribed" in note for note in result["notes"])


# --- the email -----------------------------------------------------------------------------


def test_the_email_comes_from_the_subscription_metadata_without_reading_the_customer(
    stripe, services, windmill
):
    handle_user_event(**registered())
    customer = stripe.add_customer("someone-else@acme.com")
    sub = stripe.subscribe(customer, "price_pro_monthly", metadata={"email": EMAIL})
    before = len(marketing_calls(services))
    sub_id = sub["data"]["object"]["id"]
    deliver(stripe, stripe.change_price(sub_id, "price_business"))
    assert plan_everywhere(services) == ("business", "business")
    assert stripe_calls(services) == [f"GET /v1/subscriptions/{sub_id}"], "the read-back only"
    assert len(marketing_calls(services)) - before == 8, "the upgrade's own steps"


def test_without_metadata_the_customer_is_read_once(stripe, services, windmill):
    handle_user_event(**registered())
    customer = stripe.add_customer(EMAIL)
    sub = stripe.subscribe(customer, "price_pro_monthly")["data"]["object"]["id"]
    result = deliver(stripe, stripe.change_price(sub, "price_business"))
    assert plan_everywhere(services) == ("business", "business")
    assert stripe_calls(services, "/v1/customers/") == [f"GET /v1/customers/{customer}"]
    assert "email read from the Stripe customer" in result["notes"]


def test_a_deleted_customer_fails_before_any_marketing_call(stripe, services, windmill):
    customer = stripe.add_customer(EMAIL)
    sub = stripe.subscribe(customer, "price_pro_monthly")["data"]["object"]["id"]
    stripe.delete_customer(customer)
    with pytest.raises(DeliveryFailed, match="deleted in Stripe"):
        deliver(stripe, stripe.change_price(sub, "price_business"))
    assert marketing_calls(services) == []


def test_a_key_without_the_customer_permission_fails_naming_it(stripe, services, windmill):
    customer = stripe.add_customer(EMAIL)
    sub = stripe.subscribe(customer, "price_pro_monthly")["data"]["object"]["id"]
    stripe.permissions.discard("rak_customer_read")
    with pytest.raises(DeliveryFailed) as caught:
        deliver(stripe, stripe.change_price(sub, "price_business"))
    message = str(caught.value)
    assert "Stripe read customer failed (HTTP 403)" in message
    assert "rak_customer_read" in message and stripe.api_key not in message
    assert "Not done: Twenty, Mautic and Slack" in message
    assert marketing_calls(services) == []


# --- prices --------------------------------------------------------------------------------


def test_an_unknown_price_fails_naming_it_before_any_marketing_call(stripe, services, jane):
    before = marketing_calls(services)
    with pytest.raises(DeliveryFailed) as caught:
        deliver(stripe, stripe.change_price(jane, "price_legacy"))
    message = str(caught.value)
    assert "price price_legacy (lookup key none) is not a plan" in message
    assert '"price_legacy": "<plan>"' in message
    assert marketing_calls(services) == before


def test_a_lookup_key_that_names_no_known_plan_is_an_unknown_price(stripe, services, jane):
    stripe.add_price("price_team", "team_monthly")
    with pytest.raises(DeliveryFailed, match="price price_team \\(lookup key team_monthly\\)"):
        deliver(stripe, stripe.change_price(jane, "price_team"))


# --- signatures: refused requests change nothing -----------------------------------------


def refused(services, stripe, raw: str, headers: dict) -> str:
    before = len(services.calls())
    with pytest.raises(DeliveryFailed) as caught:
        run_as_webhook(main, json.loads(raw), raw=raw, headers=headers)
    assert len(services.calls()) == before, "not one call to Stripe, Twenty, Mautic or Slack"
    message = str(caught.value)
    assert SECRET not in message and OLD_SECRET not in message
    return message


def test_a_tampered_body_is_refused(stripe, services, jane):
    raw, headers = stripe.delivery(stripe.change_price(jane, "price_business"))
    forged = raw.replace('"lookup_key": "business"', '"lookup_key": "pro_monthly"')
    assert forged != raw
    assert "does not match" in refused(services, stripe, forged, headers)
    assert plan_everywhere(services) == ("pro", "pro")


def test_a_request_signed_with_another_secret_is_refused(stripe, services, jane):
    event = stripe.change_price(jane, "price_business")
    raw, headers = stripe.delivery(event, secrets=["whsec_someone_elses_endpoint"])
    assert "does not match" in refused(services, stripe, raw, headers)


def test_a_stale_delivery_is_refused_as_a_replay(stripe, services, jane):
    event = stripe.change_price(jane, "price_business")
    raw, headers = stripe.delivery(event, at=time.time() - 301)
    assert "more than the 300 s allowed" in refused(services, stripe, raw, headers)


def test_a_request_without_signature_is_refused(stripe, services, jane):
    raw, headers = stripe.delivery(stripe.change_price(jane, "price_business"))
    del headers["stripe-signature"]
    assert "no Stripe-Signature header" in refused(services, stripe, raw, headers)


def test_a_webhook_url_without_raw_true_is_refused_saying_so(stripe, services, jane):
    raw, headers = stripe.delivery(stripe.change_price(jane, "price_business"))
    before = len(services.calls())
    with pytest.raises(DeliveryFailed, match=r"needs \?raw=true"):
        run_as_webhook(main, json.loads(raw), raw=None, headers=headers)  # no raw_string
    assert len(services.calls()) == before


@pytest.mark.parametrize("header_mode", ["all", "include_header"])
def test_the_signature_arrives_on_servers_old_and_new_with_include_header(
    stripe, services, windmill, jane, header_mode
):
    """Servers before PR #6931 pass a preprocessor only the headers named in include_header,
    renamed stripe_signature; newer ones pass every header by its own name."""
    windmill.api.header_mode = header_mode
    runner = JobRunner(windmill.api, advance=services.clock.advance)
    raw, headers = stripe.delivery(stripe.change_price(jane, "price_business"))
    query = {"include_header": "stripe-signature"}
    job = runner.webhook(SCRIPT, json.loads(raw), raw=raw, headers=headers, query=query)
    runner.run_all()
    assert runner.results[job]["success"], runner.results[job]
    assert plan_everywhere(services) == ("business", "business")


def test_without_include_header_an_old_server_passes_no_signature(stripe, services, windmill, jane):
    windmill.api.header_mode = "include_header"
    runner = JobRunner(windmill.api, advance=services.clock.advance)
    raw, headers = stripe.delivery(stripe.change_price(jane, "price_business"))
    job = runner.webhook(SCRIPT, json.loads(raw), raw=raw, headers=headers)
    runner.run_all()
    assert "Stripe-Signature" in runner.outcome(job)["result"]["error"]["message"]
    assert plan_everywhere(services) == ("pro", "pro")


@pytest.mark.parametrize(
    ("stripe_signs_with", "we_hold"),
    [
        ((SECRET, OLD_SECRET), {"signing_secret": SECRET, "previous_signing_secret": OLD_SECRET}),
        ((OLD_SECRET,), {"signing_secret": SECRET, "previous_signing_secret": OLD_SECRET}),
        ((SECRET,), {"signing_secret": SECRET, "previous_signing_secret": OLD_SECRET}),
        ((SECRET, OLD_SECRET), {"signing_secret": SECRET}),
    ],
    ids=["both-and-both", "old-only-yet", "new-only-already", "both-and-new"],
)
def test_while_the_secret_rolls_deliveries_pass(
    stripe, services, windmill, jane, stripe_signs_with, we_hold
):
    windmill.resources["f/marketing/stripe"].update(we_hold)
    windmill.write()
    stripe.signing_secrets = list(stripe_signs_with)
    deliver(stripe, stripe.change_price(jane, "price_business"))
    assert plan_everywhere(services) == ("business", "business")


def test_after_the_roll_the_old_secret_alone_is_refused(stripe, services, windmill, jane):
    raw, headers = stripe.delivery(
        stripe.change_price(jane, "price_business"), secrets=[OLD_SECRET]
    )
    assert "does not match" in refused(services, stripe, raw, headers)


# --- at least once, in any order -----------------------------------------------------------


def test_the_same_event_delivered_twice_acts_once(stripe, services, jane):
    event = stripe.change_price(jane, "price_business")
    first = deliver(stripe, event)
    slack_after_first = len(services.slack.messages)
    second = deliver(stripe, event)  # Stripe retries with a fresh signature

    assert first["ok"] and second["ok"]
    assert len(services.twenty.people) == 1 and len(services.mautic.contacts) == 1
    contact = services.mautic.contact_by_email(EMAIL)
    assert services.mautic.campaign_rotations[(11, contact["id"])] == 1
    assert len(services.slack.messages) == slack_after_first
    statuses = {s["action"]: s["status"] for s in second["steps"]}
    assert statuses["add to upgrade campaign 11"] == "skipped"
    assert statuses["notify (rule: upgrade)"] == "skipped"


def test_an_older_event_arriving_after_a_newer_one_does_not_roll_the_plan_back(
    stripe, services, jane
):
    to_business = stripe.change_price(jane, "price_business")
    back_to_pro = stripe.change_price(jane, "price_pro_yearly")
    deliver(stripe, to_business)  # arrives late: the subscription is on pro again
    deliver(stripe, back_to_pro)

    assert plan_everywhere(services) == ("pro", "pro")
    stale = deliver(stripe, to_business)  # and once more, after
    assert stale["wm_labels"] == ["stripe", "stale"]
    assert "is now on pro, not business" in stale["skipped"]
    assert plan_everywhere(services) == ("pro", "pro")


def test_after_out_of_order_plan_changes_the_contact_is_in_the_current_plans_segments_only(
    stripe, services, jane
):
    """pro -> business -> free, delivered newest first: the newer event (business -> free)
    applies and the older one (pro -> business) is skipped as stale, so no event ever names
    pro as the plan left. Pro's segment must go all the same."""
    stripe.add_price("price_free", "free")
    to_business = stripe.change_price(jane, "price_business")
    to_free = stripe.change_price(jane, "price_free")
    deliver(stripe, to_free)
    assert deliver(stripe, to_business)["wm_labels"] == ["stripe", "stale"]

    contact_id = services.mautic.contact_by_email(EMAIL)["id"]
    plan_segments = {2: "free", 3: "pro", 4: "business"}  # tests/conftest.py ROUTING
    member_of = {
        plan
        for sid, plan in plan_segments.items()
        if contact_id in services.mautic.segment_members[sid]
    }
    assert member_of == {"free"}
    assert plan_everywhere(services) == ("free", "free")


def test_events_delivered_as_they_happen_are_each_applied(stripe, services, jane):
    deliver(stripe, stripe.change_price(jane, "price_business"))
    assert plan_everywhere(services) == ("business", "business")
    deliver(stripe, stripe.change_price(jane, "price_pro_yearly"))
    assert plan_everywhere(services) == ("pro", "pro")


def test_an_update_arriving_after_the_cancellation_does_not_bring_the_plan_back(
    stripe, services, jane
):
    upgrade = stripe.change_price(jane, "price_business")
    cancel = stripe.cancel(jane)
    deliver(stripe, cancel)
    result = deliver(stripe, upgrade)
    assert "has ended since" in result["skipped"]
    assert plan_everywhere(services) == ("free", "free")


# --- later attempts, and runs by hand ------------------------------------------------------


def test_a_later_attempt_reads_the_event_back_and_does_not_roll_back(
    stripe, services, windmill, jane
):
    runner = JobRunner(windmill.api, advance=services.clock.advance)
    services.mautic.fault(status=503, times=4)  # Mautic down for the first attempt
    upgrade = stripe.change_price(jane, "price_business")
    raw, headers = stripe.delivery(upgrade)
    first = runner.webhook(SCRIPT, json.loads(raw), raw=raw, headers=headers)
    runner.run(runner.take())
    assert runner.results[first]["result"]["status"] == "retry-scheduled"
    [queued] = [j for j in windmill.api.jobs.values() if j["state"] == "queued"]
    assert queued["skip_preprocessor"] is True
    assert queued["args"] == {"payload": upgrade["id"]}, "no signature to go stale, no body"

    deliver(stripe, stripe.change_price(jane, "price_pro_yearly"))  # meanwhile, back to pro
    runner.run_all()
    later = runner.results[queued["id"]]["result"]
    assert later["wm_labels"] == ["stripe", "stale"]
    assert plan_everywhere(services) == ("pro", "pro")


def test_a_stripe_outage_queues_a_later_attempt_that_applies_the_event(
    stripe, services, windmill, jane
):
    runner = JobRunner(windmill.api, advance=services.clock.advance)
    stripe.fault(status=503, times=4, path_contains="/v1/subscriptions/")
    raw, headers = stripe.delivery(stripe.change_price(jane, "price_business"))
    first = runner.webhook(SCRIPT, json.loads(raw), raw=raw, headers=headers)
    runner.run_all()
    assert runner.results[first]["result"]["status"] == "retry-scheduled"
    assert plan_everywhere(services) == ("business", "business")
    assert sum(r["success"] for r in runner.results.values()) == 2


def test_a_pasted_event_is_read_back_from_stripe_and_only_stripes_copy_is_used(
    stripe, services, jane
):
    event = stripe.change_price(jane, "price_business")
    forged = json.loads(json.dumps(event))
    forged["data"]["object"]["metadata"] = {"email": "mallory@evil.example"}
    result = main(payload=json.dumps(forged))
    assert "event read back from Stripe" in result["notes"]
    assert plan_everywhere(services) == ("business", "business")
    assert services.twenty.person_by_email("mallory@evil.example") is None


def test_an_event_id_alone_can_be_run_by_hand(stripe, services, jane):
    event = stripe.change_price(jane, "price_business")
    assert main(payload=event["id"])["event"] == "user.upgraded"
    assert plan_everywhere(services) == ("business", "business")


def test_an_event_stripe_does_not_know_fails_before_any_marketing_call(stripe, services, jane):
    before = marketing_calls(services)
    with pytest.raises(JobFailed, match="No such event: 'evt_Forged000001'"):
        main(payload="evt_Forged000001")
    assert marketing_calls(services) == before


def test_skipping_the_preprocessor_does_not_skip_the_signature(stripe, services, jane):
    """Anyone holding the webhook's token may add ?skip_preprocessor=true and call main."""
    raw, _ = stripe.delivery(stripe.change_price(jane, "price_business"))
    before = len(services.calls())
    # Not a delivery (no trigger event stored with the job): it fails as itself.
    with pytest.raises(SignatureRefused):
        main(payload=raw, stripe_signature="t=1,v1=00", from_webhook=True)
    with pytest.raises(SignatureRefused, match="no Stripe-Signature header"):
        main(payload=raw, from_webhook=True)
    assert len(services.calls()) == before


def test_a_dry_run_on_a_pasted_event_writes_nothing(stripe, services, jane):
    event = stripe.change_price(jane, "price_business")
    before = marketing_calls(services)
    result = main(payload=json.dumps(event), dry_run=True)
    assert result["dry_run"] is True and result["event"] == "user.upgraded"
    assert any(c["request"].startswith("POST /rest/people") for c in result["would_call"])
    assert marketing_calls(services) == before
    customer = event["data"]["object"]["customer"]
    assert stripe_calls(services) == [f"GET /v1/customers/{customer}"], "a read, for the email"


@pytest.mark.parametrize(
    ("before", "field"),
    [("plan", "data.previous_attributes"), ({"items": []}, "data.previous_attributes.items")],
)
def test_a_pasted_event_of_another_shape_is_refused_naming_the_field(
    stripe, services, jane, before, field
):
    """Found by the type checker: these crashed as an unexpected AttributeError."""
    event = stripe.change_price(jane, "price_business")
    event["data"]["previous_attributes"] = before
    before_calls = marketing_calls(services)
    with pytest.raises(InvalidEvent, match=rf"{field}: not an object"):
        main(payload=json.dumps(event), dry_run=True)
    assert marketing_calls(services) == before_calls


def test_a_payload_that_is_not_a_stripe_event_is_refused(stripe, services):
    with pytest.raises(InvalidEvent, match="not a Stripe event"):
        main(payload='{"hello": "world"}')
    with pytest.raises(InvalidEvent, match="not a Stripe id"):
        main(payload="../customers/cus_1")
    assert services.calls() == []


# --- what finally fails: alerted, then replayed ------------------------------------------


def test_a_refused_delivery_is_alerted_and_replays_once_the_secret_is_fixed(
    stripe, services, windmill, jane
):
    """The secret was rolled in Stripe but not in Windmill: every delivery is refused."""
    runner = JobRunner(
        windmill.api, error_handler="f/marketing/on_failure", advance=services.clock.advance
    )
    stripe.signing_secrets = ["whsec_rolled_in_stripe_only"]
    raw, headers = stripe.delivery(stripe.change_price(jane, "price_business"))
    failed = runner.webhook(SCRIPT, json.loads(raw), raw=raw, headers=headers)
    runner.run_all()
    assert runner.outcome(failed)["success"] is False
    assert "token" not in windmill.api.jobs[failed]["args"], "the delivery keeps no query"
    [alert] = [m for m in services.slack.messages if "stripe_events failed" in m["text"]]
    assert "does not match" in alert["text"]
    assert plan_everywhere(services) == ("pro", "pro")

    windmill.resources["f/marketing/stripe"]["signing_secret"] = "whsec_rolled_in_stripe_only"
    windmill.write()
    replay = runner.webhook(
        "f/marketing/replay",
        {"since": "2026-11-29T00:00:00Z", "until": "2026-12-31T00:00:00Z", "confirm": True},
    )
    windmill.api.jobs[replay]["skip_preprocessor"] = True
    runner.run_all()
    listed = runner.results[replay]["result"]
    assert listed["counts"] == {"queued": 1}
    assert listed["jobs"][0]["script"] == SCRIPT
    assert plan_everywhere(services) == ("business", "business")


def test_an_event_that_fails_every_attempt_alerts_once_naming_it(stripe, services, windmill, jane):
    windmill.resources["f/marketing/routing"]["retries"] = {"delays": [60]}
    windmill.write()
    runner = JobRunner(
        windmill.api, error_handler="f/marketing/on_failure", advance=services.clock.advance
    )
    services.mautic.fault(503, times=10_000, path_contains="/contacts/new")
    raw, headers = stripe.delivery(stripe.change_price(jane, "price_business"))
    runner.webhook(SCRIPT, json.loads(raw), raw=raw, headers=headers)
    runner.run_all()
    outcomes = [r["success"] for r in runner.results.values()]
    assert outcomes == [True, False], "attempt 1 queued attempt 2, which gave up"
    [alert] = [m for m in services.slack.messages if "stripe_events failed" in m["text"]]
    assert "user.upgraded" in alert["text"] and EMAIL not in alert["text"]


# --- f/marketing/setup ---------------------------------------------------------------------


def test_setup_checks_what_the_stripe_key_may_read(stripe, services, windmill):
    from f.marketing.setup import main as setup

    checks = {f"{c['service']} {c['subject']}": c for c in setup()["checks"]}
    assert checks["windmill f/marketing/stripe"]["status"] == "ok"
    for kind in ("events", "subscriptions", "customers"):
        assert checks[f"stripe read {kind}"]["status"] == "ok"

    stripe.permissions.discard("rak_event_read")
    with pytest.raises(SetupIncomplete) as caught:
        setup()
    failed = {f"{c['service']} {c['subject']}": c for c in caught.value.result["checks"]}
    assert failed["stripe read events"]["status"] == "failed"
    assert failed["stripe read events"]["fix"].startswith("give the restricted key Events: Read")
    assert "rak_event_read" in failed["stripe read events"]["detail"]


def test_setup_without_stripe_says_so_and_passes(services, windmill):
    from f.marketing.setup import main as setup

    checks = {f"{c['service']} {c['subject']}": c for c in setup()["checks"]}
    stripe = checks["windmill f/marketing/stripe"]
    assert stripe["status"] == "warning" and "refuses Stripe's deliveries" in stripe["detail"]
    assert not any(key.startswith("stripe ") for key in checks)
