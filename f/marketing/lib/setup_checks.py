"""What f/marketing/setup checks, and with `apply` adds: each service against the routing.

Every check ends ok, fixed (apply added what was missing), warning (events work, but read
this) or failed, with the exact fix. A failed check is "blocking" when events would fail
because of it. Nothing here deletes, renames or changes the type of anything: apply only adds
fields, segments and options that are missing.
"""

from functools import partial
from typing import Any

from f.marketing.lib.errors import MarketingError, ServiceError
from f.marketing.lib.mautic_client import MauticClient
from f.marketing.lib.routing import Routing, SegmentRef
from f.marketing.lib.setup_report import Report, fix_for
from f.marketing.lib.slack_client import SlackClient
from f.marketing.lib.stripe_client import StripeClient
from f.marketing.lib.twenty_client import TwentyClient

# role -> (accepted types, type created by apply, label)
TWENTY_FIELDS = {
    "plan": ({"TEXT", "SELECT"}, "TEXT", "Subscription plan"),
    "source": ({"TEXT"}, "TEXT", "Signup source"),
    "consent": ({"BOOLEAN"}, "BOOLEAN", "Marketing consent"),
    "churn_reason": ({"TEXT"}, "TEXT", "Churn reason"),
    "churned_at": ({"DATE_TIME"}, "DATE_TIME", "Churned at"),
}
MAUTIC_FIELDS = {
    "plan": ({"text", "select"}, "text", "Plan"),
    "source": ({"text"}, "text", "Signup source"),
    "consent": ({"boolean"}, "boolean", "Marketing consent"),
    "churn_reason": ({"textarea", "text"}, "textarea", "Churn reason"),
    "churned_at": ({"datetime"}, "datetime", "Churned at"),
}
# What the handler's calls need, with the role setting that grants each (Settings > Roles).
MAUTIC_PERMISSIONS = {
    # contacts/new needs it even for a contact that exists (CommonApiController).
    "lead:leads:create": "Contacts: Create (every upsert needs it, for existing contacts too)",
    "lead:leads:viewother": "Contacts: View Others (to find any contact)",
    "lead:leads:editother": "Contacts: Edit Others (to update any contact and its segments)",
    "lead:lists:viewother": "Segments: View Others (to use segments other users made)",
    "campaign:campaigns:viewother": (
        "Campaigns: View Others (for this check to read campaigns other users built)"
    ),
    "lead:fields:view": "Custom Fields: View (for this check)",
}
# Only this check needs these: events work without them.
SETUP_ONLY_PERMISSIONS = {"campaign:campaigns:viewother", "lead:fields:view"}
OPTION_COLORS = ["blue", "green", "orange", "purple", "red", "yellow", "cyan", "pink", "gray"]


def _type_fits(
    report: Report, service: str, subject: str, found: Any, role: str, accepted: set[str]
) -> bool:
    """A wrong type is reported, never changed: a field's type is not ours to alter."""
    if found in accepted:
        return True
    report.add(
        service, subject, "failed", f"is {found}, the {role} needs {' or '.join(sorted(accepted))}",
        fix=f"map routing.fields.{service}.{role} to a field of that type",
    )  # fmt: skip
    return False


def _may_create(report: Report, service: str, subject: str, missing: str, how: str) -> bool:
    """With apply, go ahead; without, report the field missing and how to add it by hand."""
    if not report.apply:
        report.for_apply(service, subject, missing, how)
    return report.apply


# --- Twenty ---------------------------------------------------------------------------------


def check_twenty(client: TwentyClient, routing: Routing, report: Report) -> None:
    if not report.attempt("twenty", "API key", client.check_key):
        return
    report.add("twenty", "API key", "ok", "people can be read")
    _twenty_upsert(client, report)
    try:
        person = client.person_object()
    except ServiceError as exc:
        fix = "give the API key's role the Data model permission (Settings > Roles)"
        report.add("twenty", "data model", "failed", str(exc), fix=fix if exc.status == 403 else "")
        return
    if not isinstance(person.get("fields"), list):
        report.add(
            "twenty", "data model", "warning",
            "this Twenty version does not list People's fields through its REST API",
            fix="check the fields by hand under Settings > Data model > People",
        )  # fmt: skip
        return
    fields = {f["name"]: f for f in person["fields"]}
    names = routing.fields.twenty.model_dump()
    for role, name in names.items():
        if name is None:
            continue
        accepted, kind, label = TWENTY_FIELDS[role]
        existing, subject = fields.get(name), f"People field {name}"
        if existing is None:
            if role == "plan" and routing.fields.twenty_plan_values:
                kind = "SELECT"
            how = f"create it ({kind}, name {name}) under Settings > Data model > People"
            if _may_create(report, "twenty", subject, "missing", how):
                body = {"objectMetadataId": person["id"], "type": kind, "name": name,
                        "label": label, "isNullable": True}  # fmt: skip
                if kind == "SELECT":
                    body["options"] = _options(routing.fields.twenty_plan_values or {}, start=0)
                if report.attempt("twenty", subject, partial(client.create_field, body)):
                    report.add("twenty", subject, "fixed", f"created ({kind})")
        elif _type_fits(report, "twenty", subject, existing.get("type"), role, accepted):
            if existing.get("type") == "SELECT":
                _twenty_plan_options(client, existing, routing, report)
            else:
                report.add("twenty", subject, "ok", existing.get("type", ""))


