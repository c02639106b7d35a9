"""Who may get marketing email, and the do-not-contact entry that says no: the one home of the
consent rules, for the live events (lib/steps.py) and the backfill (lib/backfill_apply.py).

- A contact is never mailable without consent: a user who refused is created with our email
  do-not-contact in the same upsert, unless the contact already has one. An entry added over an
  existing one rewrites its reason and comment (mautic/mautic 5.1: LeadBundle/Model/
  DoNotContact.php, addDncForContact), so a bounce would be lost.
- Ours is told apart by its reason (manual) and its comment, and only ours is ever lifted:
  when the user gives consent after all.
- Consent the event states (a registration) holds unless a do-not-contact not ours stands;
  every other event goes by the record: no email do-not-contact, and the consent field says yes.
- Segments and campaigns are for contacts with consent only.
"""

from enum import Enum
from typing import assert_never

from f.marketing.lib.mautic_client import Contact

# The comment marks a do-not-contact entry as ours, so that only ours is ever lifted.
NO_CONSENT_COMMENT = "No marketing consent given (set by f/marketing/handle_user_event)"
DNC_MANUAL = 3
NO_CONSENT_DNC = {"channel": "email", "reason": DNC_MANUAL, "comments": NO_CONSENT_COMMENT}


class Consent(Enum):
    """What the event says about marketing consent."""

    GIVEN = "given"  # a registration with consent
    REFUSED = "refused"  # a registration without
    ON_RECORD = "on record"  # the other events say nothing: the contact's record decides

    @classmethod
    def stated(cls, marketing_consent: bool) -> "Consent":
        return cls.GIVEN if marketing_consent else cls.REFUSED


def is_ours(contact: Contact) -> bool:
    """The contact's email do-not-contact is the one this package set for lack of consent."""
    return bool(contact.email_dnc) and all(
        int(entry.get("reason") or 0) == DNC_MANUAL and entry.get("comments") == NO_CONSENT_COMMENT
        for entry in contact.email_dnc
    )


def with_dnc_on_create(values: dict, stated: Consent, existing: Contact | None) -> dict:
    """The upsert's values, with our do-not-contact for a user who refused, unless the contact
    `existing` (looked up first) has an email do-not-contact already."""
    if stated is not Consent.REFUSED or (existing is not None and existing.email_dnc):
        return values
    return {**values, "doNotContact": [NO_CONSENT_DNC]}


def may_email(stated: Consent, contact: Contact | None, consent_field: str) -> bool:
    """Whether the contact may get marketing email (segments, campaigns) after this event;
    `contact` None is one that does not exist yet."""
    match stated:
        case Consent.GIVEN:
            return contact is None or not contact.email_dnc or is_ours(contact)
        case Consent.REFUSED:
            return False
        case Consent.ON_RECORD:
            return contact is not None and not contact.email_dnc and contact.flag(consent_field)
        case _:
            assert_never(stated)


def lifts_dnc(stated: Consent, contact: Contact) -> bool:
    """Consent given, over our own do-not-contact: it is lifted (never anyone else's)."""
    return stated is Consent.GIVEN and is_ours(contact)


def marks_dnc(consent: bool, contact: Contact) -> bool:
    """No consent on record and no email do-not-contact yet: ours is added."""
    return not consent and not contact.email_dnc
