"""Durable delivery: a service down for hours loses no event, and what finally fails is
alerted and can be replayed. Jobs run on a local worker over the Windmill job stand-in."""

import json

import pytest

from f.marketing.handle_user_event import SCRIPT_PATH
from f.marketing.lib.attempt_schedule import attempt_job_id
from f.marketing.lib.contract import event_key, parse_event
from f.marketing.lib.delivery_failures import failure_job_id
from f.marketing.lib.errors import JobFailed
from f.marketing.lib.windmill_api import running_job
from f.marketing.replay import replay_job_id
from tests.conftest import run_event as main
from tests.job_runner import JobRunner
from tests.test_handle_user_event import EMAIL, registered

DELAYS = [60, 300, 1800, 7200, 21600, 43200, 86400]


@pytest.fixture
def worker(services, windmill) -> JobRunner:
    return JobRunner(
        windmill.api, error_handler="f/marketing/on_failure", advance=services.clock.advance
    )


def key_of(body: dict) -> str:
    return event_key(parse_event(body))


def attempts(windmill) -> list[dict]:
    return sorted(
        (j for j in windmill.api.jobs.values() if j["script_path"] == SCRIPT_PATH),
        key=lambda j: j["created_at"],
    )


def alerts(services) -> list[dict]:
    return [m for m in services.slack.messages if "failed" in m["text"]]


def test_an_outage_longer_than_a_job_is_waited_out_by_later_attempts(services, windmill, worker):
    services.mautic.fault(503, times=4 * 3, path_contains="/contacts/new")  # 3 attempts' worth
    worker.webhook(SCRIPT_PATH, registered())
    worker.run_all()

    jobs = attempts(windmill)
    assert len(jobs) == 4
    key = key_of(registered())
    assert [j["id"] for j in jobs[1:]] == [attempt_job_id(key, n) for n in (2, 3, 4)]
    assert all(j["parent_job"] is None for j in jobs), "root jobs reach the error handler"
    for job, base in zip(jobs[1:], DELAYS, strict=False):
        assert base * 0.9 <= job["scheduled_in_secs"] <= base * 1.1
    first = worker.results[jobs[0]["id"]]["result"]
    assert first["status"] == "retry-scheduled" and first["next_attempt"] == 2
    assert first["wm_labels"] == ["user.registered", "retry-scheduled"]
    assert worker.results[jobs[-1]["id"]]["result"]["ok"] is True

    contact = services.mautic.contact_by_email(EMAIL)
    assert len(services.mautic.contacts) == 1 and len(services.twenty.people) == 1
    assert services.mautic.campaign_rotations[(10, contact["id"])] == 1
    assert len(services.slack.messages) == 1, "the signup message once, and no alert"


def test_after_the_last_attempt_the_job_fails_and_the_error_handler_alerts_once(
    services, windmill, worker, monkeypatch
):
    monkeypatch.setenv("WM_BASE_URL", "https://windmill.example.test")
    services.mautic.fault(503, times=1000, path_contains="/contacts/new")
    worker.webhook(SCRIPT_PATH, registered())
    worker.run_all()

    jobs = attempts(windmill)
    assert len(jobs) == len(DELAYS) + 1
    waited = sum(j["scheduled_in_secs"] for j in jobs)
    assert 0.9 * sum(DELAYS) <= waited <= 1.1 * sum(DELAYS)  # about 45 hours
    outcomes = [worker.results[j["id"]]["success"] for j in jobs]
    assert outcomes == [True] * len(DELAYS) + [False]
    error = worker.results[jobs[-1]["id"]]["result"]["error"]["message"]
    assert error.startswith("user.registered: mautic upsert contact failed")
    assert "Gave up: this was attempt 8 of 8" in error

    [alert] = alerts(services)
    assert alert["text"].startswith("handle_user_event failed for user.registered: ")
    context = json.dumps(alert["blocks"])
    assert f"https://windmill.example.test/run/{jobs[-1]['id']}?workspace=test" in context
    assert EMAIL not in json.dumps(alert)


def test_a_retry_after_longer_than_the_schedule_is_honoured(services, windmill, worker):
    services.twenty.fault(503, headers={"Retry-After": "900"})
    worker.webhook(SCRIPT_PATH, registered())
    worker.run(worker.take())
    [_, second] = attempts(windmill)
    assert second["scheduled_in_secs"] == 900
    assert second["id"] == attempt_job_id(key_of(registered()), 2)


