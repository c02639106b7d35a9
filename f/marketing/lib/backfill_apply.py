"""One chunk of backfill users applied to Twenty and Mautic with batch calls, by the rules of
the live events (lib/plan.py, lib/steps.py), minus the Slack message per user:

- Twenty: one batch upsert per 60 people. A batch Twenty refuses (400) is split in halves
  until the refused person is found, so one bad row never stops the others.
- Mautic: one `contacts/batch/new` per chunk. A user without consent gets our email
  do-not-contact in that same call unless the contact already has one (looked up first, 60
  emails a call): a new contact is never mailable, and an unsubscribe or a bounce someone
  else recorded is never rewritten. A user with consent has our do-not-contact lifted, and
  only ours.
- Segments: a contact with consent on record goes to the active and plan segments, or to the
  churned ones if it churned; one bulk add per segment. A contact that existed is read once and
  taken out of the routing's segments it no longer belongs in.
- Campaigns only when asked (a backfilled user rarely wants an onboarding sequence months
  late): the onboarding or win-back campaign, membership checked first, one call a contact.

Every call is an upsert or checks first, so a chunk applied twice (a resumed run) creates
nothing twice. A failure that may pass (a service down, rate limited past the retries) stops
the run with the chunk not checkpointed: a resume applies it again.
"""

import math
from dataclasses import dataclass
from typing import Any

from f.marketing.lib.backfill_file import User
from f.marketing.lib.backfill_tally import Tally
from f.marketing.lib.consent import Consent, lifts_dnc, may_email, with_dnc_on_create
from f.marketing.lib.errors import ConfigError, ServiceError
from f.marketing.lib.mautic_client import LOOKUP, Contact, MauticClient
from f.marketing.lib.person_values import churn_values, registration_values
from f.marketing.lib.routing import Routing
from f.marketing.lib.steps import Context
from f.marketing.lib.twenty_client import BATCH, PersonOutcome, TwentyClient, person_body


@dataclass(frozen=True)
class Segments:
    """The routing's segments as ids (aliases looked up once per run)."""

    active: list[int]
    churned: list[int]
    plans: dict[str, list[int]]

    @classmethod
    def resolve(cls, mautic: MauticClient, twenty: TwentyClient, routing: Routing) -> "Segments":
        ctx = Context(twenty=twenty, mautic=mautic)
        seg = routing.segments
        return cls(
            ctx.segment_ids(seg.active) if seg.active else [],
            ctx.segment_ids(seg.churned) if seg.churned else [],
            {plan: ctx.segment_ids(refs) for plan, refs in seg.plans.items() if refs},
        )

    @property
    def managed(self) -> set[int]:
        return {*self.active, *self.churned, *(s for ids in self.plans.values() for s in ids)}

    def wanted(self, user: User, consent: bool) -> set[int]:
        if not consent:
            return set()
        if user.churned:
            return set(self.churned)
        return {*self.active, *self.plans.get(user.registered.plan, [])}


