"""The outbox sweep (f/marketing/outbox_sweep.py) on a real PostgreSQL server on 127.0.0.1, the
Windmill job stand-in and a local worker: the sweep runs as its schedule runs it, and the
handler jobs it queues run after it, against the stateful Twenty, Mautic and Slack stand-ins.

Time is the database's: a row's age is set by its created_at, as the emitter's insert and the
minutes that pass would have set it."""

import json
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from f.marketing import outbox_sweep
from f.marketing.emitter import Emitter
from f.marketing.emitter import outbox as emitter_outbox
from f.marketing.handle_user_event import SCRIPT_PATH as HANDLER
from f.marketing.lib.delivery_job import delivery_job_id
from f.marketing.lib.service_http import RetryPolicy
from tests import postgres_server
from tests.job_runner import JobRunner
from tests.test_outbox_sql import SQL

_why_not = postgres_server.missing()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")
SWEEP = "f/marketing/outbox_sweep"
DB_RESOURCE = "f/marketing/outbox_db"


@pytest.fixture(scope="module")
def server() -> Iterator[postgres_server.PostgresServer]:
    with postgres_server.PostgresServer() as pg:
        yield pg


@pytest.fixture
def db(server, windmill) -> str:
    """A fresh outbox database, stored in the workspace as a `postgresql` resource."""
    dsn = server.new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SQL)
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    resource = {"host": params["host"], "port": int(str(params["port"])),
                "user": params["user"], "dbname": params["dbname"]}  # fmt: skip
    windmill.api.put(DB_RESOURCE, resource, "postgresql")
    return dsn


@pytest.fixture
def worker(services, windmill) -> JobRunner:
    return JobRunner(windmill.api, advance=services.clock.advance)


def signup(n: int) -> dict:
    return {"event": "user.registered", "email": f"user{n}@acme.com", "name": f"User {n}",
            "plan": "pro", "source": "ads", "marketingConsent": True,
            "timestamp": "2026-12-04T10:00:00Z"}  # fmt: skip


def add_rows(dsn: str, *ages_s: float, first: int = 0) -> list[str]:
    """Rows the SaaS committed `age` seconds ago that no emitter marked sent."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [
            str(conn.execute(
                "insert into marketing_outbox (event, created_at)"
                " values (%s, now() - make_interval(secs => %s)) returning id",
                (json.dumps(signup(first + n)), age),
            ).fetchone()[0])  # type: ignore[index]
            for n, age in enumerate(ages_s)
        ]  # fmt: skip


def rows(dsn: str) -> dict[str, dict]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            "select id, sent_at is not null, attempts, last_error from marketing_outbox"
        ).fetchall()
    return {str(i): {"sent": s, "attempts": a, "last_error": e} for i, s, a, e in found}


def sweep(worker: JobRunner, **args) -> dict:
    """One scheduled run of the sweep, then every job it queued; the sweep's outcome."""
    job = worker.scheduled(SWEEP, {"database": f"$res:{DB_RESOURCE}", **args})
    worker.run_all()
    return worker.results[job]


def handler_jobs(windmill) -> list[dict]:
    return [j for j in windmill.api.jobs.values() if j["script_path"] == HANDLER]


def job_of(row_id: str) -> str:
    return delivery_job_id("test", HANDLER, row_id)


def test_a_row_left_by_a_function_killed_after_responding_is_sent_and_applied_once(
    services, windmill, worker, db
):
    [row] = add_rows(db, 45)
    outcome = sweep(worker)

    assert outcome["success"], outcome
    assert outcome["result"] | {"oldest_waiting_s": 0} == {
        "sent": 1, "already_queued": 0, "refused": 0, "waiting": 0, "oldest_waiting_s": 0,
        "pruned": 0, "stopped_by": None,
    }  # fmt: skip
    [job] = handler_jobs(windmill)
    assert job["id"] == job_of(row)
    # Queued as a later attempt is: the event as JSON text, no preprocessor, no headers.
    assert job["skip_preprocessor"] and job["trigger"]["raw"] is None
    assert json.loads(job["args"]["payload"]) == signup(0)
    assert windmill.api.token not in json.dumps(job["args"])
    assert worker.results[job["id"]]["success"]
    assert len(services.twenty.people) == 1 and len(services.mautic.contacts) == 1
    assert rows(db)[row]["sent"]
    assert "user0@acme.com" not in json.dumps(outcome)