@pytest.mark.parametrize("newer", [True, False], ids=["retry-after", "bare-429"])
def test_a_rate_limit_waits_in_the_queue_not_in_a_worker(services, windmill, worker, newer):
    services.twenty.rate_limit = 50  # Twenty Cloud: 50 calls a minute
    services.twenty.rate_limit_headers = newer
    services.twenty.exhaust_rate_limit()
    worker.webhook(SCRIPT_PATH, registered())
    worker.run_all()

    first, *returns = attempts(windmill)
    key = key_of(registered())
    assert [j["id"] for j in returns] == [
        attempt_job_id(key, 1, n) for n in range(1, len(returns) + 1)
    ]
    low = 2 if newer else 1  # Retry-After: 2 (60 s / 50), or a second without one
    assert low <= returns[0]["scheduled_in_secs"] <= low + 1
    if newer:  # the token is back when Twenty said it would be
        assert len(returns) == 1
    assert services.sleeps == [], "no worker waited"
    assert worker.results[first["id"]]["result"]["status"] == "retry-scheduled"
    assert worker.results[returns[-1]["id"]]["result"]["attempt"] == 1, "the schedule is intact"
    assert worker.results[returns[-1]["id"]]["result"]["ok"] is True
    assert len(services.twenty.people) == 1


def test_a_lost_answer_while_queuing_queues_one_attempt(services, windmill, worker):
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    windmill.api.fault(502, applied=True, path_contains="/jobs/run/p/")
    worker.webhook(SCRIPT_PATH, registered())
    worker.run(worker.take())

    assert len(attempts(windmill)) == 2
    assert len(windmill.api.calls(path_contains="/jobs/run/p/")) == 2  # the retry met "exists"
    assert worker.results[attempts(windmill)[0]["id"]]["result"]["status"] == "retry-scheduled"


def test_a_re_run_of_a_retry_scheduled_job_queues_no_second_attempt(services, windmill, worker):
    services.mautic.fault(503, times=8, path_contains="/contacts/new")
    first = worker.webhook(SCRIPT_PATH, registered())
    worker.run(worker.take())
    rerun = worker.webhook(SCRIPT_PATH, registered())  # Runs page: re-run, a new job id
    worker.run(windmill.api.jobs[rerun] | {"state": "running"})

    queued = [j for j in attempts(windmill) if j["id"] not in {first, rerun}]
    assert [j["id"] for j in queued] == [attempt_job_id(key_of(registered()), 2)]
    assert worker.results[rerun]["result"]["status"] == "retry-scheduled"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_permanent_errors_fail_at_once_and_queue_nothing(services, windmill, status):
    services.mautic.fault(status, path_contains="/contacts/new")
    with running_job("11111111-1111-4111-8111-111111111111"), pytest.raises(JobFailed):
        main(**registered())
    assert windmill.api.jobs == {}


def test_a_local_run_without_windmill_fails_as_before(services, monkeypatch, tmp_path):
    mock = tmp_path / "mock.json"
    resources = services.resources() | {"f/marketing/routing": {"campaigns": {"onboarding": 10}}}
    mock.write_text(json.dumps({"resources": resources, "variables": {}}))
    monkeypatch.setenv("WM_MOCKED_API_FILE", str(mock))
    monkeypatch.setenv("WM_WORKSPACE", "local")
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    with pytest.raises(JobFailed, match="The next attempt could not be queued"):
        main(**registered())


@pytest.mark.parametrize(
    "forged",
    [
        {"attempt": 8},
        {"next_attempt": 8, "next_job_id": "x"},
        {"job_id": "x", "retry": {"attempt": 8}},
    ],
    ids=["attempt", "next", "job-id"],
)
def test_a_webhook_body_cannot_set_the_attempt(services, windmill, worker, forged):
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    job = worker.webhook(SCRIPT_PATH, registered() | forged)
    worker.run(worker.take())
    result = worker.results[job]["result"]
    assert result["attempt"] == 1 and result["next_attempt"] == 2


def test_the_attempt_comes_from_the_job_id_windmill_was_given(services, windmill, worker):
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    key = key_of(registered())
    job = worker.webhook(SCRIPT_PATH, registered(), job_id=attempt_job_id(key, 8))
    worker.run_all()
    assert worker.outcome(job)["success"] is False  # the last attempt: no ninth
    assert [j["id"] for j in attempts(windmill)] == [job, failure_job_id(job)]


# --- the error handler ----------------------------------------------------------------------


def test_the_error_handler_ignores_other_scripts_and_never_raises(services, windmill):
    from f.marketing.on_failure import main as on_failure

    error = {"name": "Exception", "message": "boom"}
    assert on_failure("f/other/script", "j1", error, "test")["posted"] is False
    assert services.slack.messages == []

    services.slack.fault(500, times=10)
    result = on_failure(SCRIPT_PATH, "j2", error, "test")
    assert result["posted"] is False and "Slack post message failed" in result["reason"]

    services.slack.faults.clear()
    assert on_failure("f/other/script", "j3", error, "test", alert_other_scripts=True)["posted"]


