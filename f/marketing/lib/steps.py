"""The steps an event can take, each a call (or a check then a call) to one service: what it
does when run, and how a dry run describes it.

A step runs against a Context: the job's clients and what earlier steps found (the Mautic
contact, whether it may be emailed). Every step is idempotent: it checks before it changes, so
a re-run or a later attempt does nothing twice.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from f.marketing.lib.attempt_schedule import QUEUE_ON_RATE_LIMIT
from f.marketing.lib.consent import (
    DNC_MANUAL,
    NO_CONSENT_COMMENT,
    Consent,
    is_ours,
    lifts_dnc,
    marks_dnc,
    may_email,
    with_dnc_on_create,
)
from f.marketing.lib.contract import Event, event_key
from f.marketing.lib.errors import ConfigError, ServiceError
from f.marketing.lib.job_log import log
from f.marketing.lib.mautic_client import Contact, MauticClient
from f.marketing.lib.routing import Routing, SegmentRef
from f.marketing.lib.settings import Settings
from f.marketing.lib.slack_client import SlackClient
from f.marketing.lib.slack_ledger import Claim, SlackLedger
from f.marketing.lib.slack_message import Message, build_message, matching_rules
from f.marketing.lib.twenty_client import UPSERT_REQUEST, TwentyClient
from f.marketing.lib.windmill_api import Workspace

NEEDS_CONSENT = "only with marketing consent on record"
NO_SLACK = "no Slack resource configured"


@dataclass
class Context:
    twenty: TwentyClient
    mautic: MauticClient
    slack: SlackClient | None = None
    ledger: SlackLedger | None = None
    contact: Contact | None = None
    consent: bool = False  # consent on record, known once the Mautic contact is upserted
    notes: list[str] = field(default_factory=list)  # for the operator, in the job's result
    _segments: set[int] | None = None
    _aliases: dict[str, int] | None = None

    @classmethod
    def connect(cls, settings: Settings, resources: Workspace) -> "Context":
        # A rate limit ends the job at once: its next attempt waits in Windmill's queue, not
        # in a worker (lib/attempt_schedule.py). Slack is not retried that way, so it waits.
        return cls(
            twenty=TwentyClient.from_settings(settings.twenty, QUEUE_ON_RATE_LIMIT),
            mautic=MauticClient.from_settings(settings.mautic, QUEUE_ON_RATE_LIMIT),
            slack=SlackClient.from_settings(settings.slack) if settings.slack else None,
            ledger=SlackLedger(resources) if settings.slack else None,
        )

    def segments(self) -> set[int]:
        """The contact's segments as the job found them, read once (a new contact has none)."""
        contact = _contact(self)
        if self._segments is None:
            self._segments = set() if contact.created else self.mautic.segment_ids(contact.id)
        return self._segments

    def segment_ids(self, refs: list[SegmentRef]) -> list[int]:
        """Ids for the routing's segment references; aliases cost one listing per job."""
        if all(isinstance(ref, int) for ref in refs):
            return [int(ref) for ref in refs]
        if self._aliases is None:
            self._aliases = {str(s["alias"]): int(s["id"]) for s in self.mautic.segments()}
        missing = [ref for ref in refs if isinstance(ref, str) and ref not in self._aliases]
        if missing:
            raise ConfigError(
                f"Resource f/marketing/routing: Mautic has no segment with alias {missing[0]!r} "
                f"that the API user can see: run f/marketing/setup with apply to create it, "
                f"or put the segment's id in the routing"
            )
        return list(dict.fromkeys(r if isinstance(r, int) else self._aliases[r] for r in refs))

    def segments_read(self) -> bool:
        return self._segments is not None or _contact(self).created

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.twenty.close()
        self.mautic.close()
        if self.slack:
            self.slack.close()


Outcome = tuple[str, str]  # (status, detail)


@dataclass(frozen=True)
class Step:
    service: str
    action: str
    request: str
    run: Callable[[Context], Outcome] = field(repr=False)
    condition: str = ""
    required: bool = True
    payload: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "service": self.service,
            "action": self.action,
            "request": self.request,
        }
        if self.payload is not None:
            described["body"] = self.payload
        if self.condition:
            described["condition"] = self.condition
        return described


def upsert_person(body: dict[str, Any]) -> Step:
    def run(ctx: Context) -> Outcome:
        person = ctx.twenty.upsert_person(body)
        return ("created" if person.created else "updated"), f"person {person.id}"

    return Step("twenty", "upsert person", UPSERT_REQUEST, run, payload=body)