class Applier:
    def __init__(
        self,
        twenty: TwentyClient,
        mautic: MauticClient,
        routing: Routing,
        segments: Segments,
        *,
        campaigns: bool,
    ) -> None:
        self.twenty, self.mautic, self.routing = twenty, mautic, routing
        self.segments, self.campaigns = segments, campaigns
        self.consent_field = routing.fields.mautic.consent

    # --- the real run ---------------------------------------------------------------------

    def apply(self, users: list[User], tally: Tally) -> None:
        self.to_mautic(self.to_twenty(users, tally), tally)

    def to_twenty(self, users: list[User], tally: Tally) -> list[User]:
        """Twenty's part of a chunk; the users it took, for Mautic's part (a run may do the
        two parts of successive chunks at the same time: they use different services)."""
        users = _last_per_email(users, tally)
        people = self._twenty(users, tally)
        return [u for u in users if u.email in people]

    def to_mautic(self, users: list[User], tally: Tally) -> None:
        contacts = self._mautic(users, tally)
        self._segments_and_campaigns(users, contacts, tally)

    def _twenty(self, users: list[User], tally: Tally) -> dict[str, PersonOutcome]:
        bodies = [(user, self.person(user)) for user in users]
        people: dict[str, PersonOutcome] = {}
        for start in range(0, len(bodies), BATCH):
            people |= self._upsert_people(bodies[start : start + BATCH], tally)
        for user in users:
            outcome = people.get(user.email)
            if outcome is not None:
                tally.add("twenty created" if outcome.created else "twenty updated")
        return people

    def _upsert_people(
        self, pairs: list[tuple[User, dict[str, Any]]], tally: Tally
    ) -> dict[str, PersonOutcome]:
        """A refused batch is split until the refused person is alone, and only that row
        fails. A refusal may come after Twenty updated the batch's known people (it has no
        transaction), which the halves then update again, to the same values."""
        try:
            found = self.twenty.upsert_people([body for _, body in pairs])
        except ServiceError as exc:
            if exc.status != 400:
                raise
            if "doesn't have any" in exc.detail:  # a field the routing names is missing
                raise ConfigError(f"Twenty refused every person: {exc.detail}") from None
            if len(pairs) == 1:
                user = pairs[0][0]
                tally.problem("failed", f"row {user.number}: twenty: {exc.detail}")
                return {}
            half = len(pairs) // 2
            return self._upsert_people(pairs[:half], tally) | self._upsert_people(
                pairs[half:], tally
            )
        for user, _ in pairs:
            if user.email not in found:
                tally.problem("failed", f"row {user.number}: twenty: not in Twenty's reply")
        return found

    def _mautic(self, users: list[User], tally: Tally) -> dict[str, Contact]:
        refusing = [u.email for u in users if _stated(u) is Consent.REFUSED]
        known = self.find_contacts(refusing)
        bodies = [
            with_dnc_on_create(self.contact(u), _stated(u), known.get(u.email)) for u in users
        ]
        outcomes = self.mautic.upsert_contacts(bodies) if bodies else []
        contacts: dict[str, Contact] = {}
        for user, body, outcome in zip(users, bodies, outcomes, strict=True):
            if isinstance(outcome, str):
                tally.problem("failed", f"row {user.number}: mautic: {outcome}")
                continue
            if outcome.ignored_fields:
                raise ConfigError(
                    f"Mautic has no contact field {', '.join(outcome.ignored_fields)} and "
                    f"ignored it: create it (Settings > Custom Fields) or map it to null in "
                    f"routing.fields.mautic"
                )
            contacts[user.email] = outcome
            tally.add("mautic created" if outcome.created else "mautic updated")
            if "doNotContact" in body:
                tally.add("do-not-contact marked")
            elif lifts_dnc(_stated(user), outcome):
                self.mautic.remove_do_not_contact(outcome.id)
                tally.add("do-not-contact lifted")
        return contacts

    def _segments_and_campaigns(
        self, users: list[User], contacts: dict[str, Contact], tally: Tally
    ) -> None:
        adds: dict[int, list[int]] = {}
        for user in users:
            contact = contacts.get(user.email)
            if contact is None:
                continue
            consent = may_email(_stated(user), contact, self.consent_field)
            wanted = self.segments.wanted(user, consent)
            current = set() if contact.created else self.mautic.segment_ids(contact.id)
            for segment_id in sorted((current & self.segments.managed) - wanted):
                self.mautic.remove_from_segment(segment_id, contact.id)
                tally.add("segment removals")
            for segment_id in sorted(wanted - current):
                adds.setdefault(segment_id, []).append(contact.id)
            if self.campaigns:
                self._campaigns(user, contact, consent, tally)
        rows = {contacts[u.email].id: u.number for u in users if u.email in contacts}
        for segment_id, ids in adds.items():
            refused = self.mautic.add_contacts_to_segment(segment_id, ids)
            tally.add("segment adds", len(ids) - len(refused))
            for contact_id in refused:
                text = f"row {rows.get(contact_id)}: mautic: not added to segment {segment_id}"
                tally.problem("failed", text)

    def _campaigns(self, user: User, contact: Contact, consent: bool, tally: Tally) -> None:
        campaigns = self.routing.campaigns
        if consent:
            joining = campaigns.winback if user.churned else campaigns.onboarding
            if joining is not None and (
                contact.created or not self.mautic.in_campaign(joining, contact.id)
            ):
                self.mautic.add_to_campaign(joining, contact.id)
                tally.add("campaign adds")
        leaving = None if user.churned else campaigns.winback  # a return leaves the win-back
        if leaving is None or contact.created:
            return
        if self.mautic.in_campaign(leaving, contact.id):
            self.mautic.remove_from_campaign(leaving, contact.id)
            tally.add("campaign removals")

    # --- the dry run ----------------------------------------------------------------------

    def estimate(self, users: list[User], tally: Tally) -> None:
        """What `apply` would do and the calls it would make, from reads only."""
        users = _last_per_email(users, tally)
        emails = [u.email for u in users]
        in_twenty: set[str] = set()
        for start in range(0, len(emails), BATCH):
            in_twenty |= self.twenty.existing_emails(emails[start : start + BATCH])
        known = self.find_contacts(emails)
        tally.add("twenty would create", sum(e not in in_twenty for e in emails))
        tally.add("twenty would update", sum(e in in_twenty for e in emails))
        tally.add("mautic would create", sum(e not in known for e in emails))
        tally.add("mautic would update", sum(e in known for e in emails))
        refusing = sum(not u.registered.marketingConsent for u in users)
        tally.add("twenty calls", math.ceil(len(users) / BATCH))
        segment_ids: set[int] = set()
        for user in users:
            contact = known.get(user.email)
            consent = may_email(_stated(user), contact, self.consent_field)
            segment_ids |= self.segments.wanted(user, consent)
            if contact is not None:
                tally.add("mautic calls")  # its segments read
                if lifts_dnc(_stated(user), contact):
                    tally.add("mautic calls")  # the do-not-contact lifted
            if self.campaigns and consent:
                tally.add("mautic calls", 1 if contact is None else 2)
        tally.add(
            "mautic calls", math.ceil(refusing / LOOKUP) + (1 if users else 0) + len(segment_ids)
        )

    # --- bodies ---------------------------------------------------------------------------

    def person(self, user: User) -> dict[str, Any]:
        fields, _ = registration_values(user.registered, self.routing)
        if user.churned:
            churn = churn_values(user.churned, self.routing)[0]
            fields |= _undated(churn, user, self.routing.fields.twenty.churned_at)
        return person_body(user.email, user.registered.name, fields)

    def contact(self, user: User) -> dict[str, Any]:
        _, values = registration_values(user.registered, self.routing)
        if user.churned:
            churn = churn_values(user.churned, self.routing)[1]
            values |= _undated(churn, user, self.routing.fields.mautic.churned_at)
        return values

    def find_contacts(self, emails: list[str]) -> dict[str, Contact]:
        found: dict[str, Contact] = {}
        for start in range(0, len(emails), LOOKUP):
            found |= self.mautic.find_contacts(emails[start : start + LOOKUP])
        return found


def _undated(values: dict[str, Any], user: User, date_field: str | None) -> dict[str, Any]:
    """A churn the file gives no date for writes none (the run's time would be made up)."""
    if user.churn_dated or date_field is None:
        return values
    return {k: v for k, v in values.items() if k != date_field}


def _stated(user: User) -> Consent:
    """A row is a registration: it states consent, as the live event does."""
    return Consent.stated(user.registered.marketingConsent)


def _last_per_email(users: list[User], tally: Tally) -> list[User]:
    """A user twice in one chunk: the later row wins (Twenty refuses a batch with both)."""
    last = {user.email: user for user in users}
    for user in users:
        winner = last[user.email]
        if winner is not user:
            tally.problem(
                "skipped", f"row {user.number}: same email as row {winner.number}, which wins"
            )
    return list(last.values())
