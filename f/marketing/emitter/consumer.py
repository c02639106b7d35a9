"""The background sender: a bounded queue and one daemon thread that delivers from it."""

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("f.marketing.emitter")


@dataclass(frozen=True)
class Item:
    event_id: str
    event: Any  # a contract Event
    on_sent: Callable[[str], object] | None = None  # an outbox row's "mark it sent"


class Stopping(Exception):
    """Raised in a backoff sleep when the process is stopping: give up the delivery."""


_WAKE = object()  # put on the queue to wake an idle sender so that it sees the stop flag


class Consumer:
    """What a process owns alone: the queue and the thread (re-made after a fork)."""

    def __init__(self, queue_size: int, send: Callable[[Item], object]) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(queue_size)
        self.pid = os.getpid()
        self.stop = threading.Event()
        self._send = send
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        """A retry's wait that ends (and gives up) as soon as the process stops."""
        if self.stop.wait(seconds):
            raise Stopping

    def put(self, item: Item) -> bool:
        """Queue without blocking; False when the queue is full."""
        self._ensure_thread()
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    @property
    def pending(self) -> int:
        return self.queue.unfinished_tasks

    def flush(self, timeout: float) -> bool:
        """Wait until every queued item is done; False if `timeout` ran out first."""
        if not self.queue.unfinished_tasks:
            return True
        self._ensure_thread()
        deadline = time.monotonic() + max(0.0, timeout)
        done = self.queue.all_tasks_done
        with done:
            while self.queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                done.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> bool:
        """Flush within `timeout`, then stop the thread; what is left is logged, not kept."""
        if self.stop.is_set():
            return self.queue.unfinished_tasks == 0
        flushed = self.flush(timeout)
        self.stop.set()
        if self.queue.unfinished_tasks:
            log.warning("%d event(s) not delivered: the process is stopping", self.pending)
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(_WAKE)
            self._thread.join(0.5)
        return flushed

    def _ensure_thread(self) -> None:
        """Started on first use, and again if it ever died."""
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="windmill-emitter", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            item = self.queue.get()
            try:
                if item is not _WAKE:
                    self._send(item)
            except Stopping:
                pass
            except Exception:
                log.exception("event %s not delivered: unexpected error", item.event_id)
            finally:
                self.queue.task_done()