def test_a_row_still_in_its_grace_period_is_left_to_its_emitter(windmill, worker, db):
    [row] = add_rows(db, 5)
    outcome = sweep(worker)
    assert outcome["result"]["sent"] == 0 and outcome["result"]["waiting"] == 1
    assert handler_jobs(windmill) == [] and not rows(db)[row]["sent"]


def test_windmill_down_for_an_hour_loses_nothing_and_applies_each_event_once(
    services, windmill, worker, db
):
    # One signup a minute for an hour, none of which reached Windmill.
    ids = add_rows(db, *range(3600, 0, -60))
    windmill.api.fault(503, times=3 * 3, path_contains="/jobs/run/p/")  # 3 runs' worth

    failed = [sweep(worker) for _ in range(3)]
    for outcome in failed:  # visible in Windmill: the oldest has waited past the alert time
        assert not outcome["success"]
        message = outcome["result"]["error"]["message"]
        assert message.startswith("outbox sweep: events have waited over 15 min (Windmill")
        assert "sent 0, 60 still wait" in message and "@" not in message
    assert handler_jobs(windmill) == []

    back = sweep(worker)
    assert back["success"], back
    assert back["result"]["sent"] == 60 and back["result"]["waiting"] == 0
    assert sorted(j["id"] for j in handler_jobs(windmill)) == sorted(map(job_of, ids))
    assert all(worker.results[j["id"]]["success"] for j in handler_jobs(windmill))
    assert len(services.twenty.people) == 60 and len(services.mautic.contacts) == 60
    state = rows(db)
    assert all(r["sent"] for r in state.values())
    tried = [r for r in state.values() if r["attempts"]]
    assert len(tried) == 3, "each failed run stopped at its first row; a tried row went behind"
    assert all(r["attempts"] == 1 and "HTTP 503" in r["last_error"] for r in tried)

    again = sweep(worker)
    assert again["result"]["sent"] == 0 and len(handler_jobs(windmill)) == 60


def test_a_row_sent_by_both_the_emitter_and_the_sweep_is_one_job(
    services, windmill, worker, db, monkeypatch
):
    """The emitter delivers after the commit, and the function is frozen before it marks the
    row sent; the sweep then sends the row too."""
    body = signup(7)
    with psycopg.connect(db) as conn, conn.transaction():
        event_id = emitter_outbox.add(conn.cursor(), body)
    assert event_id
    emitter = Emitter(f"{windmill.api.base_url}/api/w/test/jobs/run/p/{HANDLER}",
                      windmill.api.token, sync=True)  # fmt: skip
    assert emitter.send_outboxed(event_id, body, on_sent=lambda _: None)  # never marked
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("update marketing_outbox set created_at = now() - interval '2 min'")

    outcome = sweep(worker)
    assert outcome["result"]["sent"] == 1 and outcome["result"]["already_queued"] == 1
    [job] = handler_jobs(windmill)
    assert job["id"] == job_of(event_id)
    assert len(services.twenty.people) == 1 and rows(db)[event_id]["sent"]


def test_the_emitter_marks_its_row_sent_and_the_sweep_leaves_it(windmill, worker, db):
    body = signup(8)
    with psycopg.connect(db) as conn, conn.transaction():
        event_id = emitter_outbox.add(conn.cursor(), body)
    assert event_id

    def mark(sent_id: str) -> None:
        with psycopg.connect(db, autocommit=True) as conn:
            emitter_outbox.mark_sent(conn.cursor(), sent_id)

    emitter = Emitter(f"{windmill.api.base_url}/api/w/test/jobs/run/p/{HANDLER}",
                      windmill.api.token, sync=True)  # fmt: skip
    assert emitter.send_outboxed(event_id, body, on_sent=mark)
    assert rows(db)[event_id]["sent"]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("update marketing_outbox set created_at = now() - interval '2 min'")
    assert sweep(worker)["result"]["sent"] == 0
    assert len(handler_jobs(windmill)) == 1


