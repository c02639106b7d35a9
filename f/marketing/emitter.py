"""Send lifecycle events to the Windmill webhook without ever slowing or breaking the caller.

    from f.marketing.emitter import user_registered

    user_registered("jane@acme.com", name="Jane Doe", plan="pro", source="ads",
                    marketing_consent=True)

Each call validates the event against the same contract as the handler, gives it an id, puts it
on a bounded queue and returns at once (microseconds). A daemon thread delivers it to
WINDMILL_WEBHOOK_URL with WINDMILL_API_TOKEN as a Bearer token, retrying transient failures
with backoff that honours Retry-After. The id is sent as Windmill's `job_id`, so a retried
delivery is the same job, never a second one. Nothing here raises into the caller: a bad event,
a missing configuration, a full queue or a failed delivery is logged and counted (`stats()`).

Short-lived callers (command-line tools, serverless functions) call `configure(sync=True)`:
each call then delivers before it returns, still with retries. Pending events are flushed at
interpreter exit (bounded wait), and the sender restarts in a child after `os.fork()`.
"""

import atexit
import contextlib
import logging
import os
import queue
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from f.marketing.contract import UserChurned, UserRegistered, UserUpgraded, parse_event
from f.marketing.errors import MarketingError, ServiceError
from f.marketing.http_client import RetryPolicy, ServiceHttp, plain_error

log = logging.getLogger("f.marketing.emitter")

# In the background a delivery may take its time; a synchronous caller waits at most ~10 s.
BACKGROUND_POLICY = RetryPolicy(
    max_attempts=6,
    initial_delay=0.5,
    max_delay=30.0,
    max_retry_after=120.0,
    budget=300.0,
    timeout=httpx.Timeout(5.0, connect=2.0),
)
SYNC_POLICY = RetryPolicy(
    max_attempts=3,
    initial_delay=0.25,
    max_delay=2.0,
    max_retry_after=5.0,
    budget=10.0,
    timeout=httpx.Timeout(3.0, connect=2.0),
)
QUEUE_SIZE = 10_000
EXIT_TIMEOUT = 2.0
DROP_WARNING_INTERVAL = 10.0
_ALREADY_QUEUED = re.compile(r"duplicate key|already exists", re.IGNORECASE)

Event = UserRegistered | UserUpgraded | UserChurned


@dataclass(frozen=True)
class Delivery:
    """How one event fared: delivered (with Windmill's job id) or not, and why."""

    event_id: str
    delivered: bool
    job_id: str | None = None
    reason: str = ""


@dataclass
class Stats:
    """Counters a caller can read; `dropped` counts events a full queue turned away."""

    queued: int = 0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    invalid: int = 0
    unconfigured: int = 0
    pending: int = 0


@dataclass(frozen=True)
class _Item:
    event_id: str
    event: Event


@dataclass
class _Sender:
    """What a process owns alone: the queue, the thread and the HTTP connection pool."""

    queue: "queue.Queue[_Item]"
    http: ServiceHttp | None
    pid: int = field(default_factory=os.getpid)
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)


