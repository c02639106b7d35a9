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

import hashlib
import io
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import IO, Any, Literal

import httpx

from f.marketing.lib.backfill_apply import Applier, Segments, Tally
from f.marketing.lib.backfill_file import BadRow, User, read_users
from f.marketing.lib.errors import ConfigError, JobFailed, MarketingError
from f.marketing.lib.job_log import log, log_to_stdout
from f.marketing.lib.mautic_client import MauticClient
from f.marketing.lib.pacer import Pacer
from f.marketing.lib.resource_types import (
    S3Object,
    c_marketing_routing,
    c_mautic,
    c_slack_notify,
    c_twenty,
)
from f.marketing.lib.service_http import RetryPolicy
from f.marketing.lib.settings import Settings, load_settings
from f.marketing.lib.slack_client import SlackClient
from f.marketing.lib.twenty_client import TwentyClient
from f.marketing.lib.windmill_api import Progress, Workspace, job_workspace

CHECKPOINTS = "f/marketing/backfill_runs/"
# Users per chunk: three Twenty batches of 60, one Mautic batch (at most 200); checkpointed.
CHUNK = 180
# A backfill has time: it waits out a rate limit or a blip rather than stopping.
POLICY = RetryPolicy(
    max_attempts=8, initial_delay=1.0, max_delay=60.0, max_retry_after=300.0, budget=900.0,
    timeout=httpx.Timeout(120.0, connect=10.0),
)  # fmt: skip


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
            scan = _Scan.of(stream, file_format, now)
        log.info(
            "%s: %d rows, %d valid, %d invalid", source.name, scan.rows, scan.valid, scan.invalid
        )
        settings = load_settings(twenty, mautic, slack, routing, reader=resources.get)
        key = hashlib.sha256(f"{scan.digest}|campaigns={campaigns}".encode()).hexdigest()[:24]
        run = _Run(settings, resources, CHECKPOINTS + key, dry_run=dry_run, campaigns=campaigns)
        if not dry_run and not restart and run.checkpoint.get("complete"):
            log.info("%s was applied completely before: nothing to do", source.name)
            return run.result(source, scan, started, already_done=True)
        with source.open(resources) as stream:
            users = (u for u in read_users(stream, file_format, now) if isinstance(u, User))
            run.apply(users, scan, restart=restart)
        result = run.result(source, scan, started)
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
    def open(self, workspace: Workspace) -> Iterator[IO[bytes]]:
        if self.file is not None:
            yield io.BytesIO(self.file)
            return
        assert self.s3_file is not None
        with workspace.open_file(dict(self.s3_file)) as reader:
            yield reader


class _Scan:
    """The first pass: counts, the bad rows, and the file's fingerprint (for its checkpoint)."""

    def __init__(self) -> None:
        self.rows = self.valid = self.invalid = 0
        self.bad: Tally = Tally()
        self.digest = ""

    @classmethod
    def of(cls, stream: IO[bytes], kind: str, now: datetime) -> "_Scan":
        scan, hashing = cls(), _Hashing(stream)
        for row in read_users(hashing, kind, now):
            scan.rows += 1
            if isinstance(row, BadRow):
                scan.invalid += 1
                scan.bad.problem("invalid", row.text())
            else:
                scan.valid += 1
        scan.digest = hashing.sha.hexdigest()
        return scan


class _Hashing:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.sha = stream, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha.update(data)
        return data


