# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
"""Bring the users a SaaS already has into Twenty and Mautic, at the pace the services allow.

Run it from the Windmill UI with a CSV or JSON file (uploaded, or in the workspace's object
storage). Each row is one user as they are now; it is checked with the live events' contract
and applied by their rules (lib/backfill_apply.py), with batch calls and no Slack message per
user. A dry run (the default) reads only, and says what would change, how many calls that
takes and how long at the routing's rate_limits.

A checkpoint in the workspace (f/marketing/backfill_runs/<file and options>) remembers how
far a run got: a cancelled or failed run, run again on the same file, resumes there, and a
file already done is not applied twice.
"""

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

from f.marketing.lib.backfill_checkpoint import checkpoint_path
from f.marketing.lib.backfill_file import Readable, Scan, User, read_users
from f.marketing.lib.backfill_run import Run
from f.marketing.lib.errors import ConfigError, MarketingError
from f.marketing.lib.job_log import log, log_to_stdout
from f.marketing.lib.resource_types import (
    S3Object,
    c_marketing_routing,
    c_mautic,
    c_slack_notify,
    c_twenty,
)
from f.marketing.lib.settings import Settings, load_settings
from f.marketing.lib.slack_client import SlackClient
from f.marketing.lib.windmill_api import Workspace, job_workspace


def main(
    file: bytes | None = None,
    s3_file: S3Object | None = None,
    file_format: Literal["auto", "csv", "json"] = "auto",
    dry_run: bool = True,
    campaigns: bool = False,
    restart: bool = False,
    slack_summary: bool = True,
    twenty: c_twenty | None = None,
    mautic: c_mautic | None = None,
    slack: c_slack_notify | None = None,
    routing: c_marketing_routing | None = None,
) -> dict:
    """Apply a file of existing users (dry run first).

    Args:
        file: The users, as CSV (a header row: email, name, plan, source, marketing_consent,
            and optionally churned, reason, signed_up_at, churned_at) or JSON (objects with
            those keys, in an array or one a line).
        s3_file: Or the file in the workspace's object storage (for files too big to upload).
        file_format: auto tells CSV from JSON by the first character.
        dry_run: Read only: what would be created or updated, the calls, the time it takes.
        campaigns: Also start the onboarding (or, for churned users, win-back) campaign. Off
            by default: a user who signed up months ago rarely wants a welcome sequence now.
        restart: Ignore the checkpoint of an earlier run of this file and apply it all again
            (harmless: every step is an upsert or checks first).
        slack_summary: Post one summary to Slack at the end (never a message per user).
        twenty: Leave empty to use f/marketing/twenty.
        mautic: Leave empty to use f/marketing/mautic.
        slack: Leave empty to use f/marketing/slack.
        routing: Leave empty to use f/marketing/routing.
    """
    log_to_stdout()
    source = _Source(file, s3_file)
    started = time.monotonic()
    now = datetime.now(UTC)
    with job_workspace() as resources:
        with source.open(resources) as stream:
            scan = Scan.of(stream, file_format, now)
        log.info(
            "%s: %d rows, %d valid, %d invalid", source.name, scan.rows, scan.valid, scan.invalid
        )
        settings = load_settings(twenty, mautic, slack, routing, reader=resources.get)
        path = checkpoint_path(scan.digest, campaigns)
        run = Run(settings, resources, path, dry_run=dry_run, campaigns=campaigns)
        if not dry_run and not restart and run.checkpoint.complete:
            log.info("%s was applied completely before: nothing to do", source.name)
            return run.result(source.name, scan, started, already_done=True)
        with source.open(resources) as stream:
            users = (u for u in read_users(stream, file_format, now) if isinstance(u, User))
            run.apply(users, scan, restart=restart)
        result = run.result(source.name, scan, started)
        if slack_summary and settings.slack and not dry_run:
            _post_summary(settings, result)
        return result


class _Source:
    def __init__(self, file: bytes | None, s3_file: S3Object | None) -> None:
        if (file is None) == (not s3_file):
            raise ConfigError("give the users either as file (an upload) or as s3_file")
        self.file, self.s3_file = file, s3_file
        self.name = f"s3 {s3_file['s3']}" if s3_file else f"uploaded file ({len(file or b'')} B)"

    @contextmanager
    def open(self, workspace: Workspace) -> Iterator[Readable]:
        if self.file is not None:
            yield io.BytesIO(self.file)
            return
        assert self.s3_file is not None
        with workspace.open_file(dict(self.s3_file)) as reader:
            yield reader


def _post_summary(settings: Settings, result: dict) -> None:
    counts = result["counts"]
    text = (
        f"Backfill of {result['rows']} users: "
        + ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        + f" ({result['seconds']:.0f} s)"
    )
    assert settings.slack is not None
    with SlackClient.from_settings(settings.slack) as client:
        try:
            client.post(text, [])
        except MarketingError as exc:
            log.warning("backfill summary not posted to Slack: %s", exc)
