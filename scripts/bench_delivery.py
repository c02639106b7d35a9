"""Benchmark: a burst of signups against a rate-limited Twenty, and an outage of Mautic:
rate-limited events lined up in the free slots of the limit (now), against coming back after
Retry-After plus a spread (before), and against the in-job retries alone (first version).

    .venv/bin/python scripts/bench_delivery.py [--events 1000] [--workers 3] [--speed 10]

Stand-ins of Twenty, Mautic, Slack and Windmill's API (tests/fakes) keep their state, so the
run counts what each service holds at the end. Jobs run on N worker threads of a local queue
runner (tests/job_runner.py) that starts a queued job when its delay is due. Time is "model"
time: the services' clocks, Retry-After and the queued delays all run `--speed` times faster
than the wall clock, so a burst against 100 requests a minute drains in seconds.

Each job costs its worker the start-up a Windmill job pays (a new process importing the
script: measured at the start of the run, scripts/bench_startup.py) before it runs.

Burst: every event is a user.registered (one in ten on a paid plan, which Slack announces)
sent at once, against Twenty's default limit (100 requests a minute, a bucket of 100 that
refills continuously, 429 with Retry-After). Reported: events applied exactly once, jobs and
Twenty calls per event, worker-seconds busy (start-up and run) and spent waiting inside
jobs, and time to drain against the floor the limit sets ((events - 100) / (100 a minute)).
Outage: Mautic answers 503 for the first 10 model minutes, so the first attempts fail; every
event must end applied once, with no alert.
"""

import argparse
import functools
import json
import logging
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import respx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_startup import startup_seconds

from f.marketing.handle_user_event import SCRIPT_PATH
from f.marketing.lib import rate_slots, service_http, steps
from f.marketing.lib.job_log import log_to_stdout
from f.marketing.lib.windmill_api import WindmillApi
from tests.conftest import ROUTING
from tests.fakes import FakeMautic, FakeSlackWebhook, FakeTwenty, FakeWindmill
from tests.job_runner import JobRunner

TWENTY_PER_MINUTE = 100
real_sleep = time.sleep  # service_http.s `time` is this module: its sleep is patched below


