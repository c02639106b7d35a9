"""Send lifecycle events to the Windmill webhook without ever slowing or breaking the caller.

    from f.marketing.emitter import user_registered

    user_registered("jane@acme.com", name="Jane Doe", plan="pro", source="ads",
                    marketing_consent=True)

Each call validates the event against the same contract as the handler, gives it an id, puts it
on a bounded queue and returns at once (microseconds). A daemon thread delivers it to
WINDMILL_WEBHOOK_URL with WINDMILL_API_TOKEN as a Bearer token, retrying transient failures
with backoff that honours Retry-After. Every attempt sends one Windmill `job_id` derived from
the id, so a retried delivery is the same job, never a second one. Nothing here raises into
the caller: a bad event, a missing configuration, a full queue or a failed delivery is logged
and counted (`stats()`).

Short-lived callers (command-line tools, serverless functions) call `configure(sync=True)`:
each call then delivers before it returns, still with retries. Pending events are flushed at
interpreter exit (bounded wait), and the sender restarts in a child after `os.fork()`.

The package runs in the SaaS, not in Windmill: it needs httpx and pydantic, never wmill.
"""

import inspect
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from f.marketing.emitter.client import Emitter, Stats
from f.marketing.lib.webhook_delivery import Delivery

__all__ = [
    "Delivery",
    "Emitter",
    "Stats",
    "configure",
    "flush",
    "send_outboxed",
    "stats",
    "user_churned",
    "user_registered",
    "user_upgraded",
]

P = ParamSpec("P")

_default: Emitter | None = None
_default_lock = threading.Lock()


def _emitter() -> Emitter:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Emitter()
    return _default


def _on_default(
    method: Callable[Concatenate[Emitter, P], str | None],
) -> Callable[P, str | None]:
    """An Emitter method as a module function that sends through the default emitter."""

    def function(*args: P.args, **kwargs: P.kwargs) -> str | None:
        return method(_emitter(), *args, **kwargs)

    function.__name__ = function.__qualname__ = method.__name__
    function.__doc__ = method.__doc__
    signature = inspect.signature(method)
    function.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    return function


user_registered = _on_default(Emitter.user_registered)
user_upgraded = _on_default(Emitter.user_upgraded)
user_churned = _on_default(Emitter.user_churned)


def configure(**options: Any) -> Emitter:
    """Replace the default emitter, e.g. `configure(sync=True)` in a short-lived process."""
    global _default
    with _default_lock:
        old, _default = _default, Emitter(**options)
    if old is not None and not old.sync:
        old.shutdown()
    return _default


def send_outboxed(
    event_id: str, body: dict[str, Any], on_sent: Callable[[str], object] | None = None
) -> bool:
    """Send an outbox row's event through the default emitter (see Emitter.send_outboxed)."""
    return _emitter().send_outboxed(event_id, body, on_sent)


def flush(timeout: float = 5.0) -> bool:
    """Wait until every queued event is delivered or given up; False if `timeout` ran out."""
    return _emitter().flush(timeout)


def stats() -> Stats:
    """The default emitter's counters."""
    return _emitter().stats()