def _twenty_upsert(client: TwentyClient, report: Report) -> None:
    try:
        supported = client.upsert_supported()
    except ServiceError as exc:
        supported, reason = None, str(exc)
    else:
        reason = "its OpenAPI document does not describe creating people"
    if supported:
        report.add("twenty", "upsert", "ok", "POST /rest/people takes ?upsert=true")
    elif supported is None:
        report.add(
            "twenty", "upsert", "warning", f"could not tell: {reason}",
            fix="make sure the server is recent enough to honour POST /rest/people?upsert=true",
            blocking=False,
        )  # fmt: skip
    else:
        report.add(
            "twenty", "upsert", "failed",
            "this server ignores ?upsert=true: a second event for a known email would fail "
            "as a duplicate",
            fix="upgrade Twenty to a release whose REST API takes ?upsert=true",
        )  # fmt: skip


def _twenty_plan_options(
    client: TwentyClient, existing: dict[str, Any], routing: Routing, report: Report
) -> None:
    subject = f"People field {existing['name']}"
    values = routing.fields.twenty_plan_values
    unmapped = [p for p in routing.segments.plans if not values or p not in values]
    if values is None or unmapped:
        plan = unmapped[0] if unmapped else "each plan"
        report.add(
            "twenty", subject, "failed",
            f"is a SELECT field, and {plan!r} has no option value in the routing",
            fix="map every plan to an option value in routing.fields.twenty_plan_values",
        )  # fmt: skip
        return
    options = list(existing.get("options") or [])
    have = {o.get("value") for o in options}
    wanted = {plan: value for plan, value in values.items() if value not in have}
    if not wanted:
        report.add("twenty", subject, "ok", "SELECT, with an option for every plan")
        return
    shown = ", ".join(sorted(wanted.values()))
    if not report.apply:
        report.for_apply(
            "twenty", subject, f"SELECT without the options {shown}",
            "add them under Settings > Data model > People",
        )  # fmt: skip
        return
    added = options + _options(wanted, start=len(options))
    if report.attempt("twenty", subject, lambda: client.set_field_options(existing["id"], added)):
        report.add("twenty", subject, "fixed", f"added the options {shown}")


def _options(values: dict[str, str], start: int) -> list[dict[str, Any]]:
    return [
        {
            "value": value,
            "label": plan,
            "color": OPTION_COLORS[(start + i) % len(OPTION_COLORS)],
            "position": start + i,
        }
        for i, (plan, value) in enumerate(values.items())
    ]


# --- Mautic ---------------------------------------------------------------------------------


def check_mautic(client: MauticClient, routing: Routing, report: Report) -> None:
    me: dict[str, Any] = {}

    def read_me() -> None:
        me.update(client.me())

    if not report.attempt("mautic", "API and credentials", read_me):
        return
    report.add("mautic", "API and credentials", "ok", f"API user {me.get('username')}")
    granted = _mautic_permissions(client, me, report)
    _mautic_fields(client, routing, report)
    _mautic_segments(client, routing, report, see_all=granted.get("lead:lists:viewother"))
    _mautic_campaigns(client, routing, report)