class _Run:
    def __init__(
        self,
        settings: Settings,
        resources: Workspace,
        path: str,
        *,
        dry_run: bool,
        campaigns: bool,
    ) -> None:
        limits = settings.routing.rate_limits
        self.settings, self.resources, self.path, self.dry_run = settings, resources, path, dry_run
        self.pacers = {
            "twenty": Pacer(limits.twenty_per_minute),
            "mautic": Pacer(limits.mautic_per_minute),
        }
        self.campaigns = campaigns
        self.checkpoint: dict[str, Any] = {} if dry_run else (resources.get(path) or {})
        self.tally = Tally.from_dict(self.checkpoint.get("tally") or {})
        self.resumed_from = int(self.checkpoint.get("rows_done") or 0)
        self.rows_done = self.resumed_from
        self._written = bool(self.checkpoint)

    def apply(self, users: Iterator[User], scan: _Scan, *, restart: bool) -> None:
        if restart:
            self.tally, self.resumed_from, self.rows_done = Tally(), 0, 0
        # Made here, not before: a file already applied needs no connection at all.
        with (
            TwentyClient.from_settings(
                self.settings.twenty, POLICY, before_each=self.pacers["twenty"]
            ) as twenty,
            MauticClient.from_settings(
                self.settings.mautic, POLICY, before_each=self.pacers["mautic"]
            ) as mautic,
        ):
            self._apply(users, scan, twenty, mautic)

    def _apply(
        self, users: Iterator[User], scan: _Scan, twenty: TwentyClient, mautic: MauticClient
    ) -> None:
        try:
            segments = Segments.resolve(mautic, twenty, self.settings.routing)
            applier = Applier(twenty, mautic, self.settings.routing, segments,
                              campaigns=self.campaigns)  # fmt: skip
            remaining = (u for u in users if u.number > self.resumed_from)
            chunks = iter(lambda: list(islice(remaining, CHUNK)), [])
            done = _Done(self, scan)
            if self.dry_run:
                for chunk in chunks:
                    applier.estimate(chunk, tally := Tally())
                    done.chunk(chunk, tally)
            else:
                self._pipelined(chunks, applier, done)
            self.rows_done = scan.rows
            self._save(complete=True)
        except MarketingError as exc:
            done_rows = f"rows 1 to {self.rows_done}" if self.rows_done else "no row"
            raise JobFailed(
                f"{exc}\nDone: {done_rows} (checkpoint {self.path}). Not done: the rows after it; "
                f"run the backfill again on the same file to resume there.",
                {"rows_done": self.rows_done, **self.tally.as_dict()},
            ) from None

    def _pipelined(self, chunks: Iterator[list[User]], applier: Applier, done: "_Done") -> None:
        """Twenty's part of a chunk, then Mautic's in a second thread while Twenty does the
        next one: each service waits on its own pace, not on the other's. A chunk counts as
        done (checkpointed) once Mautic's part ends; Twenty is never more than two ahead."""
        handoff: queue.Queue[tuple[list[User], list[User], Tally] | None] = queue.Queue(1)
        failed: list[BaseException] = []

        def mautic_part() -> None:
            while (item := handoff.get()) is not None:
                if failed:
                    continue  # drain, so that the Twenty side never blocks on a full queue
                chunk, took, tally = item
                try:
                    applier.to_mautic(took, tally)
                    done.chunk(chunk, tally)
                except BaseException as exc:  # handed over to the main thread
                    failed.append(exc)

        worker = threading.Thread(target=mautic_part, name="backfill-mautic", daemon=True)
        worker.start()
        try:
            for chunk in chunks:
                if failed:
                    break
                tally = Tally()  # a chunk's counts join the run's once the chunk is done
                handoff.put((chunk, applier.to_twenty(chunk, tally), tally))
        finally:
            handoff.put(None)
            worker.join()
        if failed:
            raise failed[0]

    def _save(self, *, complete: bool) -> None:
        if self.dry_run:
            return
        value = {"rows_done": self.rows_done, "complete": complete, "tally": self.tally.as_dict(),
                 "at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        if self._written:
            self.resources.update(self.path, value)
        else:
            self._written = True
            if not self.resources.create(self.path, value, "state"):
                self.resources.update(self.path, value)

    def result(
        self, source: _Source, scan: _Scan, started: float, *, already_done: bool = False
    ) -> dict:
        limits = self.settings.routing.rate_limits
        counts = {**scan.bad.counts, **self.tally.counts}
        result: dict[str, Any] = {
            "file": source.name,
            "dry_run": self.dry_run,
            "rows": scan.rows,
            "valid": scan.valid,
            "invalid": scan.invalid,
            "counts": counts,
            "problems": (scan.bad.problems + self.tally.problems)[:200],
            "calls": {name: pacer.calls for name, pacer in self.pacers.items()},
            "seconds": round(time.monotonic() - started, 1),
            "checkpoint": None if self.dry_run else self.path,
            "wm_labels": ["backfill", "dry-run" if self.dry_run else "applied"],
        }
        if already_done:
            result["already_done"] = True
        if self.resumed_from:
            result["resumed_after_row"] = self.resumed_from
        if self.dry_run:
            minutes = max(
                counts.get("twenty calls", 0) / (limits.twenty_per_minute or float("inf")),
                counts.get("mautic calls", 0) / (limits.mautic_per_minute or float("inf")),
            )
            result["estimate"] = {
                "twenty calls": counts.get("twenty calls", 0),
                "mautic calls": counts.get("mautic calls", 0),
                "seconds at the rate limits": round(minutes * 60),
            }
        return result


class _Done:
    """After each chunk: the checkpoint, Windmill's progress bar and a log line."""

    def __init__(self, run: _Run, scan: _Scan) -> None:
        self.run, self.scan = run, scan
        self.progress = Progress(run.resources, scan.rows)
        self.began, self.rows = time.monotonic(), 0

    def chunk(self, chunk: list[User], tally: Tally) -> None:
        run, scan = self.run, self.scan
        run.tally.merge(tally)
        run.rows_done = chunk[-1].number
        self.rows += len(chunk)
        run._save(complete=False)
        self.progress.show(run.rows_done)
        rate = self.rows / max(time.monotonic() - self.began, 1e-9) * 60
        left = max(0, scan.rows - run.rows_done)
        eta = f", about {left / rate:.1f} min left" if rate and left else ""
        log.info(
            "rows %d/%d (%d%%), %.0f rows/min%s",
            run.rows_done, scan.rows, run.rows_done * 100 // max(scan.rows, 1), rate, eta,
        )  # fmt: skip


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
