# extra_requirements:
# httpx>=0.27,<1
# pydantic>=2.7,<3
# psycopg[binary]>=3.2,<3.3
"""Send what the SaaS's outbox still holds: every event committed to marketing_outbox that no
emitter marked sent within the grace period (the function was killed after responding,
Windmill was down or being upgraded), to the handler an emitter sends it to.

Put it on a schedule, every minute, with the SaaS's database as a `postgresql` resource. Each
row is queued with the job id derived from its id (f/marketing/lib/delivery_job.py), so a row
an emitter sent too, or that an earlier sweep sent before failing to mark it, is refused by
Windmill as "already exists" and applied once. It is queued as later attempts are, the event
as JSON text without the preprocessor: the sweep's token is its owner's, unscoped, and must
not be kept in a job's arguments as a webhook request's headers are. Rows are claimed with
`FOR UPDATE SKIP LOCKED`, fewest failed attempts first, then oldest, in batches, each batch one
transaction (Supabase's transaction pooler keeps a session only that long), so overlapping
runs never send one row twice at once, and a row that keeps failing goes behind the others.

When Windmill cannot be reached or is busy, the run stops at that row: the rest wait for the
next run, nothing is lost. A delivery Windmill refuses for good is marked failed (attempts,
last_error) and left unsent, and the run goes on with the next row, so one bad row never holds
up the others; after a few refusals in a row (a token without access, the handler not
deployed: every row would fail alike) the run stops. The job fails, and so is visible in
Windmill, when a delivery was refused for good or an event has waited longer than
`alert_after_minutes`.
"""

import os
import tempfile
import time
from contextlib import ExitStack
from typing import Any

import psycopg

from f.marketing.lib.errors import ConfigError, JobFailed
from f.marketing.lib.job_log import log_to_stdout
from f.marketing.lib.outbox import MARK_FAILED, MARK_SENT, PRUNE, UNSENT, WAITING
from f.marketing.lib.resource_types import postgresql
from f.marketing.lib.service_http import RetryPolicy, ServiceHttp
from f.marketing.lib.webhook_delivery import Delivery, deliver, windmill_error

HANDLER = "f/marketing/handle_user_event"
# A run ends in time for the next minute's run; one that overlaps it is harmless (SKIP LOCKED).
RUN_BUDGET_S = 45.0
# One delivery: a few quick tries, then the row waits for the next run instead of the worker.
POLICY = RetryPolicy(max_attempts=3, initial_delay=0.5, max_delay=2.0, max_retry_after=5.0,
                     budget=10.0)  # fmt: skip
STATEMENT_TIMEOUT = "15s"
# Refusals in a row after which every row is taken to fail alike, and the run stops.
REFUSALS_IN_A_ROW = 3


def main(
    database: postgresql,
    grace_seconds: int = 30,
    batch_size: int = 100,
    alert_after_minutes: int = 15,
    keep_sent_days: int = 30,
    dry_run: bool = False,
) -> dict:
    """Send every outbox event still unsent after the grace period; mark each sent.

    Args:
        database: The SaaS's PostgreSQL (Supabase) database that holds marketing_outbox; its
            user needs select and update on the table (delete too, to prune).
        grace_seconds: How long an event is left to the emitter that wrote it before the sweep
            sends it (the TypeScript emitter tries for up to 20 s; a second send is harmless).
        batch_size: Rows claimed per transaction.
        alert_after_minutes: Fail the job when an event has waited longer than this.
        keep_sent_days: Sent rows are deleted after this many days (0 keeps them).
        dry_run: Count what waits, send and change nothing.
    """
    log = log_to_stdout()
    _check_bounds(grace_seconds, batch_size, alert_after_minutes, keep_sent_days)
    with ExitStack() as stack:
        conn = _connect(database, stack)
        stack.enter_context(conn)
        if dry_run:
            waiting, oldest = _waiting(conn)
            log.info("dry run: %d events wait, the oldest for %.0f s", waiting, oldest)
            return {"dry_run": True, "waiting": waiting, "oldest_waiting_s": round(oldest)}
        http = _windmill()
        stack.callback(http.close)
        workspace = os.environ.get("WM_WORKSPACE", "")
        path = f"/api/w/{workspace}/jobs/run/p/{HANDLER}"
        sweep = _Sweep(conn, http, path, os.environ.get("WM_TOKEN", ""))
        sweep.run(grace_seconds, batch_size)
        pruned = _prune(conn, keep_sent_days)
        waiting, oldest = _waiting(conn)
    result = {
        "sent": sweep.sent,
        "already_queued": sweep.already_queued,
        "refused": len(sweep.refused),
        "waiting": waiting,
        "oldest_waiting_s": round(oldest),
        "pruned": pruned,
        "stopped_by": sweep.stopped_by.reason if sweep.stopped_by else None,
    }
    log.info(
        "outbox: sent %d (%d already queued), refused %d, %d wait, the oldest for %.0f s, "
        "pruned %d", sweep.sent, sweep.already_queued, len(sweep.refused), waiting, oldest,
        pruned,
    )  # fmt: skip
    done = f"sent {sweep.sent}, {waiting} still wait (the oldest for {oldest / 60:.0f} min)"
    if sweep.refused:
        ids = ", ".join(d.event_id for d in sweep.refused[:5])
        raise JobFailed(
            f"outbox sweep: Windmill refused {len(sweep.refused)} deliveries "
            f"({sweep.refused[-1].reason}; rows {ids}): {done}. A refusal of every row means "
            f"the schedule's owner may not run {HANDLER}",
            result,
        )
    if waiting and oldest > alert_after_minutes * 60:
        cause = sweep.stopped_by.reason if sweep.stopped_by else "not sent yet"
        raise JobFailed(
            f"outbox sweep: events have waited over {alert_after_minutes} min ({cause}): {done}",
            result,
            transient=True,
        )
    return result