class ModelClock:
    """Model time, running `speed` times faster than the wall clock."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.real0 = time.monotonic()
        self.start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    def seconds(self) -> float:
        return (time.monotonic() - self.real0) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds())


def event(i: int) -> dict:
    return {
        "event": "user.registered",
        "email": f"user{i}@bench.test",
        "name": f"User {i}",
        "plan": "pro" if i % 10 == 0 else "free",
        "source": "organic",
        "marketingConsent": True,
        "timestamp": "2026-11-30T09:00:00Z",
    }


def run(
    events: int,
    workers: int,
    speed: float,
    *,
    queue: bool,
    twenty_limit: int | None,
    mautic_down_for: float = 0.0,
    slots: bool = True,
    startup: float = 0.0,
) -> dict:
    clock = ModelClock(speed)
    # Model seconds slept inside jobs, and spent by jobs (start-up and run), by worker thread.
    waited: defaultdict[int, float] = defaultdict(float)
    busy: defaultdict[int, float] = defaultdict(float)

    def sleep(seconds: float) -> None:
        waited[threading.get_ident()] += seconds
        real_sleep(seconds / speed)

    twenty = FakeTwenty(rate_limit=twenty_limit, rate_limit_headers=True, monotonic=clock.seconds)
    if twenty_limit:
        twenty.exhaust_rate_limit()
        twenty.reset_rate_limit()  # a full bucket at the start of the burst
    mautic, slack, windmill = FakeMautic(), FakeSlackWebhook(), FakeWindmill()
    for path, value in {
        "f/marketing/twenty": {"base_url": twenty.base_url, "api_key": twenty.api_key},
        "f/marketing/mautic": {
            "base_url": mautic.base_url,
            "username": mautic.username,
            "password": mautic.password,
        },
        "f/marketing/slack": {"webhook_url": slack.url},
        "f/marketing/routing": {
            **ROUTING,
            "rate_limits": {"twenty_limit_per_minute": TWENTY_PER_MINUTE if slots else None},
        },
    }.items():
        windmill.put(path, value)
    if mautic_down_for:
        original = mautic.handle

        def down_then_up(request):
            if clock.seconds() < mautic_down_for:
                return mautic.error(503)
            return original(request)

        mautic.handle = down_then_up  # type: ignore[method-assign]

    runner = JobRunner(windmill, error_handler="f/marketing/on_failure")
    windmill.clock = clock.now  # jobs are queued in model time, not at the runner's start
    environment = {
        "WM_WORKSPACE": windmill.workspace,
        "WM_TOKEN": windmill.token,
        "BASE_INTERNAL_URL": windmill.base_url,
    }
    with ExitStack() as stack:
        router = stack.enter_context(respx.mock(assert_all_called=False))
        for fake in (twenty, mautic, slack, windmill):
            fake.mount(router)
        stack.enter_context(mock.patch.dict(os.environ, environment))
        os.environ.pop("WM_MOCKED_API_FILE", None)
        stack.enter_context(mock.patch.object(service_http.time, "sleep", sleep))
        stack.enter_context(mock.patch.object(rate_slots, "now", clock.now))
        if not queue:  # before: wait for rate limits in the job, and no later attempt
            waiting = service_http.RetryPolicy()
            stack.enter_context(mock.patch.object(steps, "QUEUE_ON_RATE_LIMIT", waiting))
            stack.enter_context(
                mock.patch.object(WindmillApi, "queue_job", side_effect=_no_queue, autospec=True)
            )
        for i in range(events):
            runner.webhook(SCRIPT_PATH, event(i))
        start = clock.seconds()
        threads = [
            threading.Thread(target=_work, args=(runner, clock, startup, busy))
            for _ in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        drained = clock.seconds() - start

    people = len(twenty.people)
    contacts = len(mautic.contacts)
    rotations = Counter(mautic.campaign_rotations.values())
    signups = [m for m in slack.messages if m["text"].startswith("New signup")]
    alerts = [m for m in slack.messages if "failed" in m["text"]]
    paid = sum(1 for i in range(events) if i % 10 == 0)
    jobs = [j for j in windmill.jobs.values() if j["script_path"] == SCRIPT_PATH]
    failed = sum(not runner.results[j["id"]]["success"] for j in jobs)
    return {
        "applied once": min(people, contacts, rotations[1]),
        "people": people,
        "contacts": contacts,
        "campaign starts > 1": sum(n for k, n in rotations.items() if k > 1),
        "slack signups": f"{len(signups)} of {paid} ({len(_distinct(signups))} distinct)",
        "alerts": len(alerts),
        "failed jobs": failed,
        "jobs run": len(jobs),
        "jobs per event": len(jobs) / events,
        "twenty calls per event": len(twenty.requests) / events,
        "drain (model s)": drained,
        "worker-s busy": sum(busy.values()),
        "worker-s waiting": sum(waited.values()),
    }


def _distinct(messages: list[dict]) -> set[str]:
    """The people the messages are about (the email field of each)."""
    return {json.dumps(m["blocks"][1]["fields"]) for m in messages}


def _no_queue(self, path, args, **_):
    raise service_http.ServiceError("Windmill", "queue", "no later attempts before this change")


def _work(
    runner: JobRunner, clock: ModelClock, startup: float, busy: defaultdict[int, float]
) -> None:
    while True:
        job = runner.take_due(clock.now())
        if job is not None:
            began = clock.seconds()
            real_sleep(startup / clock.speed)  # the new process and its imports
            runner.run(job)
            busy[threading.get_ident()] += clock.seconds() - began
        elif runner.unfinished() == 0:
            return
        else:
            real_sleep(0.002)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args()
    log_to_stdout().setLevel(logging.ERROR)  # jobs log their steps; here only the figures
    startup = startup_seconds("f.marketing.handle_user_event")
    rate = TWENTY_PER_MINUTE / 60
    floor = max(0, args.events - TWENTY_PER_MINUTE) / rate
    print(
        f"Burst: {args.events} user.registered at once, {args.workers} workers, Twenty "
        f"{TWENTY_PER_MINUTE}/min (bucket {TWENTY_PER_MINUTE}), model time x{args.speed:g}, "
        f"{startup * 1000:.0f} ms start-up per job (measured)"
    )
    print(f"floor set by the limit: {floor:.0f} model s\n")
    burst = functools.partial(
        run, args.events, args.workers, args.speed, twenty_limit=TWENTY_PER_MINUTE,
        startup=startup,
    )  # fmt: skip
    rows = {
        "first version (waits in the job)": burst(queue=False, slots=False),
        "before (Retry-After plus a spread)": burst(queue=True, slots=False),
        "now (free slots of the limit)": burst(queue=True, slots=True),
    }
    _table(rows, floor)
    print("\nOutage: Mautic answers 503 for the first 10 model minutes; Twenty unlimited")
    outage_events = min(args.events, 100)
    rows = {
        "first version": run(outage_events, args.workers, 600, queue=False, twenty_limit=None,
                             mautic_down_for=600, startup=startup),
        "now": run(outage_events, args.workers, 600, queue=True, twenty_limit=None,
                   mautic_down_for=600, startup=startup),
    }  # fmt: skip
    _table(rows, None)
    return 0


def _table(rows: dict[str, dict], floor: float | None) -> None:
    keys = list(next(iter(rows.values())))
    width = max(len(k) for k in keys) + 2
    print(" " * width + "".join(f"{name[:36]:>38}" for name in rows))
    for key in keys:
        cells = []
        for row in rows.values():
            value = row[key]
            text = str(value)
            if isinstance(value, float):
                text = f"{value:.2f}" if "per event" in key else f"{value:.1f}"
            if key == "drain (model s)" and floor:
                text += f" ({value / floor:.2f}x floor)"
            cells.append(f"{text:>38}")
        print(f"{key:<{width}}" + "".join(cells))


if __name__ == "__main__":
    sys.exit(main())