def test_the_alert_carries_no_email_even_when_an_error_does(services, windmill):
    from f.marketing.on_failure import main as on_failure

    error = {"name": "Exception", "message": "user.churned: Twenty said jane.doe@acme.com is bad"}
    assert on_failure(SCRIPT_PATH, "j1", error, "test")["posted"] is True
    assert "acme.com" not in json.dumps(services.slack.messages)
    assert "user.churned" in services.slack.messages[0]["text"]


# --- replay ---------------------------------------------------------------------------------


def fail_for_good(services, worker, *bodies: dict) -> None:
    services.mautic.fault(503, times=10_000, path_contains="/contacts/new")
    for body in bodies:
        worker.webhook(SCRIPT_PATH, body)
    worker.run_all()
    services.mautic.faults.clear()


def run_replay(worker, **kwargs) -> dict:
    job = worker.webhook("f/marketing/replay", kwargs)
    worker.windmill.jobs[job]["skip_preprocessor"] = True
    worker.run(worker.take())
    outcome = worker.results[job]
    assert outcome["success"], outcome
    return outcome["result"]


def test_replay_lists_then_queues_what_finally_failed_once(services, windmill, worker):
    other = registered(email="john@acme.com", timestamp="2026-11-26T11:00:00Z")
    fail_for_good(services, worker, registered(), other)
    invalid = failure_job_id(worker.webhook(SCRIPT_PATH, registered(email="not-an-email")))
    worker.run_all()
    window = {"since": "2026-11-29T00:00:00Z", "until": "2026-12-31T00:00:00Z"}

    listed = run_replay(worker, **window)
    assert listed["counts"] == {"would queue": 2, "skipped": 1}
    assert {j["failed_job"] for j in listed["jobs"] if j["status"] == "skipped"} == {invalid}
    assert services.mautic.contacts == {}

    queued = run_replay(worker, **window, confirm=True)
    assert queued["counts"] == {"queued": 2, "skipped": 1}
    failed_ids = [j["failed_job"] for j in queued["jobs"] if j["status"] == "queued"]
    assert all(replay_job_id(f) in windmill.api.jobs for f in failed_ids)
    worker.run_all()
    assert {c["fields"]["email"] for c in services.mautic.contacts.values()} == {
        EMAIL,
        "john@acme.com",
    }

    again = run_replay(worker, **window, confirm=True)
    assert again["counts"] == {"already replayed": 2, "skipped": 1}
    assert windmill.api.progress, "progress was shown"


def test_replay_reads_each_failed_job_by_id_as_windmill_lists_none_of_their_args(
    services, windmill, worker
):
    """The list has no result and no args (without include_args, which Cloud refuses): a
    replay that trusted it would skip every job as invalid."""
    fail_for_good(services, worker, registered())
    listed = run_replay(worker, since="2026-11-29T00:00:00Z")
    assert listed["counts"] == {"would queue": 1}
    reads = [c.request.url.path for c in services.router.calls if "/jobs" in c.request.url.path]
    assert any("/jobs_u/get/" in path for path in reads)
    assert not [c for c in services.router.calls if "include_args" in str(c.request.url)]


def test_replay_leaves_canceled_jobs_and_reads_big_args_on_their_own(services, windmill, worker):
    fail_for_good(services, worker, registered(), registered(email="john@acme.com"))
    first, second = [j for j in windmill.api.completed if j["script_path"] == SCRIPT_PATH][-2:]
    first["canceled"] = True  # someone stopped it: Windmill lists it with success=false too
    payload = json.loads(second["args"]["payload"])
    second["args"] = {"payload": json.dumps({**payload, "name": "x" * 100_000})}
    result = run_replay(worker, since="2026-11-29T00:00:00Z", confirm=True)
    statuses = {j["failed_job"]: (j["status"], j.get("reason")) for j in result["jobs"]}
    assert statuses[first["id"]] == ("skipped", "canceled, not failed")
    assert statuses[second["id"]][0] == "queued"
    assert any("/jobs_u/get_args/" in c.request.url.path for c in services.router.calls)