def _mautic_permissions(
    client: MauticClient, me: dict[str, Any], report: Report
) -> dict[str, bool]:
    try:
        granted = client.granted(int(me["id"]), list(MAUTIC_PERMISSIONS))
    except (ServiceError, KeyError, TypeError, ValueError) as exc:
        report.add(
            "mautic", "permissions", "warning", f"could not read them ({exc})",
            fix="the checks below still show what the API user cannot do",
            blocking=False,
        )  # fmt: skip
        return {}
    missing = [p for p in MAUTIC_PERMISSIONS if not granted.get(p)]
    if not missing:
        report.add("mautic", "permissions", "ok", "the API user's role grants what events need")
    for permission in missing:
        needed = permission not in SETUP_ONLY_PERMISSIONS
        report.add(
            "mautic", f"permission {permission}", "failed" if needed else "warning",
            "not granted" if needed else "not granted (events do not need it)",
            fix=f"give the API user's role {MAUTIC_PERMISSIONS[permission]}",
            blocking=needed,
        )  # fmt: skip
    return granted


def _mautic_fields(client: MauticClient, routing: Routing, report: Report) -> None:
    try:
        fields = {str(f.get("alias")): f for f in client.contact_fields()}
    except ServiceError as exc:
        report.add("mautic", "contact fields", "failed", str(exc),
                   fix="give the API user's role Custom Fields: View")  # fmt: skip
        return
    for role, alias in routing.fields.mautic.model_dump().items():
        if alias is None:
            continue
        accepted, kind, label = MAUTIC_FIELDS[role]
        existing, subject = fields.get(alias), f"contact field {alias}"
        if existing is None:
            how = f"create it ({kind}, alias {alias}) under Settings > Custom Fields"
            if _may_create(report, "mautic", subject, "missing: Mautic would drop its value", how):
                _create_mautic_field(client, report, subject, alias, kind, label)
        elif _type_fits(report, "mautic", subject, existing.get("type"), role, accepted):
            if existing.get("isPublished", True):
                report.add("mautic", subject, "ok", str(existing.get("type")))
            else:
                report.add(
                    "mautic", subject, "failed", "not published yet (its column is pending)",
                    fix="run Mautic's cron mautic:custom-field:create-column, or publish it",
                )  # fmt: skip


def _create_mautic_field(
    client: MauticClient, report: Report, subject: str, alias: str, kind: str, label: str
) -> None:
    body: dict[str, Any] = {"label": label, "alias": alias, "type": kind, "group": "core",
                            "isPublished": True}  # fmt: skip
    if kind == "boolean":
        body["properties"] = {"yes": "Yes", "no": "No"}
    try:
        _, in_background = client.create_contact_field(body)
    except MarketingError as exc:
        report.add("mautic", subject, "failed", str(exc), fix=fix_for(exc))
        return
    if in_background:
        report.add(
            "mautic", subject, "failed",
            "created; Mautic adds its column in the background, and drops values until then",
            fix="run Mautic's cron mautic:custom-field:create-column, then setup again",
        )  # fmt: skip
    else:
        report.add("mautic", subject, "fixed", f"created ({kind})")


def _mautic_segments(
    client: MauticClient, routing: Routing, report: Report, *, see_all: bool | None
) -> None:
    refs: list[SegmentRef] = routing.segments.all()
    if not refs:
        report.add("mautic", "segments", "warning", "none in the routing", blocking=False)
        return
    aliases: dict[str, dict[str, Any]] = {}
    if any(isinstance(r, str) for r in refs):
        try:
            aliases = {str(s.get("alias")): s for s in client.segments()}
        except ServiceError as exc:
            report.add("mautic", "segments", "failed", str(exc))
            return
    for ref in refs:
        subject = f"segment {ref}"
        try:
            segment = client.segment(ref) if isinstance(ref, int) else aliases.get(ref)
        except ServiceError as exc:
            report.add("mautic", subject, "failed", str(exc))
            continue
        if segment is None:
            _missing_segment(client, ref, report, see_all=see_all)
            continue
        if not segment.get("isPublished", True):
            report.add(
                "mautic", subject, "failed", "unpublished: adding and removing answer 403",
                fix=f"publish segment {segment.get('id')} in Mautic",
            )  # fmt: skip
        elif see_all is False and not segment.get("isGlobal", True):
            report.add(
                "mautic", subject, "failed", "not visible to other users, and the API user "
                "may not use other users' segments",
                fix="tick 'Visible to other users' on it, or give the API user's role "
                "Segments: View Others",
            )  # fmt: skip
        else:
            detail = f"id {segment.get('id')}, published" if isinstance(ref, str) else "published"
            report.add("mautic", subject, "ok", detail)


