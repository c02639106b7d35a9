# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
"""Stripe's webhook: subscription events become plan changes, run through the same steps as
the SaaS's own events (Twenty, Mautic, Slack, consent rules, later attempts).

Stripe posts each event to this script's webhook URL, with `?raw=true` so that Windmill
passes the exact body the signature covers (and `include_header=stripe-signature` for servers
that pass a preprocessor only the headers named there). The signature is checked here against
the secret(s) in f/marketing/stripe. A person can run it from the form with a pasted event
(its JSON or just its id): it is then read back from Stripe and only Stripe's copy is used,
except in a dry run, which writes nothing. Resources are always the workspace's: a caller
cannot point the job at another Stripe, or anything else.
"""

import json
from typing import Any

from f.marketing.lib.attempt_schedule import QUEUE_ON_RATE_LIMIT
from f.marketing.lib.delivery_failures import delivered
from f.marketing.lib.errors import InvalidEvent, JobFailed, ServiceError, SignatureRefused
from f.marketing.lib.event_job import EventJob
from f.marketing.lib.job_log import log, log_to_stdout
from f.marketing.lib.job_result import JobResult
from f.marketing.lib.later_attempts import Later, NextRun
from f.marketing.lib.service_settings import StripeSettings
from f.marketing.lib.settings import STRIPE_PATH, Settings, load_resource, load_settings
from f.marketing.lib.stripe_client import StripeClient, stripe_id
from f.marketing.lib.stripe_mapping import Skip, describe, map_event
from f.marketing.lib.stripe_signature import verify
from f.marketing.lib.windmill_api import Workspace, job_workspace

SCRIPT_PATH = "f/marketing/stripe_events"


def preprocessor(event: dict) -> dict:
    """Webhook calls: hand `main` the exact body and the Stripe-Signature header, nothing else.

    It never refuses anything: a failed preprocessor would leave Windmill's whole trigger
    event (every header, and the token in the URL) as the job's arguments. `main` refuses.
    Newer servers pass every header by its own name (`stripe-signature`); older ones only
    those named in `?include_header=`, renamed with `_` (`stripe_signature`; windmill-api
    args.rs, build_headers).
    """
    event = event if isinstance(event, dict) else {}
    given = event.get("headers")
    headers: dict[str, Any] = given if isinstance(given, dict) else {}
    named = {str(k).lower().replace("_", "-"): v for k, v in headers.items()}
    signature = named.get("stripe-signature")
    raw = event.get("raw_string")
    return {
        "payload": raw if isinstance(raw, str) else "",
        "stripe_signature": signature if isinstance(signature, str) else "",
        "from_webhook": True,
    }


def main(
    payload: str,
    stripe_signature: str = "",
    from_webhook: bool = False,
    dry_run: bool = False,
    failed: str = "",
    replay_of: str = "",
) -> dict:
    """Apply one Stripe event: a subscription's plan change, or a note saying why not.

    Args:
        payload: The Stripe event: from the webhook, the exact body; by hand, an event's JSON
            or its id (evt_...), which is read back from Stripe.
        stripe_signature: The Stripe-Signature header (the webhook sets it).
        from_webhook: Set by the webhook: the payload must then be signed. Leave it off.
        dry_run: Show what the event would do, without writing anything (a pasted event is
            used as it is).
        failed: Set when a webhook delivery failed: this job then fails with that message in
            its place (f/marketing/lib/delivery_failures.py). Leave it empty.
        replay_of: Set by f/marketing/replay: the failed job this run replays, so that its
            later attempts get job ids of their own. Leave it empty.
    """
    log_to_stdout()
    return delivered(
        SCRIPT_PATH,
        ["stripe"],
        lambda: _handle(payload, stripe_signature, from_webhook, dry_run, replay_of),
        from_webhook=from_webhook,
        failed=failed,
    )


