"""One backfill run: the valid rows in chunks, each applied (lib/backfill_apply.py) and then
checkpointed (lib/backfill_checkpoint.py), Twenty and Mautic each at its own pace; and the
run's result, with the estimate of a dry run."""

import queue
import threading
import time
from collections.abc import Iterator
from itertools import islice
from typing import Any

import httpx

from f.marketing.lib.backfill_apply import Applier, Segments
from f.marketing.lib.backfill_checkpoint import Checkpoint
from f.marketing.lib.backfill_file import Scan, User
from f.marketing.lib.backfill_tally import Tally
from f.marketing.lib.errors import JobFailed, MarketingError
from f.marketing.lib.job_log import log
from f.marketing.lib.mautic_client import MauticClient
from f.marketing.lib.pacer import Pacer
from f.marketing.lib.service_http import RetryPolicy
from f.marketing.lib.settings import Settings
from f.marketing.lib.twenty_client import TwentyClient
from f.marketing.lib.windmill_api import Progress, Workspace

# Users per chunk: three Twenty batches of 60, one Mautic batch (at most 200); checkpointed.
CHUNK = 180
# A backfill has time: it waits out a rate limit or a blip rather than stopping.
POLICY = RetryPolicy(
    max_attempts=8, initial_delay=1.0, max_delay=60.0, max_retry_after=300.0, budget=900.0,
    timeout=httpx.Timeout(120.0, connect=10.0),
)  # fmt: skip


class Run:
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
        self.checkpoint = Checkpoint(resources, path, dry_run=dry_run)
        self.tally = self.checkpoint.tally
        self.resumed_from = self.rows_done = self.checkpoint.rows_done

    def apply(self, users: Iterator[User], scan: Scan, *, restart: bool) -> None:
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
        self, users: Iterator[User], scan: Scan, twenty: TwentyClient, mautic: MauticClient
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
        self.checkpoint.save(self.rows_done, self.tally, complete=complete)

    def result(
        self, source_name: str, scan: Scan, started: float, *, already_done: bool = False
    ) -> dict:
        limits = self.settings.routing.rate_limits
        counts = {**scan.bad.counts, **self.tally.counts}
        result: dict[str, Any] = {
            "file": source_name,
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

    def __init__(self, run: Run, scan: Scan) -> None:
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