def _missing_segment(
    client: MauticClient, ref: SegmentRef, report: Report, *, see_all: bool | None
) -> None:
    subject = f"segment {ref}"
    if isinstance(ref, int):
        report.add(
            "mautic", subject, "failed", "does not exist",
            fix="create it and put its id in the routing, or name it by an alias there, "
            "which setup with apply creates",
        )  # fmt: skip
    elif not report.apply:
        report.for_apply(
            "mautic", subject, "no segment has this alias",
            "create a segment with this alias in Mautic",
        )  # fmt: skip
    elif see_all is False:
        # It may exist but be hidden: creating it would make a second one.
        report.add(
            "mautic", subject, "failed", "not found, and the API user cannot see other "
            "users' segments, so it may exist: not created",
            fix="give the API user's role Segments: View Others, then run setup again",
        )  # fmt: skip
    else:
        name = ref.replace("-", " ").capitalize()
        created: list[dict[str, Any]] = []
        if not report.attempt(
            "mautic", subject, lambda: created.append(client.create_segment(ref, name))
        ):
            return
        segment = created[0]
        if segment.get("alias") == ref:
            report.add("mautic", subject, "fixed", f"created (id {segment.get('id')})")
        else:  # Mautic saves a cleaned or numbered alias: read back, never assumed
            report.add(
                "mautic", subject, "failed",
                f"created as segment {segment.get('id')}, but Mautic saved its alias as "
                f"{segment.get('alias')!r}",
                fix=f"put {segment.get('alias')!r} (or the id) in the routing",
            )  # fmt: skip


def _mautic_campaigns(client: MauticClient, routing: Routing, report: Report) -> None:
    for purpose, campaign_id in routing.campaigns.model_dump().items():
        subject = f"{purpose} campaign"
        if campaign_id is None:
            report.add(
                "mautic", subject, "warning", "none configured: no email sequence",
                fix=f"build it in Mautic's campaign builder and put its id in "
                f"routing.campaigns.{purpose}",
                blocking=False,
            )  # fmt: skip
            continue
        subject = f"{purpose} campaign {campaign_id}"
        if not report.attempt(
            "mautic", subject, partial(client.in_campaign, campaign_id, 0)
        ):  # the membership check events make
            continue
        try:
            campaign = client.campaign(campaign_id)
        except ServiceError as exc:
            if exc.status != 403:
                report.add("mautic", subject, "failed", str(exc))
                continue
            report.add(
                "mautic", subject, "warning",
                f"its settings (published, restarts) could not be read: {exc}",
                fix="give the API user's role Campaigns: View Others, or check them in Mautic",
                blocking=False,
            )  # fmt: skip
            continue
        if campaign is None:
            report.add(
                "mautic", subject, "failed", "does not exist",
                fix=f"put the id of an existing campaign in routing.campaigns.{purpose}, "
                f"or null",
            )  # fmt: skip
            continue
        notes = []
        if not campaign.get("isPublished", True):
            notes.append("unpublished: contacts added wait, then get every email on publish")
        if campaign.get("allowRestart"):
            notes.append(
                "allows restarts: a contact added again would get the sequence again "
                "(events check membership first, so they never add a member twice)"
            )
        if notes:
            report.add("mautic", subject, "warning", "; ".join(notes), blocking=False)
        else:
            report.add("mautic", subject, "ok", str(campaign.get("name", "")))


# --- Slack ----------------------------------------------------------------------------------


def check_slack(client: SlackClient | None, test_message: bool, report: Report) -> None:
    if client is None:
        report.add("slack", "resource", "warning", "none at f/marketing/slack: no messages",
                   blocking=False)  # fmt: skip
        return
    report.add("slack", "resource", "ok", f"posts to the {client.destination}")
    if not test_message:
        return
    text = "Test from f/marketing/setup: lifecycle notifications will arrive here."
    if report.attempt("slack", "test message", lambda: client.post(text, []), blocking=False):
        report.add("slack", "test message", "ok", "posted")


# --- Stripe ---------------------------------------------------------------------------------

# What f/marketing/stripe_events reads, and the restricted key's permission for each.
STRIPE_READS = {"events": "Events", "subscriptions": "Subscriptions", "customers": "Customers"}


def check_stripe(client: StripeClient, report: Report) -> None:
    """The key may read what a Stripe event names (the signing secret shows at the first
    delivery: Stripe's dashboard can send a test event)."""
    for kind, permission in STRIPE_READS.items():
        subject = f"read {kind}"
        try:
            client.first(kind)
        except ServiceError as exc:
            fix = (
                f"give the restricted key {permission}: Read (Stripe > Developers > API keys)"
                if exc.status == 403
                else fix_for(exc)
            )
            report.add("stripe", subject, "failed", str(exc), fix=fix)
            continue
        report.add("stripe", subject, "ok", "the key may")
