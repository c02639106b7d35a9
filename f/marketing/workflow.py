"""What one event does: an ordered list of steps, planned from the event and the routing, then run.

The same list serves the dry run (described, not run) and the real run, so the two never drift.
Order is fixed: Twenty, then Mautic, then Slack; a failed Twenty or Mautic step stops the job
and nothing after it runs, so Slack is only reached after both succeeded.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import httpx

from f.marketing.config import Routing, Settings
from f.marketing.contract import UserChurned, UserRegistered, UserUpgraded, split_name
from f.marketing.errors import ConfigError, JobFailed, MarketingError, ServiceError
from f.marketing.mautic_client import Contact, MauticClient
from f.marketing.notifications import Ledger, Message, build_message, fingerprint, matching_rules
from f.marketing.slack_client import SlackClient
from f.marketing.twenty_client import TwentyClient

log = logging.getLogger("f.marketing")

Event = UserRegistered | UserUpgraded | UserChurned
NEEDS_CONSENT = "only with marketing consent on record"


@dataclass
class Context:
    twenty: TwentyClient
    mautic: MauticClient
    slack: SlackClient | None = None
    ledger: Ledger | None = None
    contact: Contact | None = None
    consent: bool = False  # consent on record, known once the Mautic contact is upserted

    @classmethod
    def connect(cls, settings: Settings) -> "Context":
        return cls(
            twenty=TwentyClient.from_settings(settings.twenty),
            mautic=MauticClient.from_settings(settings.mautic),
            slack=SlackClient.from_settings(settings.slack) if settings.slack else None,
            ledger=Ledger.in_windmill() if settings.slack else None,
        )

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.twenty.http.close()
        self.mautic.http.close()
        if self.slack:
            self.slack.http.close()


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


# --- planning -------------------------------------------------------------------------------


def plan(event: Event, routing: Routing, slack_enabled: bool) -> list[Step]:
    """The steps for one event. Raises ConfigError before any call if routing cannot serve it."""
    if isinstance(event, UserRegistered):
        steps = _plan_registered(event, routing)
    elif isinstance(event, UserUpgraded):
        steps = _plan_upgraded(event, routing)
    else:
        steps = _plan_churned(event, routing)
    return [*steps, _notify(event, routing, slack_enabled)]


def _plan_registered(event: UserRegistered, routing: Routing) -> list[Step]:
    tw, mf, seg = routing.fields.twenty, routing.fields.mautic, routing.segments
    person = _fields(
        (tw.plan, _twenty_plan(event.plan, routing)),
        (tw.source, event.source),
        (tw.consent, event.marketingConsent),
    )
    contact = {"email": event.email}
    if event.name:
        first, last = split_name(event.name)
        contact |= {"firstname": first, "lastname": last}
    contact |= _fields(
        (mf.plan, event.plan), (mf.source, event.source), (mf.consent, event.marketingConsent)
    )
    steps = [
        _upsert_person(event.email, event.name, person),
        _upsert_contact(contact, mf.consent, no_consent=not event.marketingConsent, consent=event),
    ]
    if event.marketingConsent:
        steps.append(_lift_our_do_not_contact())
    steps.append(_remove_from_segments(seg.churned, "churned", only_current=False))
    steps.append(_add_to_segments([*seg.active, *seg.plans.get(event.plan, [])]))
    steps.append(_add_to_campaign(routing.campaigns.onboarding, "onboarding"))
    return [s for s in steps if s is not None]


def _plan_upgraded(event: UserUpgraded, routing: Routing) -> list[Step]:
    tw, mf, seg = routing.fields.twenty, routing.fields.mautic, routing.segments
    new_segments = seg.plans.get(event.newPlan, [])
    old_segments = [s for s in seg.plans.get(event.previousPlan, []) if s not in new_segments]
    steps = [
        _upsert_person(event.email, None, _fields((tw.plan, _twenty_plan(event.newPlan, routing)))),
        _upsert_contact({"email": event.email, **_fields((mf.plan, event.newPlan))}, mf.consent),
        _no_consent_if_new(),
        _remove_from_segments(old_segments, f"plan {event.previousPlan}", only_current=False),
        _add_to_segments(new_segments),
        _add_to_campaign(routing.campaigns.upgrade, "upgrade"),
    ]
    return [s for s in steps if s is not None]


def _plan_churned(event: UserChurned, routing: Routing) -> list[Step]:
    tw, mf, seg = routing.fields.twenty, routing.fields.mautic, routing.segments
    when = event.timestamp.astimezone(UTC)
    plan_segments = [s for ids in seg.plans.values() for s in ids]
    leaving = list(dict.fromkeys([*seg.active, *plan_segments]))
    steps = [
        _upsert_person(
            event.email,
            None,
            _fields((tw.churn_reason, event.reason or ""), (tw.churned_at, when.isoformat())),
        ),
        _upsert_contact(
            {
                "email": event.email,
                # Mautic date-time fields take "Y-m-d H:i:s" (UTC here).
                **_fields(
                    (mf.churn_reason, event.reason or ""),
                    (mf.churned_at, when.strftime("%Y-%m-%d %H:%M:%S")),
                ),
            },
            mf.consent,
        ),
        _no_consent_if_new(),
        _remove_from_segments(leaving, "active and plan", only_current=True),
        _add_to_segments(seg.churned),
        _add_to_campaign(routing.campaigns.winback, "win-back"),
    ]
    return [s for s in steps if s is not None]


def _fields(*pairs: tuple[str | None, Any]) -> dict[str, Any]:
    """Field name → value, leaving out fields mapped to null in the routing."""
    return {name: value for name, value in pairs if name}


def _twenty_plan(plan_name: str, routing: Routing) -> str:
    values = routing.fields.twenty_plan_values
    if values is None:
        return plan_name
    if plan_name not in values:
        raise ConfigError(
            f"Resource f/marketing/routing: fields.twenty_plan_values has no entry for plan "
            f"{plan_name!r}; add the Twenty option value for it"
        )
    return values[plan_name]


# --- steps ----------------------------------------------------------------------------------


def _upsert_person(email: str, name: str | None, fields: dict[str, Any]) -> Step:
    def run(ctx: Context) -> Outcome:
        person = ctx.twenty.upsert_person(email, name=name, fields=fields)
        return ("created" if person.created else "updated"), f"person {person.id}"

    body = {"emails": {"primaryEmail": email}, **fields}
    if name:
        body["name"] = name
    return Step("twenty", "upsert person", "POST /rest/people?upsert=true", run, payload=body)


def _upsert_contact(
    values: dict[str, Any],
    consent_field: str | None,
    *,
    no_consent: bool = False,
    consent: UserRegistered | None = None,
) -> Step:
    def run(ctx: Context) -> Outcome:
        contact = ctx.mautic.upsert_contact(values, no_consent=no_consent)
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
        if consent is not None:
            # The event states consent now; a do-not-contact set by anyone but us still wins.
            ctx.consent = consent.marketingConsent and (
                not contact.email_dnc or contact.dnc_is_ours()
            )
        else:
            ctx.consent = contact.has_consent(consent_field)
        detail = f"contact {contact.id}"
        if no_consent:
            detail += ", marked do-not-contact for email (no marketing consent)"
        elif not ctx.consent:
            detail += ", no marketing consent on record"
        return ("created" if contact.created else "updated"), detail

    body = {**values, "doNotContact": "email (no marketing consent)"} if no_consent else values
    return Step("mautic", "upsert contact", "POST /api/contacts/new", run, payload=body)


def _lift_our_do_not_contact() -> Step:
    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if not contact.dnc_is_ours():
            if contact.email_dnc:
                return "skipped", "do-not-contact set outside this job (unsubscribe, bounce)"
            return "skipped", "no do-not-contact to lift"
        ctx.mautic.remove_do_not_contact(contact.id)
        return "done", "consent given: lifted the do-not-contact this job once set"

    return Step(
        "mautic",
        "lift do-not-contact",
        "POST /api/contacts/{id}/dnc/email/remove",
        run,
        "only if the contact carries the no-consent do-not-contact set by this job",
    )


def _no_consent_if_new() -> Step:
    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if not contact.created:
            return "skipped", "existing contact: its consent record stands"
        ctx.mautic.add_do_not_contact(contact.id)
        ctx.consent = False
        return "done", "contact is new, so no consent is on record: marked do-not-contact"

    return Step(
        "mautic",
        "mark do-not-contact",
        "POST /api/contacts/{id}/dnc/email/add",
        run,
        "only if this call created the contact",
    )


def _remove_from_segments(ids: list[int], label: str, *, only_current: bool) -> Step | None:
    if not ids:
        return None

    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if contact.created:
            return "skipped", "new contact: in no segment yet"
        targets = ids
        if only_current:
            current = ctx.mautic.segment_ids(contact.id)
            targets = [s for s in ids if s in current]
        for segment_id in targets:
            ctx.mautic.remove_from_segment(segment_id, contact.id)
        if not targets:
            return "skipped", "in none of them"
        return "done", "removed from " + ", ".join(map(str, targets))

    request = "POST /api/segments/{segment}/contact/{id}/remove"
    if only_current:
        request = "GET /api/contacts/{id}/segments, then " + request
    return Step(
        "mautic",
        f"remove from {label} segments {_ids(ids)}",
        request,
        run,
        "only if the contact already existed" + (" and is a member" if only_current else ""),
    )


def _add_to_segments(ids: list[int]) -> Step | None:
    ids = list(dict.fromkeys(ids))
    if not ids:
        return None

    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if not ctx.consent:
            return "skipped", "no marketing consent on record"
        for segment_id in ids:
            ctx.mautic.add_to_segment(segment_id, contact.id)
        return "done", "added to " + ", ".join(map(str, ids))

    return Step(
        "mautic",
        f"add to segments {_ids(ids)}",
        "POST /api/segments/{segment}/contact/{id}/add",
        run,
        NEEDS_CONSENT,
    )


def _add_to_campaign(campaign_id: int | None, purpose: str) -> Step | None:
    if campaign_id is None:
        return None

    def run(ctx: Context) -> Outcome:
        contact = _contact(ctx)
        if not ctx.consent:
            return "skipped", "no marketing consent on record"
        # Re-adding a member restarts a campaign that allows restarts: the emails go out again.
        if not contact.created and campaign_id in ctx.mautic.campaign_ids(contact.id):
            return "skipped", "already in the campaign"
        ctx.mautic.add_to_campaign(campaign_id, contact.id)
        return "done", f"added to the {purpose} sequence"

    return Step(
        "mautic",
        f"add to {purpose} campaign {campaign_id}",
        "GET /api/contacts/{id}/campaigns, then POST /api/campaigns/{campaign}/contact/{id}/add",
        run,
        NEEDS_CONSENT + "; the membership check is skipped for a new contact",
    )


def _notify(event: Event, routing: Routing, slack_enabled: bool) -> Step:
    rules = matching_rules(event, routing.slack_rules)
    if not rules or not slack_enabled:
        reason = "no Slack rule matched" if not rules else "no Slack resource configured"
        return Step(
            "slack", "notify", "none", lambda ctx: ("skipped", reason), reason, required=False
        )
    message = build_message(event, rules)
    key = fingerprint(event)

    def run(ctx: Context) -> Outcome:
        return _post_once(ctx, key, message)

    return Step(
        "slack",
        f"notify (rule: {', '.join(message.rules)})",
        "POST the message to the configured webhook or channel",
        run,
        "not if this event was already posted",
        required=False,
    )


def _post_once(ctx: Context, key: str, message: Message) -> Outcome:
    assert ctx.slack is not None
    note = ""
    if ctx.ledger is not None:
        try:
            if ctx.ledger.seen(key):
                return "skipped", "already posted for this event"
        except Exception as exc:  # the ledger is a convenience; a lost alert is worse
            note = f"; could not read the ledger ({type(exc).__name__})"
    ctx.slack.post(message.text, message.blocks)
    if ctx.ledger is not None:
        try:
            ctx.ledger.record(key)
        except Exception as exc:
            note += f"; could not record it in the ledger ({type(exc).__name__})"
    return "done", f"posted to {ctx.slack.destination}{note}"


def _contact(ctx: Context) -> Contact:
    assert ctx.contact is not None, "the Mautic upsert runs first"
    return ctx.contact


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids))


# --- running --------------------------------------------------------------------------------


def run(steps: list[Step], ctx: Context, event_name: str) -> list[dict[str, str]]:
    """Run steps in order; a failed required step raises JobFailed naming done and not done."""
    results: list[dict[str, str]] = []
    for index, step in enumerate(steps):
        try:
            status, detail = step.run(ctx)
        except Exception as exc:
            reason = safe_reason(exc)
            results.append(_result(step, "failed", reason))
            log.warning("%s %s: failed", step.service, step.action)
            if not step.required:
                continue
            not_run = [_result(s, "not run", "an earlier step failed") for s in steps[index + 1 :]]
            raise JobFailed(
                _failure_message(event_name, step, reason, results, not_run),
                {"event": event_name, "ok": False, "steps": results + not_run},
            ) from None
        results.append(_result(step, status, detail))
        log.info("%s %s: %s", step.service, step.action, status)
    return results


def _result(step: Step, status: str, detail: str) -> dict[str, str]:
    return {"service": step.service, "action": step.action, "status": status, "detail": detail}


def _failure_message(
    event_name: str,
    step: Step,
    reason: str,
    results: list[dict[str, str]],
    not_run: list[dict[str, str]],
) -> str:
    done = [f"{r['service']} {r['action']} ({r['status']})" for r in results[:-1]]
    lines = [
        f"{event_name}: {step.service} {step.action} failed: {reason}",
        "Done: " + ("; ".join(done) or "nothing"),
        "Not done: " + ("; ".join(f"{r['service']} {r['action']}" for r in not_run) or "nothing"),
        "Every step is idempotent: re-run the job once the cause is fixed.",
    ]
    return "\n".join(lines)


def safe_reason(exc: BaseException) -> str:
    """An error's text, unless it could carry a URL (httpx errors): then only its kind."""
    if isinstance(exc, MarketingError):
        return str(exc)
    if isinstance(exc, httpx.HTTPError | httpx.InvalidURL):
        return f"{type(exc).__name__} (details withheld: they may contain a URL)"
    return f"{type(exc).__name__}: {exc}"