class Emitter:
    """One webhook destination. Most callers use the module functions and never build one."""

    def __init__(
        self,
        webhook_url: str | None = None,
        token: str | None = None,
        *,
        sync: bool = False,
        queue_size: int = QUEUE_SIZE,
        policy: RetryPolicy | None = None,
        exit_timeout: float = EXIT_TIMEOUT,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        url = webhook_url if webhook_url is not None else os.environ.get("WINDMILL_WEBHOOK_URL")
        token = token if token is not None else os.environ.get("WINDMILL_API_TOKEN")
        self.sync = sync
        self.exit_timeout = exit_timeout
        self._policy = policy or (SYNC_POLICY if sync else BACKGROUND_POLICY)
        self._queue_size = queue_size
        self._sleep = sleep
        self._token = token or ""
        self._target: tuple[str, str, dict[str, str]] | None = None
        if url and token:
            parts = urlsplit(url)
            # The query string stays out of every log line: it may carry a token.
            self._target = (
                f"{parts.scheme}://{parts.netloc}",
                parts.path,
                dict(parse_qsl(parts.query)),
            )
        self._stats = Stats()
        self._lock = threading.Lock()
        self._warned_unconfigured = False
        self._last_drop_warning = float("-inf")
        self._sender = self._new_sender()
        _live.add(self)

    # --- the three events ---------------------------------------------------------------

    def user_registered(
        self,
        email: str,
        *,
        name: str | None,
        plan: str,
        source: str,
        marketing_consent: bool,
        timestamp: datetime | str | None = None,
    ) -> str | None:
        """Queue a user.registered event; return its id, or None when it was not accepted."""
        return self.emit(
            {
                "event": "user.registered",
                "email": email,
                "name": name,
                "plan": plan,
                "source": source,
                "marketingConsent": marketing_consent,
                "timestamp": _timestamp(timestamp),
            }
        )

    def user_upgraded(
        self,
        email: str,
        *,
        previous_plan: str,
        new_plan: str,
        timestamp: datetime | str | None = None,
    ) -> str | None:
        """Queue a user.upgraded event; return its id, or None when it was not accepted."""
        return self.emit(
            {
                "event": "user.upgraded",
                "email": email,
                "previousPlan": previous_plan,
                "newPlan": new_plan,
                "timestamp": _timestamp(timestamp),
            }
        )

    def user_churned(
        self, email: str, *, reason: str | None, timestamp: datetime | str | None = None
    ) -> str | None:
        """Queue a user.churned event; return its id, or None when it was not accepted."""
        return self.emit(
            {
                "event": "user.churned",
                "email": email,
                "reason": reason,
                "timestamp": _timestamp(timestamp),
            }
        )

    # --- sending --------------------------------------------------------------------------

    def emit(self, body: dict[str, Any]) -> str | None:
        """Validate and queue (or, in sync mode, deliver) one event body. Never raises."""
        try:
            return self._emit(body)
        except Exception:  # the caller's registration must never fail because of us
            log.exception("event not sent: unexpected error in the emitter")
            return None

    def _emit(self, body: dict[str, Any]) -> str | None:
        if self._target is None:
            self._stats.unconfigured += 1
            self._warn_unconfigured()
            return None
        event = self._validate(body)
        if event is None:
            return None
        item = _Item(str(uuid.uuid4()), event)
        if self.sync:
            return item.event_id if self._deliver(item).delivered else None
        sender = self._running_sender()
        try:
            sender.queue.put_nowait(item)
        except queue.Full:
            self._drop()
            return None
        self._stats.queued += 1
        return item.event_id

    def deliver(self, body: dict[str, Any]) -> Delivery:
        """Deliver one event now, in this thread, with retries; report how it went."""
        if self._target is None:
            self._warn_unconfigured()
            return Delivery("", False, reason="WINDMILL_WEBHOOK_URL or WINDMILL_API_TOKEN unset")
        try:
            event = parse_event(body)
        except MarketingError as exc:
            self._stats.invalid += 1
            return Delivery("", False, reason=str(exc))
        return self._deliver(_Item(str(uuid.uuid4()), event))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is delivered or given up; False if `timeout` ran out."""
        sender = self._current_sender()
        if not sender.queue.unfinished_tasks:
            return True
        sender = self._running_sender()
        deadline = time.monotonic() + max(0.0, timeout)
        done = sender.queue.all_tasks_done
        with done:
            while sender.queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                done.wait(remaining)
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within `timeout` (default: the exit timeout), then stop the sender."""
        sender = self._sender
        if sender.stop.is_set():
            return sender.queue.unfinished_tasks == 0
        flushed = self.flush(self.exit_timeout if timeout is None else timeout)
        sender.stop.set()
        left = sender.queue.unfinished_tasks
        if left:
            log.warning("%d event(s) not delivered: the process is stopping", left)
        if sender.thread is not None:
            with contextlib.suppress(queue.Full):  # wake the sender if it waits for work
                sender.queue.put_nowait(_WAKE)  # type: ignore[arg-type]
            sender.thread.join(0.5)
        return flushed

    def stats(self) -> Stats:
        snapshot = Stats(**vars(self._stats))
        snapshot.pending = self._sender.queue.unfinished_tasks
        return snapshot

    # --- internals ------------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> Event | None:
        try:
            return parse_event(body)
        except MarketingError as exc:
            self._stats.invalid += 1
            log.error("event not sent: %s", exc)  # names fields, never their values
            return None

    def _deliver(self, item: _Item, http: ServiceHttp | None = None) -> Delivery:
        http = http or self._current_sender().http
        assert http is not None and self._target is not None
        _, path, query = self._target
        try:
            response = http.request(
                "POST",
                path,
                action=f"deliver {item.event.event}",
                params={**query, "job_id": item.event_id},
                json=item.event.body(),
            )
        except (ServiceError, httpx.HTTPError) as exc:
            if isinstance(exc, ServiceError) and exc.status and _ALREADY_QUEUED.search(exc.detail):
                # An earlier attempt landed and only its answer was lost. Windmill refuses a
                # second job with the same id: 400 "Job with id <id> already exists", or, when
                # two pushes race, 400 "... duplicate key value violates unique constraint"
                # (windmill-queue push_inner; windmill-common error.rs).
                self._stats.sent += 1
                return Delivery(item.event_id, True, job_id=item.event_id)
            self._stats.failed += 1
            reason = self._redact(str(exc)) if isinstance(exc, ServiceError) else type(exc).__name__
            log.error("event %s (%s) not delivered: %s", item.event_id, item.event.event, reason)
            return Delivery(item.event_id, False, reason=reason)
        self._stats.sent += 1
        return Delivery(item.event_id, True, job_id=response.text.strip().strip('"') or None)

    def _current_sender(self) -> _Sender:
        sender = self._sender
        if sender.pid != os.getpid():  # forked without the at-fork hook (uWSGI forks in C)
            sender = self._after_fork()
        return sender

    def _running_sender(self) -> _Sender:
        """The sender, with its thread started on first use (and again if it ever died)."""
        sender = self._current_sender()
        if sender.thread is None or not sender.thread.is_alive():
            with self._lock:
                if sender.thread is None or not sender.thread.is_alive():
                    sender.thread = threading.Thread(
                        target=self._run, args=(sender,), name="windmill-emitter", daemon=True
                    )
                    sender.thread.start()
        return sender

    def _run(self, sender: _Sender) -> None:
        while not sender.stop.is_set():
            item = sender.queue.get()
            try:
                if item is not _WAKE:
                    self._deliver(item, sender.http)
            except _Stopping:
                pass
            except Exception:
                log.exception("event %s not delivered: unexpected error", item.event_id)
            finally:
                sender.queue.task_done()

    def _new_sender(self) -> _Sender:
        stop = threading.Event()
        http = None
        if self._target is not None:
            http = ServiceHttp(
                "Windmill",
                self._target[0],
                headers={"Authorization": f"Bearer {self._token}"},
                error_reader=plain_error,
                policy=self._policy,
                sleep=self._sleep or (time.sleep if self.sync else _interruptible(stop)),
            )
        return _Sender(queue.Queue(self._queue_size), http, stop=stop)

    def _after_fork(self) -> _Sender:
        # The parent keeps and delivers what it queued; the child starts empty, with its own
        # thread and connections (sockets must not be shared across processes).
        self._lock = threading.Lock()
        self._sender = self._new_sender()
        self._stats = Stats()
        return self._sender

    def _drop(self) -> None:
        with self._lock:
            self._stats.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_warning < DROP_WARNING_INTERVAL:
                return
            self._last_drop_warning = now
        log.warning(
            "event dropped: the queue is full (%d waiting); %d dropped so far",
            self._queue_size,
            self._stats.dropped,
        )

    def _warn_unconfigured(self) -> None:
        if not self._warned_unconfigured:
            self._warned_unconfigured = True
            log.warning(
                "WINDMILL_WEBHOOK_URL or WINDMILL_API_TOKEN is not set: lifecycle events are "
                "not sent (this is logged once)"
            )

    def _redact(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        return text


_WAKE = object()  # put on the queue to wake an idle sender so that it sees the stop flag


class _Stopping(Exception):
    """Raised in the sender's backoff sleep when the process is stopping."""


def _interruptible(stop: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise _Stopping

    return sleep


def _timestamp(value: datetime | str | None) -> str | datetime:
    return datetime.now(UTC).isoformat() if value is None else value


# --- process-wide plumbing: at exit, after fork ---------------------------------------------

_live: "weakref.WeakSet[Emitter]" = weakref.WeakSet()


def _flush_at_exit() -> None:
    for emitter in list(_live):
        if not emitter.sync and emitter._sender.pid == os.getpid():
            emitter.shutdown()


def _reset_in_child() -> None:
    for emitter in list(_live):
        emitter._after_fork()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


# --- the module-level surface ---------------------------------------------------------------

_default: Emitter | None = None
_default_lock = threading.Lock()


def _emitter() -> Emitter:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Emitter()
    return _default


def configure(**options: Any) -> Emitter:
    """Replace the default emitter, e.g. `configure(sync=True)` in a short-lived process."""
    global _default
    with _default_lock:
        old, _default = _default, Emitter(**options)
    if old is not None and not old.sync:
        old.shutdown()
    return _default


def user_registered(
    email: str,
    *,
    name: str | None,
    plan: str,
    source: str,
    marketing_consent: bool,
    timestamp: datetime | str | None = None,
) -> str | None:
    return _emitter().user_registered(
        email,
        name=name,
        plan=plan,
        source=source,
        marketing_consent=marketing_consent,
        timestamp=timestamp,
    )


def user_upgraded(
    email: str, *, previous_plan: str, new_plan: str, timestamp: datetime | str | None = None
) -> str | None:
    return _emitter().user_upgraded(
        email, previous_plan=previous_plan, new_plan=new_plan, timestamp=timestamp
    )


def user_churned(
    email: str, *, reason: str | None, timestamp: datetime | str | None = None
) -> str | None:
    return _emitter().user_churned(email, reason=reason, timestamp=timestamp)


def flush(timeout: float = 5.0) -> bool:
    return _emitter().flush(timeout)


def stats() -> Stats:
    return _emitter().stats()