def upsert_contact(values: dict[str, Any], consent_field: str, consent: Consent) -> Step:
    with_dnc = with_dnc_on_create(values, consent, None)

    def run(ctx: Context) -> Outcome:
        body = values
        if consent is Consent.REFUSED:
            body = with_dnc_on_create(values, consent, ctx.mautic.find_contact(values["email"]))
        contact = ctx.mautic.upsert_contact(body)
        if contact.ignored_fields:
            missing = ", ".join(contact.ignored_fields)
            raise ServiceError(
                "Mautic",
                "upsert contact",
                f"contact {contact.id} saved, but Mautic has no contact field {missing} and "
                f"ignored it: create the field (Settings > Custom Fields) or map it to null "
                f"in routing.fields.mautic",
            )
        ctx.contact = contact
        ctx.consent = may_email(consent, contact, consent_field)
        detail = f"contact {contact.id}"
        if body is not values:
            detail += ", marked do-not-contact for email (no marketing consent)"
        elif contact.email_dnc and not is_ours(contact):
            detail += ", has a do-not-contact set outside this job (unsubscribe, bounce): kept"
        elif not ctx.consent and consent is Consent.ON_RECORD:
            detail += ", no marketing consent on record"
        return ("created" if contact.created else "updated"), detail

    if consent is Consent.REFUSED:
        return Step(
            "mautic",
            "upsert contact",
            "GET /api/contacts?where[0][col]=email..., then POST /api/contacts/new",
            run,
            "doNotContact only if the contact has no email do-not-contact yet: an existing "
            "one (unsubscribe, bounce) is kept as it is",
            payload=with_dnc,
        )
    return Step("mautic", "upsert contact", "POST /api/contacts/new", run, payload=values)


def lift_our_dnc() -> Step:
    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if lifts_dnc(Consent.GIVEN, contact):
            ctx.mautic.remove_do_not_contact(contact.id)
            return "done", "consent given: lifted the do-not-contact this job once set"
        if contact.email_dnc:
            return "skipped", "do-not-contact set outside this job (unsubscribe, bounce)"
        return "skipped", "no do-not-contact to lift"

    return Step(
        "mautic",
        "lift do-not-contact",
        "POST /api/contacts/{id}/dnc/email/remove",
        run,
        "only if the contact carries the no-consent do-not-contact set by this job",
    )


def mark_without_consent() -> Step:
    body = {"reason": DNC_MANUAL, "comments": NO_CONSENT_COMMENT}

    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if ctx.consent:
            return "skipped", "marketing consent on record"
        if not marks_dnc(ctx.consent, contact):
            return "skipped", "already do-not-contact for email"
        ctx.mautic.add_do_not_contact(contact.id, DNC_MANUAL, NO_CONSENT_COMMENT)
        return "done", "no marketing consent on record: marked do-not-contact"

    return Step(
        "mautic",
        "mark do-not-contact",
        "POST /api/contacts/{id}/dnc/email/add",
        run,
        "only if the contact has no consent on record and no email do-not-contact",
        payload=body,
    )


def remove_from_segments(refs: list[SegmentRef], label: str) -> Step | None:
    if not refs:
        return None

    def run(ctx: Context) -> Outcome:
        if _contact(ctx).created:
            return "skipped", "new contact: in no segment yet"
        targets = [s for s in ctx.segment_ids(refs) if s in ctx.segments()]
        for segment_id in targets:
            ctx.mautic.remove_from_segment(segment_id, _contact(ctx).id)
        return _segments_changed("removed from", targets, "in none of them")

    return Step(
        "mautic",
        f"remove from {label} segments {_ids(refs)}",
        "GET /api/contacts/{id}/segments (once per job), then "
        "POST /api/segments/{segment}/contact/{id}/remove",
        run,
        "only if the contact already existed, for the segments it is in",
    )


def _segments_changed(change: str, segment_ids: list[int], otherwise: str) -> Outcome:
    if not segment_ids:
        return "skipped", otherwise
    return "done", f"{change} " + ", ".join(map(str, segment_ids))


def add_to_segments(refs: list[SegmentRef]) -> Step | None:
    refs = list(dict.fromkeys(refs))
    if not refs:
        return None

    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if not ctx.consent:
            return "skipped", "no marketing consent on record"
        known = ctx.segments() if ctx.segments_read() else set()
        missing = [s for s in ctx.segment_ids(refs) if s not in known]
        for segment_id in missing:
            ctx.mautic.add_to_segment(segment_id, contact.id)
        return _segments_changed("added to", missing, "already in all of them")

    return Step(
        "mautic",
        f"add to segments {_ids(refs)}",
        "POST /api/segments/{segment}/contact/{id}/add",
        run,
        NEEDS_CONSENT,
    )


