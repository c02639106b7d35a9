"""Marketing consent in Mautic: who may be emailed, decided from what is on record.

Mautic rewrites an email do-not-contact added over another (a bounce becomes ours) unless it
is an unsubscribe, and a boolean `false` overwrites a stored `true`; the stand-in does both.
"""

import pytest

from f.marketing.lib.consent import (
    NO_CONSENT_COMMENT,
    Consent,
    lifts_dnc,
    may_email,
    with_dnc_on_create,
)
from f.marketing.lib.mautic_client import Contact
from tests.conftest import run_event as main
from tests.test_handle_user_event import EMAIL, churned, registered, steps, upgraded

BOUNCE = {"channel": "email", "reason": 2, "comments": "Hard bounce: mailbox does not exist"}
UNSUBSCRIBE = {"channel": "email", "reason": 1, "comments": "User unsubscribed"}


def dnc(services) -> list[tuple[int, str]]:
    contact = services.mautic.contact_by_email(EMAIL)
    return [(entry["reason"], entry["comments"]) for entry in contact["dnc"]]


def in_any_segment_or_campaign(services) -> bool:
    contact_id = services.mautic.contact_by_email(EMAIL)["id"]
    members = [
        *services.mautic.segment_members.values(),
        *services.mautic.campaign_members.values(),
    ]
    return any(contact_id in m for m in members)


@pytest.mark.parametrize("entry", [BOUNCE, UNSUBSCRIBE], ids=["bounce", "unsubscribe"])
def test_a_do_not_contact_that_is_not_ours_is_never_rewritten_nor_lifted(services, windmill, entry):
    services.mautic.add_contact(EMAIL, dnc=[entry])

    first = main(**registered(marketingConsent=False))
    assert dnc(services) == [(entry["reason"], entry["comments"])], "not rewritten as ours"
    assert "kept" in steps(first)["mautic upsert contact"][1]

    second = main(**registered(marketingConsent=True, timestamp="2026-11-28T10:00:00Z"))
    assert dnc(services) == [(entry["reason"], entry["comments"])], "not lifted"
    assert not in_any_segment_or_campaign(services)
    assert steps(second)["mautic lift do-not-contact"][0] == "skipped"


def test_a_new_contact_without_consent_is_created_already_marked(services, windmill):
    main(**registered(marketingConsent=False))
    created = services.mautic.calls(method="POST", path_contains="/contacts/new")
    assert len(created) == 1 and b'"doNotContact"' in created[0].content
    assert dnc(services) == [(3, NO_CONSENT_COMMENT)]
    assert services.mautic.calls(path_contains="/dnc/") == []


@pytest.mark.parametrize("body", [upgraded(), churned()], ids=lambda b: b["event"])
def test_a_contact_created_by_a_run_whose_answer_was_lost_still_ends_on_do_not_contact(
    services, windmill, body
):
    """Mautic creates the contact, the answer is lost, the retry finds it existing."""
    services.mautic.fault(status=502, applied=True, path_contains="/contacts/new")
    main(**body)
    assert dnc(services) == [(3, NO_CONSENT_COMMENT)]
    assert not in_any_segment_or_campaign(services)


@pytest.mark.parametrize("body", [upgraded(), churned()], ids=lambda b: b["event"])
def test_a_re_run_after_a_failed_run_marks_the_contact_it_created(services, windmill, body):
    services.mautic.fault(status=503, times=4, path_contains="/dnc/email/add")
    first = main(**body)
    assert first["status"] == "retry-scheduled"
    assert first["reason"] == (
        f"{body['event']}: mautic mark do-not-contact failed: add do-not-contact "
        "(HTTP 503 after 4 attempts): Service Unavailable"
    )
    assert dnc(services) == []

    main(**body)
    assert dnc(services) == [(3, NO_CONSENT_COMMENT)]
    assert not in_any_segment_or_campaign(services)


def test_a_contact_with_consent_on_record_gets_no_do_not_contact(services, windmill):
    main(**registered())
    result = main(**upgraded())
    assert dnc(services) == []
    assert steps(result)["mautic mark do-not-contact"] == ("skipped", "marketing consent on record")
    assert services.mautic.contact_by_email(EMAIL)["id"] in services.mautic.campaign_members[11]


def test_a_contact_mautic_had_without_any_consent_record_is_marked_at_its_next_event(
    services, windmill
):
    """Imported or made by a form, with the consent field never set: nothing says yes."""
    services.mautic.add_contact(EMAIL, firstname="Jane")
    main(**upgraded())
    assert dnc(services) == [(3, NO_CONSENT_COMMENT)]
    assert not in_any_segment_or_campaign(services)


def test_a_later_registration_without_consent_withdraws_it(services, windmill):
    """A boolean false overwrites a stored true in Mautic, and the contact is marked."""
    main(**registered())
    main(**registered(marketingConsent=False, timestamp="2026-11-28T10:00:00Z"))

    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["fields"]["marketing_consent"] is False
    assert dnc(services) == [(3, NO_CONSENT_COMMENT)]
    services.mautic.campaigns[11]["allow_restart"] = True
    main(**upgraded())
    assert contact["id"] not in services.mautic.campaign_members[11]


def test_consent_given_after_our_own_do_not_contact_lifts_it(services, windmill):
    main(**registered(marketingConsent=False))
    result = main(**registered(timestamp="2026-11-28T10:00:00Z"))
    assert dnc(services) == []
    assert steps(result)["mautic lift do-not-contact"][0] == "done"
    assert services.mautic.contact_by_email(EMAIL)["id"] in services.mautic.campaign_members[10]


# --- the rules themselves (lib/consent.py), as both the live events and the backfill use them


def _contact(dnc: list[dict] | None = None, consent_field: object = None) -> Contact:
    return Contact(1, False, {"marketing_consent": consent_field}, email_dnc=dnc or [])


OURS = {"channel": "email", "reason": 3, "comments": NO_CONSENT_COMMENT}


@pytest.mark.parametrize(
    ("stated", "contact", "mailable"),
    [
        (Consent.GIVEN, None, True),
        (Consent.GIVEN, _contact(), True),
        (Consent.GIVEN, _contact([OURS]), True),
        (Consent.GIVEN, _contact([BOUNCE]), False),
        (Consent.GIVEN, _contact([OURS, UNSUBSCRIBE]), False),
        (Consent.REFUSED, None, False),
        (Consent.REFUSED, _contact(consent_field=True), False),
        (Consent.ON_RECORD, None, False),
        (Consent.ON_RECORD, _contact(consent_field="1"), True),
        (Consent.ON_RECORD, _contact(consent_field="0"), False),
        (Consent.ON_RECORD, _contact([OURS], consent_field=True), False),
    ],
)
def test_who_may_be_emailed(stated, contact, mailable):
    assert may_email(stated, contact, "marketing_consent") is mailable


def test_our_do_not_contact_goes_only_to_a_refusing_user_without_one():
    values = {"email": EMAIL}
    assert with_dnc_on_create(values, Consent.REFUSED, None)["doNotContact"] == [OURS]
    assert with_dnc_on_create(values, Consent.REFUSED, _contact([BOUNCE])) == values
    assert with_dnc_on_create(values, Consent.GIVEN, None) == values
    assert lifts_dnc(Consent.GIVEN, _contact([OURS]))
    assert not lifts_dnc(Consent.GIVEN, _contact([UNSUBSCRIBE]))
    assert not lifts_dnc(Consent.REFUSED, _contact([OURS]))