class _Sweep:
    """One run's sending: batches of claimed rows until none is due, time is up, Windmill
    fails, or it refuses a few rows in a row (the rest then wait for the next run)."""

    def __init__(self, conn: psycopg.Connection, http: ServiceHttp, path: str, token: str):
        self.conn, self.http, self.path, self.token = conn, http, path, token
        self.sent = self.already_queued = 0
        self.refused: list[Delivery] = []
        self._refused_in_a_row = 0
        self.stopped_by: Delivery | None = None

    def run(self, grace_seconds: int, batch_size: int) -> None:
        deadline = time.monotonic() + RUN_BUDGET_S
        while time.monotonic() < deadline and self.stopped_by is None:
            if self._batch(grace_seconds, batch_size, deadline) < batch_size:
                return

    def _batch(self, grace_seconds: int, limit: int, deadline: float) -> int:
        with self.conn.transaction():
            self.conn.execute(f"set local statement_timeout = '{STATEMENT_TIMEOUT}'")
            rows = self.conn.execute(UNSENT, {"grace": grace_seconds, "limit": limit}).fetchall()
            for row_id, event in rows:
                if time.monotonic() >= deadline:
                    return 0  # the rest of the claimed rows are released unsent
                if not self._send(str(row_id), event):
                    return 0
        return len(rows)

    def _send(self, row_id: str, event: Any) -> bool:
        body = event if isinstance(event, dict) else {}
        delivery = deliver(
            self.http, self.path, {}, row_id, body, self.token, as_job_arguments=True
        )
        if delivery.delivered:
            self.conn.execute(MARK_SENT, {"id": row_id})
            self.sent += 1
            self.already_queued += delivery.already_queued
            self._refused_in_a_row = 0
            return True
        self.conn.execute(MARK_FAILED, {"id": row_id, "error": delivery.reason})
        if not delivery.transient:
            self.refused.append(delivery)
            self._refused_in_a_row += 1
            if self._refused_in_a_row < REFUSALS_IN_A_ROW:
                return True
        self.stopped_by = delivery
        return False


def _check_bounds(grace: int, batch: int, alert_after: int, keep_days: int) -> None:
    for name, value, low, high in (
        ("grace_seconds", grace, 0, 3600),
        ("batch_size", batch, 1, 5000),
        ("alert_after_minutes", alert_after, 1, 10080),
        ("keep_sent_days", keep_days, 0, 3650),
    ):
        if not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name}: must be a whole number from {low} to {high}")


def _connect(database: Any, stack: ExitStack) -> psycopg.Connection:
    """A connection from Windmill's `postgresql` resource (host and dbname required; user,
    password, port, sslmode, root_certificate_pem optional: windmill-common lib.rs
    `PgDatabase`). Without prepared statements, which Supabase's transaction pooler (port
    6543) does not keep between transactions."""
    if not isinstance(database, dict) or not all(
        isinstance(database.get(key), str) and database[key] for key in ("host", "dbname")
    ):
        raise ConfigError("database: must be a postgresql resource with a host and a dbname")
    params: dict[str, Any] = {
        "host": database["host"],
        "dbname": database["dbname"],
        "connect_timeout": 10,
        "application_name": "f/marketing/outbox_sweep",
    }
    params["user"] = database.get("user") or "postgres"  # Windmill's default, not the OS user
    for key in ("password", "port", "sslmode"):
        if database.get(key) not in (None, ""):
            params[key] = database[key]
    pem = database.get("root_certificate_pem")
    if pem:  # libpq takes the root certificate as a file
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        path = os.path.join(folder, "root.crt")
        with open(path, "w", encoding="utf-8") as file:
            file.write(pem)
        params["sslrootcert"] = path
    try:
        return psycopg.connect(**params, autocommit=True, prepare_threshold=None)
    except psycopg.Error as exc:
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if database.get("password"):
            said = said.replace(str(database["password"]), "***")
        raise JobFailed(
            f"outbox sweep: could not connect to the outbox database ({said}): nothing sent",
            {"sent": 0},
            transient=True,
        ) from None


def _windmill() -> ServiceHttp:
    base = os.environ.get("BASE_INTERNAL_URL") or os.environ.get("WM_BASE_URL") or ""
    if not base or not os.environ.get("WM_TOKEN") or not os.environ.get("WM_WORKSPACE"):
        raise ConfigError("the outbox sweep sends through Windmill's API: run it in Windmill")
    return ServiceHttp(
        "Windmill",
        base.rstrip("/"),
        headers={"Authorization": f"Bearer {os.environ['WM_TOKEN']}"},
        error_reader=windmill_error,
        policy=POLICY,
    )


def _waiting(conn: psycopg.Connection) -> tuple[int, float]:
    with conn.transaction():
        count, oldest = conn.execute(WAITING).fetchone() or (0, 0.0)
    return int(count), float(oldest)


def _prune(conn: psycopg.Connection, keep_days: int) -> int:
    if keep_days == 0:
        return 0
    with conn.transaction():
        return conn.execute(PRUNE, {"days": keep_days}).rowcount