def add_to_campaign(campaign_id: int | None, purpose: str) -> Step | None:
    if campaign_id is None:
        return None

    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if not ctx.consent:
            return "skipped", "no marketing consent on record"
        # Re-adding a member restarts a campaign that allows restarts: the emails go out again.
        if not contact.created and ctx.mautic.in_campaign(campaign_id, contact.id):
            return "skipped", "already in the campaign"
        ctx.mautic.add_to_campaign(campaign_id, contact.id)
        return "done", f"added to the {purpose} sequence"

    return Step(
        "mautic",
        f"add to {purpose} campaign {campaign_id}",
        "GET /api/campaigns/{campaign}/contacts?where[0][col]=lead_id..., then "
        "POST /api/campaigns/{campaign}/contact/{id}/add",
        run,
        NEEDS_CONSENT + "; the membership check is skipped for a new contact",
    )


def remove_from_campaign(
    campaign_id: int | None, purpose: str, churned_segments: list[SegmentRef]
) -> Step | None:
    if campaign_id is None:
        return None

    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if contact.created:
            return "skipped", "new contact: in no campaign yet"
        # Churn put the contact in a churned segment too: not in one, no churn to undo.
        if churned_segments and not ctx.segments() & set(ctx.segment_ids(churned_segments)):
            return "skipped", "not in a churned segment"
        ctx.mautic.remove_from_campaign(campaign_id, contact.id)
        return "done", f"left the {purpose} sequence (if in it)"

    condition = "only if the contact already existed"
    if churned_segments:
        condition += f" and was in a churned segment ({_ids(churned_segments)})"
    return Step(
        "mautic",
        f"remove from {purpose} campaign {campaign_id}",
        "POST /api/campaigns/{campaign}/contact/{id}/remove",
        run,
        condition,
    )


def notify(event: Event, routing: Routing, slack_enabled: bool, slack_problem: str | None) -> Step:
    rules = matching_rules(event, routing.slack_rules)
    if not rules or not slack_enabled:
        status, reason = "skipped", "no Slack rule matched"
        if rules:
            status, reason = ("failed", slack_problem) if slack_problem else (status, NO_SLACK)
        return Step("slack", "notify", "none", lambda ctx: (status, reason), reason, required=False)
    message = build_message(event, rules)
    key = event_key(event)

    def run(ctx: Context) -> Outcome:
        return _post_once(ctx, key, message)

    return Step(
        "slack",
        f"notify (rule: {', '.join(message.rules)})",
        "POST the message to the configured webhook or channel",
        run,
        "not if this event was already posted (ledger f/marketing/slack_posted/<event hash>)",
        required=False,
    )


def _post_once(ctx: Context, key: str, message: Message) -> Outcome:
    """Post at most once per event: claim it in the ledger, post, record how it ended."""
    assert ctx.slack is not None
    ledger = ctx.ledger
    if ledger is not None:
        try:
            claim = ledger.claim(key)
        except ServiceError as exc:  # posting unguarded beats losing the alert
            ctx.notes.append(f"Slack ledger unavailable, posted without a duplicate check: {exc}")
            ledger = None
        else:
            if claim is Claim.POSTED:
                return "skipped", "already posted for this event"
            if claim is Claim.BUSY:
                return "skipped", "another job is posting it for this event right now"
    try:
        ctx.slack.post(message.text, message.blocks)
    except ServiceError as exc:
        outcome = "uncertain" if exc.maybe_applied else "failed"
        _settle(ctx, ledger, key, outcome)
        if outcome == "failed":
            raise
        return "uncertain", (
            f"{exc.detail}: the message may or may not have been posted; it is not sent "
            f"again, so as not to post it twice"
        )
    _settle(ctx, ledger, key, "posted")
    return "done", f"posted to {ctx.slack.destination}"


def _settle(ctx: Context, ledger: SlackLedger | None, key: str, outcome: str) -> None:
    if ledger is None:
        return
    try:
        ledger.settle(key, outcome)
    except ServiceError as exc:
        ctx.notes.append(
            f"Slack ledger: could not record that this event was {outcome} ({exc}); "
            f"a re-run may post it again"
        )
        return
    if outcome == "posted":
        try:
            ledger.prune(key)
        except ServiceError as exc:  # housekeeping: the next prune tries again
            log.warning("slack ledger: pruning old entries failed: %s", exc)


def _contact(ctx: Context) -> Contact:
    assert ctx.contact is not None, "the Mautic upsert runs first"
    return ctx.contact


def _ids(refs: list[SegmentRef]) -> str:
    return ", ".join(map(str, refs))