def test_replay_takes_a_failed_run_from_the_form_by_its_payload(services, windmill, worker):
    services.mautic.permissions.discard("lead:leads:create")  # fails for good, at once
    job = worker.webhook(SCRIPT_PATH, {"payload": json.dumps(registered())})
    worker.windmill.jobs[job]["skip_preprocessor"] = True  # as the form runs it
    worker.run_all()
    assert worker.results[job]["success"] is False
    services.mautic.permissions.add("lead:leads:create")
    result = run_replay(worker, since="2026-11-29T00:00:00Z", confirm=True)
    assert result["counts"] == {"queued": 1}
    replayed = windmill.api.jobs[replay_job_id(job)]
    assert json.loads(replayed["args"]["payload"]) == registered()
    assert replayed["args"]["replay_of"] == job
    worker.run_all()
    assert services.mautic.contact_by_email(EMAIL) is not None


def test_a_replay_that_fails_for_a_while_gets_later_attempts_of_its_own(services, windmill, worker):
    """The failed chain's attempt ids stay in the job history: a replay that reused them
    would find its next attempt 'already queued' and end well, the event lost."""
    fail_for_good(services, worker, registered())
    run_replay(worker, since="2026-11-29T00:00:00Z", confirm=True)
    services.mautic.fault(503, times=4, path_contains="/contacts/new")  # down once more
    worker.run_all()
    assert services.mautic.contact_by_email(EMAIL) is not None
    assert not alerts(services)[1:], "the first chain's alert only"


@pytest.mark.parametrize("strict", [False, True], ids=["newer", "older-server"])
def test_a_job_failed_in_the_windows_first_second_is_replayed(services, windmill, worker, strict):
    fail_for_good(services, worker, registered())
    failed = next(j for j in windmill.api.completed if not j["success"])
    windmill.api.strict_time_bounds = strict
    listed = run_replay(worker, since=failed["created_at"], until="2026-12-31T00:00:00Z")
    assert [j["failed_job"] for j in listed["jobs"]] == [failed["id"]]


def test_replay_refuses_a_window_that_makes_no_sense(services, windmill, worker):
    job = worker.webhook("f/marketing/replay", {"since": "tomorrow"})
    worker.windmill.jobs[job]["skip_preprocessor"] = True
    worker.run(worker.take())
    assert "since: not an ISO 8601 date-time" in worker.results[job]["result"]["error"]["message"]


def test_queued_jobs_carry_the_event_not_the_form(services, windmill, worker):
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    worker.webhook(SCRIPT_PATH, registered())
    worker.run(worker.take())
    [_, queued] = attempts(windmill)
    assert set(queued["args"]) == {"payload"}, "JSON text, which Windmill never rewrites"
    assert json.loads(queued["args"]["payload"]) == parse_event(registered()).body()
    assert queued["skip_preprocessor"] is True


def test_a_queueing_failure_fails_the_job_so_the_event_is_not_lost(services, windmill, worker):
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    windmill.api.fault(403, body="Forbidden", path_contains="/jobs/run/p/")
    job = worker.webhook(SCRIPT_PATH, registered())
    worker.run_all()
    assert worker.outcome(job)["success"] is False
    assert (
        "The next attempt could not be queued"
        in (worker.outcome(job)["result"]["error"]["message"])
    )
    assert len(alerts(services)) == 1


def test_a_re_run_that_fails_another_way_starts_no_second_branch(services, windmill, worker):
    """Rate limited the first time, down the second: one next attempt, not one of each."""
    services.twenty.fault(429, headers={"Retry-After": "5"})
    first = worker.webhook(SCRIPT_PATH, registered())
    worker.run(worker.take())
    services.twenty.fault(503, times=4)
    rerun = worker.webhook(SCRIPT_PATH, registered())
    worker.run(windmill.api.jobs[rerun] | {"state": "running"})

    key = key_of(registered())
    queued = {j["id"] for j in attempts(windmill)} - {first, rerun}
    assert queued == {attempt_job_id(key, 1, 1)}
    assert worker.results[rerun]["result"]["status"] == "retry-scheduled"


def test_a_re_run_of_an_old_attempt_that_fails_for_a_while_goes_on_in_a_chain_of_its_own(
    services, windmill, worker
):
    """Run again from the Runs page, long after the chain went on: its next attempt's id is
    taken by a job that finished, and taking that for 'already queued' would end the re-run
    well with nothing left to run."""
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    first = worker.webhook(SCRIPT_PATH, registered())
    worker.run_all()
    assert len(attempts(windmill)) == 2  # the first, and its second attempt, which applied
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    again = worker.webhook(SCRIPT_PATH, windmill.api.jobs[first]["args"])  # its stored args
    windmill.api.jobs[again]["skip_preprocessor"] = True
    worker.run_all()
    assert worker.results[again]["result"]["status"] == "retry-scheduled"
    forked = [j for j in attempts(windmill) if j["args"].get("replay_of") == again]
    assert len(forked) == 1 and worker.results[forked[0]["id"]]["result"]["ok"] is True
