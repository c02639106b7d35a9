"""Benchmark: a backfill of existing users against rate-limited stand-ins of Twenty and Mautic,
against the baseline of one live handler job per user, measured in the same run.

    .venv/bin/python scripts/bench_backfill.py [--rows 10000] [--speed 4] [--baseline 150]

Stand-ins (tests/fakes) keep their state. Twenty allows 100 requests a minute (a bucket that
refills continuously, 429 with Retry-After), Mautic 300 a minute (its hourly limiter set to
18,000); both start with an empty minute, and the routing's rate_limits are set to those
limits. Time is model time, running `--speed` times faster than the wall clock. The file has
one user in five without marketing consent and one in ten churned.

Reported: rows a minute against the ceiling the limits allow for the calls the run needs
(the slower of Twenty's and Mautic's), calls per 1,000 rows, and, in a second pass without
pacing that streams the file from disk, the peak memory for N and 2N rows (tracemalloc), the
stand-ins' own state emptied after each chunk so that only the backfill is measured.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import tracemalloc
import types
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import respx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from f.marketing import backfill
from f.marketing.handle_user_event import main as handle_user_event
from f.marketing.lib import pacer, service_http
from f.marketing.lib.backfill_apply import Applier
from f.marketing.lib.job_log import log_to_stdout
from tests.conftest import ROUTING
from tests.fakes import FakeMautic, FakeSlackWebhook, FakeTwenty, FakeWindmill

TWENTY_PER_MINUTE = 100
MAUTIC_PER_MINUTE = 300
real_sleep = time.sleep


class ModelClock:
    def __init__(self, speed: float) -> None:
        self.speed, self.real0 = speed, time.monotonic()

    def seconds(self) -> float:
        return (time.monotonic() - self.real0) * self.speed

    def sleep(self, seconds: float) -> None:
        real_sleep(max(0.0, seconds) / self.speed)


def write_file(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write("email,name,plan,source,marketing_consent,churned,reason\n")
        for i in range(rows):
            plan = ("free", "pro", "business")[i % 3]
            consent = "no" if i % 5 == 0 else "yes"
            churned, reason = ("yes", "price") if i % 10 == 3 else ("", "")
            out.write(f"user{i}@bench.test,User {i},{plan},import,{consent},{churned},{reason}\n")


class Services:
    def __init__(self, clock: ModelClock | None) -> None:
        monotonic = clock.seconds if clock else time.monotonic
        limited = clock is not None
        self.twenty = FakeTwenty(
            rate_limit=TWENTY_PER_MINUTE if limited else None,
            rate_limit_headers=True,
            monotonic=monotonic,
        )
        if limited:
            self.twenty.exhaust_rate_limit()
        self.mautic = FakeMautic(
            rate_limit=MAUTIC_PER_MINUTE * 60 if limited else None, monotonic=monotonic
        )
        self.slack, self.windmill = FakeSlackWebhook(), FakeWindmill()
        routing = json.loads(json.dumps(ROUTING))
        routing["rate_limits"] = {
            "twenty_per_minute": TWENTY_PER_MINUTE if limited else None,
            "mautic_per_minute": MAUTIC_PER_MINUTE if limited else None,
        }
        resources = {
            "f/marketing/twenty": {"base_url": self.twenty.base_url,
                                   "api_key": self.twenty.api_key},
            "f/marketing/mautic": {"base_url": self.mautic.base_url,
                                   "username": self.mautic.username,
                                   "password": self.mautic.password},
            "f/marketing/slack": {"webhook_url": self.slack.url},
            "f/marketing/routing": routing,
        }  # fmt: skip
        for path, value in resources.items():
            self.windmill.put(path, value)

    def forget(self) -> None:
        """Empty what the stand-ins remember (people, contacts, requests seen)."""
        self.twenty.people.clear()
        self.twenty._by_email.clear()
        self.mautic.contacts.clear()
        self.mautic._by_email.clear()
        self.mautic._dnc_ids.clear()
        for members in self.mautic.segment_members.values():
            members.clear()
        for fake in (self.twenty, self.mautic, self.windmill):
            fake.requests.clear()
        self.router.reset()  # respx keeps every call it saw

    def calls(self) -> dict[str, int]:
        return {"twenty": len(self.twenty.requests), "mautic": len(self.mautic.requests)}

    def mounted(self, stack: ExitStack, clock: ModelClock | None) -> None:
        self.router = router = stack.enter_context(respx.mock(assert_all_called=False))
        for fake in (self.twenty, self.mautic, self.slack, self.windmill):
            fake.mount(router)
        environment = {
            "WM_WORKSPACE": self.windmill.workspace,
            "WM_TOKEN": self.windmill.token,
            "BASE_INTERNAL_URL": self.windmill.base_url,
        }
        stack.enter_context(mock.patch.dict(os.environ, environment))
        os.environ.pop("WM_MOCKED_API_FILE", None)
        if clock:
            model = types.SimpleNamespace(monotonic=clock.seconds, sleep=clock.sleep)
            stack.enter_context(mock.patch.object(pacer, "time", model))
            stack.enter_context(mock.patch.object(service_http.time, "sleep", clock.sleep))


def paced_run(rows: int, speed: float, folder: Path) -> dict:
    clock = ModelClock(speed)
    services = Services(clock)
    path = folder / f"paced-{rows}.csv"
    write_file(path, rows)
    with ExitStack() as stack:
        services.mounted(stack, clock)
        start = clock.seconds()
        result = backfill.main(file=path.read_bytes(), dry_run=False, slack_summary=False)
        minutes = (clock.seconds() - start) / 60
    calls = services.calls()
    ceiling = rows / max(calls["twenty"] / TWENTY_PER_MINUTE, calls["mautic"] / MAUTIC_PER_MINUTE)
    assert len(services.twenty.people) == rows and len(services.mautic.contacts) == rows
    return {
        "rows/min": rows / minutes,
        "ceiling": ceiling,
        "calls": calls,
        "minutes": minutes,
        "counts": result["counts"],
    }


def baseline_run(users: int, speed: float) -> dict:
    """One live handler job per user, one after another, waiting out Twenty's limit in the
    job (as a worker would; queued later attempts only move the wait elsewhere)."""
    clock = ModelClock(speed)
    services = Services(clock)
    with ExitStack() as stack:
        services.mounted(stack, clock)
        waiting = service_http.RetryPolicy(max_retry_after=120.0, budget=600.0)
        stack.enter_context(mock.patch("f.marketing.lib.steps.QUEUE_ON_RATE_LIMIT", waiting))
        start = clock.seconds()
        for i in range(users):
            event = {"event": "user.registered", "email": f"user{i}@bench.test",
                     "name": f"User {i}", "plan": ("free", "pro", "business")[i % 3],
                     "source": "import", "marketingConsent": i % 5 != 0,
                     "timestamp": "2026-11-30T09:00:00Z"}  # fmt: skip
            handle_user_event(payload=json.dumps(event))
        minutes = (clock.seconds() - start) / 60
    return {"rows/min": users / minutes, "ceiling": float(TWENTY_PER_MINUTE),
            "calls": services.calls(), "minutes": minutes}  # fmt: skip


def memory_run(rows: int, folder: Path) -> float:
    """Peak MiB traced while backfilling `rows` streamed from disk, unpaced."""
    services = Services(None)
    path = folder / f"memory-{rows}.csv"
    write_file(path, rows)
    original = Applier.to_mautic

    def then_forget(self, users, tally):
        original(self, users, tally)
        services.forget()  # the stand-ins' memory is not the backfill's

    with ExitStack() as stack:
        services.mounted(stack, None)
        stack.enter_context(mock.patch.object(Applier, "to_mautic", then_forget))
        stack.enter_context(
            mock.patch(
                "f.marketing.lib.windmill_api.WindmillApi.open_file",
                lambda self, s3object: path.open("rb"),
            )
        )
        tracemalloc.start()
        backfill.main(s3_file={"s3": path.name}, dry_run=False, slack_summary=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--baseline", type=int, default=150)
    args = parser.parse_args()
    log_to_stdout().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paced = paced_run(args.rows, args.speed, folder)
        base = baseline_run(args.baseline, args.speed)
        memory = {n: memory_run(n, folder) for n in (args.rows, 2 * args.rows)}
    print(f"Backfill of {args.rows:,} users (1 in 5 without consent, 1 in 10 churned) against "
          f"Twenty at {TWENTY_PER_MINUTE}/min and Mautic at {MAUTIC_PER_MINUTE}/min; model time "
          f"x{args.speed:g}")  # fmt: skip
    print(f"{'':32}{'rows/min':>10}{'ceiling':>10}{'share':>8}"
          f"{'twenty/1k':>11}{'mautic/1k':>11}{'minutes':>9}")  # fmt: skip
    for name, run, rows in (
        (f"backfill ({args.rows:,} rows)", paced, args.rows),
        (f"live handler ({args.baseline} jobs)", base, args.baseline),
    ):
        calls = run["calls"]
        print(f"{name:32}{run['rows/min']:>10,.0f}{run['ceiling']:>10,.0f}"
              f"{run['rows/min'] / run['ceiling']:>8.0%}"
              f"{calls['twenty'] * 1000 / rows:>11,.0f}{calls['mautic'] * 1000 / rows:>11,.0f}"
              f"{run['minutes']:>9.1f}")  # fmt: skip
    print("Peak memory, unpaced, file streamed from disk:")
    for rows, mib in memory.items():
        print(f"  {rows:>7,} rows: {mib:6.1f} MiB traced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
