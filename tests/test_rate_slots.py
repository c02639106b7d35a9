"""A burst against a rate limit: events line up in the free slots of the limit instead of all
coming back after the same Retry-After, and an event that arrives while slots are taken
queues behind them without calling. Jobs run on a local worker over the Windmill stand-in,
on one clock with the services."""

import threading
import time

import pytest

from f.marketing.handle_user_event import SCRIPT_PATH
from f.marketing.lib import rate_slots
from tests.conftest import ROUTING
from tests.job_runner import JobRunner
from tests.test_handle_user_event import registered

PER_MINUTE = 10  # slots 6 s apart


@pytest.fixture
def worker(services, windmill, monkeypatch) -> JobRunner:
    runner = JobRunner(
        windmill.api, error_handler="f/marketing/on_failure", advance=services.clock.advance
    )
    monkeypatch.setattr(rate_slots, "now", lambda: runner.now)
    limits = {"twenty_limit_per_minute": PER_MINUTE}
    windmill.api.put("f/marketing/routing", {**ROUTING, "rate_limits": limits})
    services.twenty.rate_limit = PER_MINUTE
    services.twenty.rate_limit_headers = True  # Retry-After: 6
    services.twenty.reset_rate_limit()
    return runner


def burst(worker: JobRunner, events: int) -> None:
    for i in range(events):
        worker.webhook(SCRIPT_PATH, registered(email=f"user{i}@burst.test", plan="free"))


def event_jobs(windmill) -> list[dict]:
    return [j for j in windmill.api.jobs.values() if j["script_path"] == SCRIPT_PATH]


def applied_once(services, events: int) -> None:
    assert len(services.twenty.people) == events
    assert len(services.mautic.contacts) == events
    assert all(n == 1 for n in services.mautic.campaign_rotations.values())
    assert [m for m in services.slack.messages if "failed" in m["text"]] == []


def twenty_calls(services) -> int:
    return len(services.twenty.calls(path_contains="/rest/"))


def test_a_burst_lines_up_in_the_free_slots_and_spends_no_call_waiting(services, windmill, worker):
    burst(worker, 30)
    worker.run_all()

    applied_once(services, 30)
    jobs = event_jobs(windmill)
    returns = sorted(j["scheduled_in_secs"] for j in jobs if j["scheduled_in_secs"])
    assert len(returns) == 20, "the 20 events past the bucket come back once each"
    assert len(jobs) == 50
    assert returns == [6 * n for n in range(1, 21)], "one slot each, 60 s / 10 apart"
    refused = services.twenty.refused
    assert refused == 1, "only the first event past the bucket called and was refused"
    assert services.sleeps == [], "no worker waited"


def test_an_event_arriving_after_the_burst_takes_the_slot_after_it(services, windmill, worker):
    burst(worker, 12)
    for _ in range(12):
        worker.run(worker.take())
    late = worker.webhook(SCRIPT_PATH, registered(email="late@burst.test"))
    worker.run(windmill.api.jobs[late] | {"state": "running"})

    result = worker.results[late]["result"]
    assert result["status"] == "retry-scheduled"
    assert "rate limit is taken until" in result["reason"] and "no call made" in result["reason"]
    [queued] = [j for j in event_jobs(windmill) if j["id"] == result["next_job_id"]]
    assert queued["scheduled_in_secs"] == 18, "behind the two slots the burst took"
    worker.run_all()
    applied_once(services, 13)


def test_two_jobs_that_take_the_same_slot_cost_one_return_not_an_event(services, windmill, worker):
    """Two jobs read the line at once and both take the slot it offered: the second one in
    is refused, and takes the slot at the end of the line."""
    burst(worker, 14)
    for _ in range(11):  # the bucket, then the one that starts the line (slot at +6 s)
        worker.run(worker.take())
    line = windmill.api.value(f"{rate_slots.FOLDER}/twenty")
    worker.run(worker.take())  # takes +12 s
    windmill.api.put(f"{rate_slots.FOLDER}/twenty", line, "state")  # the other read it too
    worker.run_all()

    applied_once(services, 14)
    refused = services.twenty.refused
    assert refused == 2, "the first past the bucket, and one of the two in the shared slot"
    returns = [j for j in event_jobs(windmill) if j["scheduled_in_secs"]]
    assert len(returns) == 4 + 1, "one return for each of the four past the bucket, and one more"