def test_a_sweep_that_dies_halfway_loses_no_row_and_queues_none_twice(
    services, windmill, worker, db, monkeypatch
):
    ids = add_rows(db, *[120] * 10)
    real = outbox_sweep.deliver
    calls = 0

    def dies_after_five(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 5:
            raise SystemExit("the worker was killed")  # mid-batch: nothing was committed
        return real(*args, **kwargs)

    monkeypatch.setattr(outbox_sweep, "deliver", dies_after_five)
    job = worker.scheduled(SWEEP, {"database": f"$res:{DB_RESOURCE}"})
    with pytest.raises(SystemExit):
        worker.run(worker.take())
    del worker.windmill.jobs[job]
    assert not any(r["sent"] for r in rows(db).values()), "the batch was rolled back"
    assert len(handler_jobs(windmill)) == 5

    monkeypatch.setattr(outbox_sweep, "deliver", real)
    outcome = sweep(worker)
    assert outcome["result"]["sent"] == 10 and outcome["result"]["already_queued"] == 5
    assert sorted(j["id"] for j in handler_jobs(windmill)) == sorted(map(job_of, ids))
    assert len(services.twenty.people) == 10
    assert all(r["sent"] for r in rows(db).values())


def test_a_lost_answer_halfway_is_taken_as_sent_on_the_retry(services, windmill, worker, db):
    ids = add_rows(db, 90, 80, 70)
    windmill.api.fault(502, times=1, path_contains="/jobs/run/p/", applied=True)
    outcome = sweep(worker)
    assert outcome["result"]["sent"] == 3 and outcome["result"]["already_queued"] == 1
    assert sorted(j["id"] for j in handler_jobs(windmill)) == sorted(map(job_of, ids))
    assert len(services.twenty.people) == 3


def test_one_refused_row_does_not_hold_up_the_others_and_the_job_fails(windmill, worker, db):
    ids = add_rows(db, 90, 80, 70)
    windmill.api.fault(400, body="Bad request: payload too large", path_contains="/jobs/run/p/")
    outcome = sweep(worker)
    assert not outcome["success"]
    message = outcome["result"]["error"]["message"]
    assert message.startswith("outbox sweep: Windmill refused 1 deliveries (")
    assert f"rows {ids[0]}" in message and "sent 2, 1 still wait" in message
    state = rows(db)
    assert [state[i]["sent"] for i in ids] == [False, True, True]
    assert "payload too large" in state[ids[0]]["last_error"]


def test_a_token_that_may_not_run_the_handler_stops_the_run_and_says_so(
    windmill, worker, db, monkeypatch
):
    add_rows(db, *[120] * 6)
    monkeypatch.setattr(windmill.api, "token", "another-token")  # the schedule owner's is not it
    outcome = sweep(worker)
    assert not outcome["success"]
    message = outcome["result"]["error"]["message"]
    assert "Windmill refused 3 deliveries (Windmill deliver user.registered failed (HTTP 401" in (
        message
    )
    assert "may not run f/marketing/handle_user_event" in message
    assert "wm-job-token" not in message and "another-token" not in message
    assert sum(r["attempts"] for r in rows(db).values()) == 3, "three tried, three left alone"
    assert handler_jobs(windmill) == []


def test_sent_rows_are_pruned_after_keep_sent_days(windmill, worker, db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "insert into marketing_outbox (event, sent_at) values (%s, now() - interval '31 days'),"
            " (%s, now() - interval '2 days')",
            (json.dumps(signup(1)), json.dumps(signup(2))),
        )
    assert sweep(worker)["result"]["pruned"] == 1
    assert len(rows(db)) == 1


def test_a_dry_run_counts_and_sends_nothing(windmill, worker, db):
    ids = add_rows(db, 300, 100)
    outcome = sweep(worker, dry_run=True)
    assert outcome["result"]["waiting"] == 2 and outcome["result"]["oldest_waiting_s"] >= 295
    assert handler_jobs(windmill) == [] and not any(r["sent"] for r in rows(db).values())
    assert all(rows(db)[i]["attempts"] == 0 for i in ids)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"batch_size": 0}, "batch_size: must be a whole number from 1 to 5000"),
        ({"grace_seconds": -1}, "grace_seconds: must be a whole number from 0 to 3600"),
        (
            {"database": {"host": "127.0.0.1"}},
            "database: must be a postgresql resource with a host and a dbname",
        ),
    ],
)
def test_bad_arguments_are_refused_before_any_call(windmill, worker, db, args, message):
    add_rows(db, 120)
    outcome = sweep(worker, **args)
    assert not outcome["success"]
    assert outcome["result"]["error"]["message"] == message
    assert handler_jobs(windmill) == []


