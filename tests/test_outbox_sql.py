"""The outbox table (f/marketing/emitter/outbox.sql) and its statements (f/marketing/lib/outbox.py)
on a real PostgreSQL server on 127.0.0.1."""

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from f.marketing.lib import outbox
from tests import postgres_server

_why_not = postgres_server.missing()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")
SQL = (Path(__file__).resolve().parents[1] / "f/marketing/emitter/outbox.sql").read_text()
EVENT = {"event": "user.churned", "email": "jane@acme.com", "reason": None,
         "timestamp": "2026-12-01T10:00:00Z"}  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[postgres_server.PostgresServer]:
    with postgres_server.PostgresServer() as pg:
        yield pg


@pytest.fixture
def db(server):
    dsn = server.new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SQL)
    return dsn


def _add(conn, *, age_s: float = 0, sent: bool = False, event=EVENT) -> uuid.UUID:
    row = conn.execute(
        "insert into marketing_outbox (event, created_at, sent_at)"
        " values (%s, now() - make_interval(secs => %s), case when %s then now() end) returning id",
        (json.dumps(event), age_s, sent),
    ).fetchone()
    return row[0]


def test_the_table_is_created_once_and_the_script_can_run_again(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(SQL)
        indexes = conn.execute(
            "select indexname from pg_indexes where tablename = 'marketing_outbox'"
        ).fetchall()
    assert sorted(name for (name,) in indexes) == [
        "marketing_outbox_pkey",
        "marketing_outbox_unsent",
    ]


def test_an_event_rolled_back_with_the_user_leaves_no_row(db):
    with psycopg.connect(db) as conn:
        _add(conn)
        conn.rollback()
        assert conn.execute("select count(*) from marketing_outbox").fetchone() == (0,)


def test_a_row_must_hold_an_event_object(db):
    with psycopg.connect(db, autocommit=True) as conn, pytest.raises(psycopg.errors.CheckViolation):
        _add(conn, event=[EVENT])


def test_the_sweep_takes_unsent_rows_past_the_grace_period_oldest_first(db):
    with psycopg.connect(db) as conn:
        old, older = _add(conn, age_s=120), _add(conn, age_s=300)
        _add(conn, age_s=10)  # the emitter is still on it
        _add(conn, age_s=600, sent=True)
        rows = conn.execute(outbox.UNSENT, {"grace": 60, "limit": 100}).fetchall()
    assert [row[0] for row in rows] == [older, old]
    assert rows[0][1] == EVENT


def test_a_row_that_keeps_failing_goes_behind_the_others(db):
    with psycopg.connect(db, autocommit=True) as conn:
        stuck, newer = _add(conn, age_s=900), _add(conn, age_s=120)
        conn.execute(outbox.MARK_FAILED, {"id": stuck, "error": "HTTP 500: Internal"})
        rows = conn.execute(outbox.UNSENT, {"grace": 60, "limit": 100}).fetchall()
    assert [row[0] for row in rows] == [newer, stuck]


def test_the_sweep_reads_the_partial_index_however_many_rows_were_sent(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "insert into marketing_outbox (event, created_at, sent_at)"
            " select %s, now() - interval '1 day', now() from generate_series(1, 50000)",
            (json.dumps(EVENT),),
        )
        for _ in range(5):
            _add(conn, age_s=120)
        conn.execute("analyze marketing_outbox")
        with conn.transaction():
            plan = conn.execute("explain " + outbox.UNSENT, {"grace": 60, "limit": 500}).fetchall()
        size = conn.execute("select pg_relation_size('marketing_outbox_unsent')").fetchone()[0]
    assert "Index Scan using marketing_outbox_unsent" in "\n".join(line for (line,) in plan)
    assert size <= 16384, "the index holds only the unsent rows"


def test_two_sweeps_at_once_never_take_the_same_row(db):
    with psycopg.connect(db, autocommit=True) as conn:
        ids = {_add(conn, age_s=120) for _ in range(6)}
    first = psycopg.connect(db)
    taken_first = {row[0] for row in first.execute(outbox.UNSENT, {"grace": 60, "limit": 4})}
    taken_second: set[uuid.UUID] = set()

    def second_sweep() -> None:
        with psycopg.connect(db) as conn:
            taken_second.update(
                row[0] for row in conn.execute(outbox.UNSENT, {"grace": 60, "limit": 4})
            )

    worker = threading.Thread(target=second_sweep)
    worker.start()
    worker.join(timeout=10)
    first.rollback()
    first.close()
    assert not worker.is_alive(), "the second sweep did not wait for the first one's rows"
    assert len(taken_first) == 4 and len(taken_second) == 2
    assert taken_first.isdisjoint(taken_second) and taken_first | taken_second == ids


def test_a_row_is_marked_sent_once_and_a_failure_never_unmarks_it(db):
    with psycopg.connect(db, autocommit=True) as conn:
        row = _add(conn, age_s=120)
        conn.execute(outbox.MARK_FAILED, {"id": row, "error": "HTTP 503: " + "x" * 900})
        assert conn.execute(outbox.MARK_SENT, {"id": row}).rowcount == 1
        assert conn.execute(outbox.MARK_SENT, {"id": row}).rowcount == 0
        conn.execute(outbox.MARK_FAILED, {"id": row, "error": "late"})
        attempts, error, sent = conn.execute(
            "select attempts, last_error, sent_at from marketing_outbox where id = %s", (row,)
        ).fetchone()
    assert (attempts, len(error), sent is not None) == (1, 500, True)
    assert conn.closed


def test_sent_rows_are_pruned_after_their_keep_time_and_unsent_ones_never(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "insert into marketing_outbox (event, created_at, sent_at) values"
            " (%s, now() - interval '40 days', now() - interval '40 days'),"
            " (%s, now() - interval '40 days', null), (%s, now(), now())",
            (json.dumps(EVENT),) * 3,
        )
        conn.execute(outbox.PRUNE, {"days": 30})
        left = conn.execute("select sent_at is null from marketing_outbox order by 1").fetchall()
    assert left == [(False,), (True,)]


def test_only_the_server_s_roles_can_read_the_emails(db):
    with psycopg.connect(db, autocommit=True) as conn:
        _add(conn)
        _role(conn, "anon")
        conn.execute("grant select, insert on marketing_outbox to anon")  # as Supabase grants
        conn.execute("set role anon")
        assert conn.execute("select count(*) from marketing_outbox").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into marketing_outbox (event) values ('{}')")


def test_the_emitter_s_mark_sent_marks_once_and_never_waits_on_the_sweep(db):
    with psycopg.connect(db, autocommit=True) as conn:
        held, free = _add(conn, age_s=120), _add(conn, age_s=120)
    sweep = psycopg.connect(db)
    sweep.execute("select id from marketing_outbox where id = %s for update", (held,))
    try:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("set statement_timeout = '2s'")  # a wait would fail the statement
            sent = "select marketing_outbox_sent(%s)"
            assert conn.execute(sent, (held,)).fetchone() == (False,), "left to the sweep"
            assert conn.execute(sent, (free,)).fetchone() == (True,)
            assert conn.execute(sent, (free,)).fetchone() == (False,), "already sent"
            conn.execute(outbox.MARK_SENT_UNLESS_CLAIMED, {"id": held})
            assert conn.execute(
                "select count(*) from marketing_outbox where sent_at is not null"
            ).fetchone() == (1,)
    finally:
        sweep.rollback()
        sweep.close()


def test_the_readme_s_sweep_role_can_do_what_the_sweep_does_and_no_more(db):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    [grants] = [b for b in readme.split("```sql\n")[1:] if "create role marketing_sweep" in b]
    role = f"sweep_{uuid.uuid4().hex[:8]}"  # roles are the server's, not the database's
    with psycopg.connect(db, autocommit=True) as conn:
        row = _add(conn, age_s=120)
        conn.execute(grants.split("```")[0].replace("marketing_sweep", role))
        conn.execute(f"set role {role}")
        assert [r[0] for r in conn.execute(outbox.UNSENT, {"grace": 60, "limit": 10})] == [row]
        assert conn.execute(outbox.MARK_SENT, {"id": row}).rowcount == 1
        conn.execute(outbox.MARK_FAILED, {"id": row, "error": "x"})
        conn.execute(outbox.WAITING).fetchone()
        conn.execute(outbox.PRUNE, {"days": 30})
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into marketing_outbox (event) values ('{}')")


def _role(conn: psycopg.Connection, name: str, options: str = "nologin") -> None:
    """A role as Supabase has it, made once: roles are the server's, not a database's."""
    conn.execute(
        f"do $$ begin if not exists (select from pg_roles where rolname = '{name}') then"
        f" create role {name} {options}; end if; end $$"
    )


def test_the_readme_s_supabase_function_writes_the_user_and_the_event_for_the_server_only(db):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    [function] = [b for b in readme.split("```sql\n")[1:] if "create_user_with_event(" in b]
    with psycopg.connect(db, autocommit=True) as conn:
        for name, options in (("anon", "nologin"), ("authenticated", "nologin"),
                              ("service_role", "nologin bypassrls")):  # fmt: skip
            _role(conn, name, options)
        conn.execute(
            "create table users (id uuid primary key default gen_random_uuid(),"
            " email text not null, full_name text, plan text not null,"
            " created_at timestamptz not null default now())"
        )
        conn.execute("grant all on users, marketing_outbox to anon, authenticated, service_role")
        conn.execute(function.split("```")[0])
        call = "select create_user_with_event(%s::jsonb, %s::jsonb)"
        args = (json.dumps({"email": "jane@acme.com", "full_name": None, "plan": "pro"}),
                json.dumps(EVENT))  # fmt: skip
        conn.execute("set role anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(call, args)
        conn.execute("reset role")
        conn.execute("set role service_role")
        [(made,)] = conn.execute(call, args).fetchall()
        assert conn.execute("select marketing_outbox_sent(%s)", (made["event_id"],)).fetchone()
        conn.execute("reset role")
        stored = conn.execute("select event, sent_at is not null from marketing_outbox").fetchall()
    assert made["user"]["email"] == "jane@acme.com" and made["user"]["id"]
    assert stored == [(EVENT, True)]