def test_a_limit_that_drops_mid_burst_still_applies_every_event_once(services, windmill, worker):
    """The routing says 10 a minute; halfway through, Twenty allows 5. Slots then come too
    often, and the refused returns take new ones at the end of the line until all are in."""
    burst(worker, 24)
    for _ in range(16):
        worker.run(worker.take())
    services.twenty.rate_limit = 5
    worker.run_all()

    applied_once(services, 24)
    assert len(event_jobs(windmill)) <= 24 * 3
    assert services.sleeps == []


def test_without_a_known_limit_a_rate_limit_comes_back_after_retry_after(
    services, windmill, worker
):
    windmill.api.put(
        "f/marketing/routing", {**ROUTING, "rate_limits": {"twenty_limit_per_minute": None}}
    )
    burst(worker, 12)
    worker.run_all()

    applied_once(services, 12)
    assert windmill.api.value(f"{rate_slots.FOLDER}/twenty") is None, "no line kept"


def test_a_line_written_by_another_version_is_started_again(services, windmill, worker):
    windmill.api.put(f"{rate_slots.FOLDER}/twenty", {"next_free": "not a time"}, "state")
    burst(worker, 11)
    worker.run_all()
    applied_once(services, 11)
    assert windmill.api.value(f"{rate_slots.FOLDER}/twenty")["next_free"].startswith("2026-11-30")


def test_three_workers_at_once_apply_every_event_once(services, windmill, worker):
    """Jobs on three threads read and take the line at the same moments: collisions cost
    returns, never an event."""

    def work() -> None:
        while worker.unfinished():
            job = worker.take()
            if job is None:
                time.sleep(0.001)  # another worker's job may still queue a return
                continue
            worker.run(job)

    burst(worker, 40)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    applied_once(services, 40)
    jobs = event_jobs(windmill)
    assert len(jobs) <= 40 + 30 + 10, "one return each past the bucket, a few more for collisions"
    assert all(worker.results[j["id"]]["success"] for j in jobs)


@pytest.mark.parametrize(
    "held", ["2026-11-30T09:30:00", "2026-11-30", "2026-12-01T09:00:00+00:00"],
    ids=["no-zone", "a-date", "a-day-ahead"],
)  # fmt: skip
def test_a_line_no_job_could_have_written_holds_no_event_back(services, windmill, worker, held):
    """A hand edit, or a worker whose clock is far off: not trusted, or every event would
    wait behind it (or fail comparing times)."""
    windmill.api.put(f"{rate_slots.FOLDER}/twenty", {"next_free": held}, "state")
    burst(worker, 5)
    worker.run_all()

    applied_once(services, 5)
    assert len(event_jobs(windmill)) == 5, "nothing was queued behind it"


def test_a_line_the_jobs_may_read_but_not_write_falls_back_to_retry_after(
    services, windmill, worker, caplog
):
    """Windmill's update_value answers 200 having changed nothing for such a user; the line is
    written with update_if_exists, which refuses, so the jobs know and come back after
    Retry-After plus a spread instead of all taking the same slot."""
    windmill.api.put(f"{rate_slots.FOLDER}/twenty", {"next_free": "2026-11-30T08:00:00+00:00"})
    windmill.api.read_only.add(f"{rate_slots.FOLDER}/twenty")
    burst(worker, 14)
    worker.run_all()

    applied_once(services, 14)
    assert "rate-limit line could not be written" in caplog.text
    line = windmill.api.value(f"{rate_slots.FOLDER}/twenty")
    assert line["next_free"].startswith("2026-11-30T08"), "unchanged"