def test_a_database_that_cannot_be_reached_fails_in_one_line_without_its_password(
    windmill, worker, server
):
    windmill.api.put(
        DB_RESOURCE,
        {
            "host": "127.0.0.1",
            "port": postgres_server._free_port(),
            "dbname": "x",
            "user": "marketing",
            "password": "s3cret-pw",
        },
        "postgresql",
    )
    outcome = sweep(worker)
    message = outcome["result"]["error"]["message"]
    assert message.startswith("outbox sweep: could not connect to the outbox database (")
    assert message.endswith("): nothing sent") and "s3cret-pw" not in message
    assert "\n" not in message


def test_an_invalid_event_in_the_outbox_is_left_to_the_handler_to_refuse(
    services, windmill, worker, db
):
    with psycopg.connect(db, autocommit=True) as conn:
        [(row,)] = conn.execute(
            "insert into marketing_outbox (event, created_at) values (%s, now() - interval"
            " '2 min') returning id",
            (json.dumps({"event": "user.registered", "email": "not-an-address"}),),
        ).fetchall()
    outcome = sweep(worker)
    assert outcome["result"]["sent"] == 1, "Windmill took it: the handler's job refuses it"
    failure = worker.outcome(job_of(str(row)))  # recorded in a failed job of its own
    assert not failure["success"]
    assert failure["result"]["error"]["message"].startswith("Invalid user.registered event")
    assert services.total_calls == 0


def test_the_python_emitter_writes_nothing_for_an_invalid_event(db, caplog):
    with psycopg.connect(db) as conn, conn.transaction():
        assert emitter_outbox.add(conn.cursor(), {"event": "user.registered"}) is None
    assert rows(db) == {}
    assert "event not written to the outbox: Invalid user.registered event" in caplog.text


def test_send_outboxed_refuses_an_id_that_is_not_a_random_uuid(windmill):
    emitter = Emitter(f"{windmill.api.base_url}/api/w/test/jobs/run/p/{HANDLER}",
                      windmill.api.token, sync=True,
                      policy=RetryPolicy(timeout=httpx.Timeout(1.0)))  # fmt: skip
    assert not emitter.send_outboxed(str(uuid.UUID(int=0)), signup(1))
    assert handler_jobs(windmill) == []


def test_an_event_whose_strings_look_like_references_keeps_no_token_in_its_job(
    windmill, worker, db
):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "insert into marketing_outbox (event, created_at) values (%s, now() - interval"
            " '2 min')",
            (json.dumps(signup(3) | {"name": "$var:u/admin/secret"}),),
        )
    sweep(worker)
    [job] = handler_jobs(windmill)
    assert set(job["args"]) == {"payload"}, "no trigger event, no headers"
    assert windmill.api.token not in json.dumps(windmill.api.completed)


def test_a_job_the_sweep_s_owner_cannot_see_is_taken_as_sent(services, windmill, worker, db):
    """The emitter's job was queued by the webhook token's user; under row level security the
    sweep's owner may not see it, and Windmill's push then fails on the table's key."""
    [row] = add_rows(db, 120)
    windmill.api.invisible_jobs.add(job_of(row))
    outcome = sweep(worker)
    assert outcome["result"]["sent"] == 1 and outcome["result"]["already_queued"] == 1
    assert rows(db)[row]["sent"] and handler_jobs(windmill) == []


def test_a_handler_that_is_not_deployed_fails_the_sweep_with_windmill_s_words(windmill, worker, db):
    add_rows(db, 120, 110, 100, 90)
    windmill.api.missing_scripts.add(HANDLER)
    outcome = sweep(worker)
    message = outcome["result"]["error"]["message"]
    assert "Windmill refused 3 deliveries (" in message
    assert "HTTP 404" in message and "script not found at name " + HANDLER in message
    assert sum(r["attempts"] for r in rows(db).values()) == 3
