"""One HTTP call to a service, with timeouts and a bounded retry policy.

Transient failures (connection errors, timeouts, 408, 429, 5xx) are retried with exponential
backoff and jitter, honouring Retry-After; any other 4xx fails at once with the service's own
message. Nothing here ever puts a URL or a header into a message: a Slack webhook URL is a secret.
"""

import email.utils
import functools
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

import certifi
import httpx

from f.marketing.lib.errors import ServiceError

# httpx logs every request with its full URL at INFO; a Slack webhook URL is a credential.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries. The defaults keep a job well under a minute per service."""

    max_attempts: int = 4
    initial_delay: float = 0.5
    max_delay: float = 8.0
    # A longer Retry-After than this fails the call instead of parking the job.
    max_retry_after: float = 30.0
    # Total time one call may spend, waits included.
    budget: float = 45.0
    # False: a 429 ends the call at once (with its Retry-After), for a caller that would
    # rather queue a later attempt than hold its worker while the limit refills.
    wait_on_rate_limit: bool = True
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(10.0, connect=5.0))


DEFAULT_POLICY = RetryPolicy()


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(
    attempt: int, policy: RetryPolicy, jitter: Callable[[], float] = random.random
) -> float:
    """Wait before retry number `attempt` (1-based): exponential, capped, "equal jitter"."""
    ceiling = min(policy.max_delay, policy.initial_delay * 2 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter()


ErrorReader = Callable[[httpx.Response], str]
T = TypeVar("T")


def _as_is(response: httpx.Response) -> Any:
    return response


def plain_error(response: httpx.Response) -> str:
    return response.text.strip()[:300] or response.reason_phrase


class ServiceHttp:
    """Sends requests to one service and turns failures into ServiceError."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        error_reader: ErrorReader = plain_error,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] | None = None,
        jitter: Callable[[], float] | None = None,
        clock: Callable[[], float] | None = None,
        before_each: Callable[[httpx.Request], None] | None = None,
    ) -> None:
        """`before_each` runs before every request sent, retries included (a Pacer)."""
        self.service = service
        self.policy = policy
        self._error_reader = error_reader
        # Looked up at construction, not definition, so tests can stand in for time itself.
        self._sleep = sleep or time.sleep
        self._jitter = jitter or random.random
        self._clock = clock or time.monotonic
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            auth=auth,
            timeout=policy.timeout,
            verify=tls_context(),
            event_hooks={"request": [before_each]} if before_each else None,
        )
        self.calls = 0

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        ok_statuses: tuple[int, ...] = (),
        replay_safe: bool = True,
        read: Callable[[httpx.Response], T] = _as_is,
        also_transient: Callable[[httpx.Response, int], bool] | None = None,
        **kwargs: Any,
    ) -> T:
        """Send, retrying transient failures; return `read` of the first 2xx (or `ok_statuses`).

        `action` names the step in messages, in place of the URL. With `replay_safe=False` a
        request that may have been acted on (read timeout, broken connection, a 5xx other than
        503) is not sent again: the caller decides, since repeating it could act twice.
        A success whose body `read` cannot make sense of (KeyError, TypeError, ValueError) is
        such a request too: the service acted, but its answer was not the one expected.
        `also_transient(response, attempt)` marks more refusals as worth another try, for a
        service whose transient failures wear another status (Windmill's database errors).
        """
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                self.calls += 1
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                failure = ServiceError(
                    self.service,
                    action,
                    _describe_transport_error(exc),
                    transient=True,
                    maybe_applied=sent,
                    attempts=attempt,
                )
            else:
                if response.is_success or response.status_code in ok_statuses:
                    try:
                        return read(response)
                    except (KeyError, TypeError, ValueError, AttributeError):
                        failure = self._unreadable(response, action, attempt)
                else:
                    failure = self._refused(response, action, attempt)
                    if also_transient is not None and also_transient(response, attempt):
                        failure.transient = True
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    if failure.status == 429 and not self.policy.wait_on_rate_limit:
                        failure.retry_after = retry_after
                        raise failure from None
            if not failure.transient or (failure.maybe_applied and not replay_safe):
                raise failure from None
            delay = self._next_delay(attempt, retry_after, failure)
            elapsed = self._clock() - started
            if delay is None or elapsed + delay > self.policy.budget:
                failure.retry_after = retry_after
                raise failure from None
            log.warning(
                "%s %s: %s; retry %d in %.1fs",
                self.service,
                action,
                failure.detail if failure.status is None else f"HTTP {failure.status}",
                attempt,
                delay,
            )
            self._sleep(delay)

    @contextmanager
    def stream(
        self, method: str, path: str, *, action: str, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """A response read as it arrives (a large download), tried once: a failure while
        reading cannot be resumed by a retry from here. Errors are ServiceErrors."""
        try:
            with self._client.stream(method, path, **kwargs) as response:
                if not response.is_success:
                    response.read()
                    raise self._refused(response, action, 1)
                yield response
        except httpx.TransportError as exc:
            message = _describe_transport_error(exc)
            raise ServiceError(self.service, action, message, transient=True) from None

    def _refused(self, response: httpx.Response, action: str, attempt: int) -> ServiceError:
        return ServiceError(
            self.service,
            action,
            self._error_reader(response),
            status=response.status_code,
            transient=is_retryable(response.status_code),
            # 503 says "not processed"; other 5xx may come after the work was done.
            maybe_applied=response.status_code >= 500 and response.status_code != 503,
            attempts=attempt,
        )

    def _unreadable(self, response: httpx.Response, action: str, attempt: int) -> ServiceError:
        # The service acted (2xx) but said something else than expected: retry where a repeat
        # is harmless, else report it, since what was done cannot be read from the reply.
        return ServiceError(
            self.service,
            action,
            f"unreadable reply from {self.service} (not the answer expected)",
            status=response.status_code,
            transient=True,
            maybe_applied=True,
            attempts=attempt,
        )

    def _next_delay(
        self, attempt: int, retry_after: float | None, failure: ServiceError
    ) -> float | None:
        if attempt >= self.policy.max_attempts:
            return None
        if retry_after is None:
            return backoff_delay(attempt, self.policy, self._jitter)
        if retry_after > self.policy.max_retry_after:
            raise ServiceError(
                self.service,
                failure.action,
                f"{failure.detail} (asked to retry after {retry_after:.0f}s, longer than the "
                f"{self.policy.max_retry_after:.0f}s this job waits)",
                status=failure.status,
                transient=True,
                attempts=attempt,
                retry_after=retry_after,
            )
        # A little jitter so that parallel jobs do not all come back at the same instant.
        return retry_after + 0.25 * self._jitter()


class ServiceClient:
    """A thin client of one service: it owns its connection and closes it, so a caller writes
    `with TwentyClient.from_settings(...) as twenty:` and never reaches into `http`."""

    SERVICE: ClassVar[str]  # the name messages give the service

    @staticmethod
    def read_error(response: httpx.Response) -> str:
        """The service's own words for a refusal (each client reads its envelope)."""
        return plain_error(response)

    def __init__(self, http: ServiceHttp) -> None:
        self.http = http

    @classmethod
    def _connect(
        cls, base_url: str, policy: RetryPolicy, options: dict[str, Any], *, token: str = ""
    ) -> ServiceHttp:
        """The connection: a Bearer `token`, or what `options` say (auth, a test's clock)."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return ServiceHttp(
            cls.SERVICE, base_url, headers=headers, error_reader=cls.read_error, policy=policy,
            **options,
        )  # fmt: skip

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs tens of milliseconds, and
    a job talks to four services (Twenty, Mautic, Slack, Windmill)."""
    return ssl.create_default_context(cafile=certifi.where())


def _describe_transport_error(exc: httpx.TransportError) -> str:
    # httpx messages name the host at most; keep only the class of problem.
    kinds = {
        httpx.ConnectTimeout: "connection timed out",
        httpx.ConnectError: "could not connect",
        httpx.ReadTimeout: "timed out waiting for the response",
        httpx.WriteTimeout: "timed out sending the request",
        httpx.PoolTimeout: "timed out waiting for a connection",
        httpx.RemoteProtocolError: "connection closed by the server",
    }
    for kind, text in kinds.items():
        if isinstance(exc, kind):
            return text
    return f"network error ({type(exc).__name__})"


def json_body(response: httpx.Response) -> Any:
    """The parsed JSON of a response, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
