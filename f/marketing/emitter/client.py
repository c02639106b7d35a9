"""An Emitter: one webhook destination, its counters, and a sender per process."""

import atexit
import inspect
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec
from urllib.parse import parse_qsl, urlsplit

import httpx

from f.marketing.emitter import events
from f.marketing.emitter.consumer import Consumer, Item
from f.marketing.lib.contract import Event, build_models, parse_event
from f.marketing.lib.delivery_job import check_event_id
from f.marketing.lib.errors import MarketingError
from f.marketing.lib.service_http import RetryPolicy, ServiceHttp
from f.marketing.lib.webhook_delivery import Delivery, deliver, windmill_error

# A SaaS web server emits from many threads: the models are built before the first one.
build_models()

log = logging.getLogger("f.marketing.emitter")
P = ParamSpec("P")

# In the background a delivery may take its time; a synchronous caller waits at most ~10 s.
BACKGROUND_POLICY = RetryPolicy(
    max_attempts=6, initial_delay=0.5, max_delay=30.0, max_retry_after=120.0, budget=300.0,
    timeout=httpx.Timeout(5.0, connect=2.0),
)  # fmt: skip
SYNC_POLICY = RetryPolicy(
    max_attempts=3, initial_delay=0.25, max_delay=2.0, max_retry_after=5.0, budget=10.0,
    timeout=httpx.Timeout(3.0, connect=2.0),
)  # fmt: skip
QUEUE_SIZE = 10_000
EXIT_TIMEOUT = 2.0
DROP_WARNING_INTERVAL = 10.0


@dataclass
class Stats:
    """Counters a caller can read, since the process started (or forked)."""

    queued: int = 0
    """Accepted onto the queue."""
    sent: int = 0
    """Delivered: Windmill queued the job (or already had it)."""
    failed: int = 0
    """Given up after the retries, or refused for good."""
    dropped: int = 0
    """Turned away by a full queue."""
    invalid: int = 0
    """Not sent: the event broke the contract."""
    unconfigured: int = 0
    """Not sent: WINDMILL_WEBHOOK_URL or WINDMILL_API_TOKEN is unset."""
    pending: int = 0
    """Still on the queue when the snapshot was taken."""


def _sending(
    build: Callable[P, dict[str, Any]],
) -> Callable[Concatenate["Emitter", P], str | None]:
    """An event builder (events.py) as an Emitter method: build the body, then emit it."""

    def method(self: "Emitter", /, *args: P.args, **kwargs: P.kwargs) -> str | None:
        return self.emit(build(*args, **kwargs))

    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    signature = inspect.signature(build)
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_param, *signature.parameters.values()], return_annotation=str | None
    )
    return method