def _handle(
    payload: str, stripe_signature: str, from_webhook: bool, dry_run: bool, replay_of: str
) -> dict:
    with job_workspace() as resources:
        stripe_settings = load_resource(StripeSettings, None, STRIPE_PATH, resources.get)
        assert stripe_settings is not None, "a required resource is never None"
        signed = None
        if from_webhook or stripe_signature:
            signed = _verified(payload, stripe_signature, stripe_settings, from_webhook)
        settings = load_settings(reader=resources.get)
        with StripeClient.from_settings(stripe_settings, QUEUE_ON_RATE_LIMIT) as client:
            return _apply(signed, payload, dry_run, settings, client, resources, replay_of)


def _verified(
    payload: str, signature: str, settings: StripeSettings, from_webhook: bool
) -> dict[str, Any]:
    try:
        if from_webhook and not payload:
            raise SignatureRefused(
                "Windmill passed no raw body: the webhook URL needs ?raw=true, since the "
                "signature covers the exact body"
            )
        verify(payload, signature, settings.secrets, tolerance=settings.tolerance_seconds)
    except SignatureRefused as exc:
        log.warning("Stripe webhook request refused: %s", exc)
        raise SignatureRefused(f"Stripe webhook request refused, nothing done: {exc}") from None
    return _event_json(payload)


def _apply(
    signed: dict[str, Any] | None,
    payload: str,
    dry_run: bool,
    settings: Settings,
    client: StripeClient,
    resources: Workspace,
    replay_of: str,
) -> dict:
    notes: list[str] = []
    event_id, pasted = (signed["id"], signed) if signed else _pasted(payload)
    args = {"payload": event_id} | ({"replay_of": replay_of} if replay_of else {})
    retry = NextRun(SCRIPT_PATH, args, skip_preprocessor=True)
    later = Later(
        f"stripe:{event_id}",
        settings.routing.retries,
        resources,
        retry,
        replay_of,
        rate_limits=settings.routing.rate_limits,
    )
    try:
        if signed is not None:
            stripe_event = signed
        elif dry_run and pasted is not None:
            stripe_event = pasted
            notes.append("dry run: the pasted event is used as it is, not read back from Stripe")
        else:
            stripe_event = _as_event(client.event(event_id))
            notes.append("event read back from Stripe")
        name = describe(stripe_event)
        mapped = map_event(stripe_event, settings.routing, client, read_back=not dry_run)
    except ServiceError as exc:
        failed = _not_applied(exc, f"Stripe event {event_id}")
        if not failed.transient or dry_run:
            raise failed from None
        return later.queue(failed, "stripe", notes, [])
    about = {"stripe_event": event_id, "stripe_type": stripe_event["type"]}
    if isinstance(mapped, Skip):
        log.info("%s: %s (%s)", name, mapped.label, mapped.reason)
        skipped = {**about, "skipped": mapped.reason}
        return JobResult(["stripe", mapped.label], ok=True, fields=skipped, notes=notes).as_dict()
    log.info("%s: applied as %s", name, mapped.event.event)
    job = EventJob(mapped.event, settings, later, notes + mapped.notes, labels=["stripe"])
    return {**about, **job.handle(dry_run)}


def _not_applied(exc: ServiceError, name: str) -> JobFailed:
    return JobFailed(
        f"{name}: {exc}\nDone: nothing\nNot done: Twenty, Mautic and Slack",
        JobResult(["stripe"], ok=False, steps=[]).as_dict(),
        transient=exc.transient,
        retry_after=exc.retry_after,
        rate_limited=exc.rate_limited,
    )


def _pasted(payload: str) -> tuple[str, dict[str, Any] | None]:
    """An event pasted in the form: its JSON, or only its id."""
    text = (payload or "").strip()
    if text.startswith("{"):
        event = _event_json(text)
        return event["id"], event
    return stripe_id(text, "payload (an event id, evt_...)", "evt_"), None


def _event_json(text: str) -> dict[str, Any]:
    try:
        return _as_event(json.loads(text))
    except ValueError:
        return _as_event(None)


def _as_event(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict) or event.get("object") != "event" or not event.get("type"):
        raise InvalidEvent(None, ["payload: not a Stripe event (a JSON object with object: event)"])
    event["id"] = stripe_id(event.get("id"), "payload id", "evt_")
    return event
