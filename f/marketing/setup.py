# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
"""Check that Twenty, Mautic, Slack, Stripe and Windmill are ready for lifecycle events; with
`apply`, add what is missing (fields, segments, plan options). Nothing is ever deleted or
renamed.

Run it from the Windmill UI after filling in the resources, and again after changing the
routing. Locally: scripts/setup [--apply].
"""

from contextlib import nullcontext
from typing import Any

from f.marketing.lib.errors import ConfigError, MarketingError, SetupIncomplete
from f.marketing.lib.job_log import log_to_stdout
from f.marketing.lib.mautic_client import MauticClient
from f.marketing.lib.resource_types import (
    c_marketing_routing,
    c_mautic,
    c_slack_notify,
    c_stripe,
    c_twenty,
)
from f.marketing.lib.routing import Routing
from f.marketing.lib.service_settings import (
    MauticSettings,
    SlackSettings,
    StripeSettings,
    TwentySettings,
)
from f.marketing.lib.settings import (
    MAUTIC_PATH,
    ROUTING_PATH,
    SLACK_PATH,
    STRIPE_PATH,
    TWENTY_PATH,
    load_resource,
)
from f.marketing.lib.setup_checks import check_mautic, check_slack, check_stripe, check_twenty
from f.marketing.lib.setup_report import Report
from f.marketing.lib.slack_client import SlackClient
from f.marketing.lib.slack_ledger import LEDGER_PREFIX
from f.marketing.lib.stripe_client import StripeClient
from f.marketing.lib.twenty_client import TwentyClient
from f.marketing.lib.windmill_api import WindmillApi, job_workspace

FOLDER = "marketing"
NO_SLACK = "no resource: no Slack messages"
NO_STRIPE = "no resource: f/marketing/stripe_events refuses Stripe's deliveries (fine without it)"


def main(
    apply: bool = False,
    send_test_message: bool = False,
    twenty: c_twenty | None = None,
    mautic: c_mautic | None = None,
    slack: c_slack_notify | None = None,
    routing: c_marketing_routing | None = None,
    stripe: c_stripe | None = None,
) -> dict:
    """Report what is ready and what is not; fail when events would fail.

    Args:
        apply: Create what is missing: Twenty and Mautic fields, Mautic segments named by alias
            in the routing, Twenty plan options. Off: only check.
        send_test_message: Post a test message to the Slack destination.
        twenty: Leave empty to use f/marketing/twenty.
        mautic: Leave empty to use f/marketing/mautic.
        slack: Leave empty to use f/marketing/slack.
        routing: Leave empty to use f/marketing/routing.
        stripe: Leave empty to use f/marketing/stripe (none: Stripe's webhook is not used).
    """
    log = log_to_stdout()
    report = Report(apply)
    with job_workspace() as resources:
        read = resources.get
        routing_ = _load(report, Routing, routing, ROUTING_PATH, read)
        twenty_ = _load(report, TwentySettings, twenty, TWENTY_PATH, read)
        mautic_ = _load(report, MauticSettings, mautic, MAUTIC_PATH, read)
        slack_ = _load(report, SlackSettings, slack, SLACK_PATH, read, absent=NO_SLACK)
        stripe_ = _load(report, StripeSettings, stripe, STRIPE_PATH, read, absent=NO_STRIPE)
        if isinstance(resources, WindmillApi):
            _check_ledger_folder(report, resources)
        if routing_ and twenty_:
            with TwentyClient.from_settings(twenty_) as client:
                check_twenty(client, routing_, report)
        if routing_ and mautic_:
            with MauticClient.from_settings(mautic_) as client:
                check_mautic(client, routing_, report)
        if not any(c.subject == SLACK_PATH and c.status == "failed" for c in report.checks):
            with SlackClient.from_settings(slack_) if slack_ else nullcontext() as client:
                check_slack(client, send_test_message, report)
        if stripe_:
            with StripeClient.from_settings(stripe_) as client:
                check_stripe(client, report)

    for line in report.text().splitlines():
        log.info(line)
    if report.blocking:
        raise SetupIncomplete(
            f"{len(report.blocking)} check(s) would make events fail ({report.advice()}):\n"
            + "\n".join(c.line() for c in report.blocking)
            + f"\n{report.counts()}",
            report.result(),
        )
    return report.result()


def _load(
    report: Report, model: Any, given: Any, path: str, read: Any, *, absent: str | None = None
) -> Any:
    """The resource, reported; `absent` is what its absence means when it is optional."""
    try:
        value = load_resource(model, given, path, read, optional=absent is not None)
    except ConfigError as exc:
        report.add("windmill", path, "failed", str(exc), blocking=path != SLACK_PATH)
        return None
    if value is None:
        report.add("windmill", path, "warning", str(absent), blocking=False)
    else:
        report.add("windmill", path, "ok", "readable and well formed")
    return value


def _check_ledger_folder(report: Report, resources: WindmillApi) -> None:
    try:
        user, may_write = resources.may_write_folder(FOLDER)
    except MarketingError as exc:
        report.add("windmill", "Slack ledger", "warning", f"could not tell: {exc}", blocking=False)
        return
    if may_write:
        report.add("windmill", "Slack ledger", "ok", f"{user} may write {LEDGER_PREFIX}")
    else:
        report.add(
            "windmill", "Slack ledger", "failed",
            f"{user} may not write in folder f/{FOLDER}: Slack posts would not be de-duplicated",
            fix=f"add {user} to the group marketing_ops (it may write in f/{FOLDER})",
            blocking=False,
        )  # fmt: skip