class Emitter:
    """One webhook destination. Most callers use the module functions and never build one."""

    user_registered = _sending(events.user_registered)
    user_upgraded = _sending(events.user_upgraded)
    user_churned = _sending(events.user_churned)

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
        self._lock = threading.Lock()
        self._warned_unconfigured = False
        self._last_drop_warning = float("-inf")
        self._start_process()
        _live.add(self)

    def emit(self, body: dict[str, Any]) -> str | None:
        """Validate and queue (or, in sync mode, deliver) one event body. Never raises."""
        try:
            return self._emit(body)
        except Exception:  # the caller's registration must never fail because of us
            log.exception("event not sent: unexpected error in the emitter")
            return None

    def deliver(self, body: dict[str, Any]) -> Delivery:
        """Deliver one event now, in this thread, with retries; report how it went."""
        try:
            event = parse_event(body)  # configured or not: a contract bug shows everywhere
        except MarketingError as exc:
            self._stats.invalid += 1
            return Delivery("", False, reason=str(exc))
        if self._target is None:
            self._stats.unconfigured += 1
            self._warn_unconfigured()
            return Delivery("", False, reason="WINDMILL_WEBHOOK_URL or WINDMILL_API_TOKEN unset")
        return self._send(Item(str(uuid.uuid4()), event))

    def send_outboxed(
        self,
        event_id: str,
        body: dict[str, Any],
        on_sent: Callable[[str], object] | None = None,
    ) -> bool:
        """Send an event already in the outbox (its row's id, from `outbox.add`) after the
        commit, and once Windmill has it call `on_sent(event_id)`, which marks the row sent
        (`outbox.mark_sent`) with a connection of its own. False when it was not queued; the
        sweep sends it then. Never raises."""
        try:
            event_id = check_event_id(event_id)
        except ValueError as exc:
            log.error("outbox event not sent: %s", exc)
            return False
        event = self._validate(body)
        return event is not None and self._dispatch(Item(event_id, event, on_sent))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is delivered or given up; False if `timeout` ran out."""
        return self._consumer_here().flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within `timeout` (default: the exit timeout), then stop the sender."""
        return self._consumer.shutdown(self.exit_timeout if timeout is None else timeout)

    def stats(self) -> Stats:
        snapshot = Stats(**vars(self._stats))
        snapshot.pending = self._consumer.pending
        return snapshot

    # --- internals ------------------------------------------------------------------------

    def _emit(self, body: dict[str, Any]) -> str | None:
        # Validated first, so that a developer's machine with no webhook shows contract bugs.
        event = self._validate(body)
        if event is None:
            return None
        item = Item(str(uuid.uuid4()), event)
        return item.event_id if self._dispatch(item) else None

    def _dispatch(self, item: Item) -> bool:
        """Deliver now (sync) or queue; False when it was not sent or could not be queued."""
        if self._target is None:
            self._stats.unconfigured += 1
            self._warn_unconfigured()
            return False
        if self.sync:
            return self._send(item).delivered
        if not self._consumer_here().put(item):
            self._drop()
            return False
        self._stats.queued += 1
        return True

    def _validate(self, body: dict[str, Any]) -> Event | None:
        try:
            return parse_event(body)
        except MarketingError as exc:
            self._stats.invalid += 1
            log.error("event not sent: %s", exc)  # names fields, never their values
            return None

    def _send(self, item: Item) -> Delivery:
        assert self._http is not None and self._target is not None
        _, path, query = self._target
        delivery = deliver(self._http, path, query, item.event_id, item.event.body(), self._token)
        if delivery.delivered:
            self._stats.sent += 1
            if item.on_sent is not None:
                try:
                    item.on_sent(item.event_id)
                except Exception:  # the row stays unsent: the sweep finds Windmill has it
                    log.exception("outbox event %s sent but not marked sent", item.event_id)
        else:
            self._stats.failed += 1
        return delivery

    def _start_process(self) -> None:
        """This process's own counters, queue, thread and connections (none shared by fork)."""
        self._stats = Stats()
        self._consumer = Consumer(self._queue_size, self._send)
        self._http: ServiceHttp | None = None
        if self._target is not None:
            self._http = ServiceHttp(
                "Windmill",
                self._target[0],
                headers={"Authorization": f"Bearer {self._token}"},
                error_reader=windmill_error,
                policy=self._policy,
                sleep=self._sleep or (time.sleep if self.sync else self._consumer.sleep),
            )

    def _consumer_here(self) -> Consumer:
        if self._consumer.pid != os.getpid():  # forked without the at-fork hook (uWSGI forks in C)
            self._after_fork()
        return self._consumer

    def _after_fork(self) -> None:
        # The parent keeps and delivers what it queued; the child starts empty.
        self._lock = threading.Lock()
        self._start_process()

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


# --- process-wide plumbing: at exit, after fork ---------------------------------------------

_live: "weakref.WeakSet[Emitter]" = weakref.WeakSet()


def _flush_at_exit() -> None:
    for emitter in list(_live):
        if not emitter.sync and emitter._consumer.pid == os.getpid():
            emitter.shutdown()


def _reset_in_child() -> None:
    for emitter in list(_live):
        emitter._after_fork()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
