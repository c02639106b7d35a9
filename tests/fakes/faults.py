"""Shared plumbing for the service fakes: request log, injected faults, route dispatch.

Each fake answers every request under its base URL from a single respx route. That way it
sees (and logs) every call, an injected fault is applied before any state can change, and a
path the fake does not implement gets the service's own 404 instead of respx's silent 200.
"""

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import httpx
import respx

Body = str | dict | list | None


@dataclass
class Fault:
    """One queued failure: a canned response (`status`) or a raised exception (`exc`)."""

    status: int | None = None
    exc: type[Exception] | None = None
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = None
    method: str | None = None
    path_contains: str | None = None
    applied: bool = False  # the service did the work, then the answer was lost or an error

    def matches(self, request: httpx.Request) -> bool:
        if self.method and request.method.upper() != self.method.upper():
            return False
        return not (self.path_contains and self.path_contains not in request.url.path)


class FaultQueue:
    """Failures in the order they were queued; each request takes the first one it matches."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if (fault.status is None) == (fault.exc is None):
            raise ValueError("a fault needs exactly one of status or exc")
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        self.pending.append(fault)

    def take(self, request: httpx.Request) -> Fault | None:
        for fault in self.pending:
            if fault.matches(request):
                fault.times -= 1
                if fault.times == 0:
                    self.pending.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.pending.clear()


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=data, headers=headers)


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, text=text, headers={"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
    )


class BadBody(ValueError):
    """The request body could not be read as JSON or as a form."""


def read_body(request: httpx.Request) -> Any:
    """The body as the services read it: JSON, or a form (`a[]=x` collects a list).

    An empty body is `{}`. Raises BadBody when it is neither JSON nor a form.
    """
    raw = request.content
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        return parse_form(raw.decode("utf-8", "replace"))
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadBody(str(exc)) from exc


def parse_form(text: str) -> dict[str, Any]:
    form: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key.endswith("[]"):
            form.setdefault(key[:-2], []).append(value)
        else:
            form[key] = value
    return form


class Reject(Exception):
    """Raised by a route handler to answer with the service's error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# (methods separated by "|", path regex relative to the base URL, handler method name)
RouteSpec = tuple[str, str, str]


class FakeService:
    """Base of every fake: the request log, the fault queue and a small route table.

    Subclasses set `routes`, and may override `check_access` (auth, rate limits),
    `not_found` and `error_body` (their own error envelopes) and `DEFAULT_HEADERS` (copied
    to each instance's `default_headers`, which one instance may change).
    A handler answers an error by raising `Reject(status, message)`.
    """

    routes: tuple[RouteSpec, ...] = ()
    DEFAULT_HEADERS: ClassVar[dict[str, str]] = {}

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.default_headers = dict(self.DEFAULT_HEADERS)
        self.requests: list[httpx.Request] = []
        self.faults = FaultQueue()
        # One request at a time, as a database transaction would make each one atomic.
        self._lock = threading.RLock()
        self._base_path = httpx.URL(self.base_url).path.rstrip("/")
        self._routes: list[tuple[set[str], re.Pattern[str], Callable[..., httpx.Response]]] = [
            (set(methods.split("|")), re.compile(pattern), getattr(self, handler))
            for methods, pattern, handler in self.routes
        ]

    # --- public API -----------------------------------------------------------------------

    def mount(self, router: respx.MockRouter) -> None:
        """Answer every request under `base_url` on the given respx router."""
        url = httpx.URL(self.base_url)
        lookups: dict[str, Any] = {"scheme": url.scheme, "host": url.host}
        if url.port:
            lookups["port"] = url.port
        if self._base_path:
            lookups["path__startswith"] = self._base_path
        router.route(**lookups).mock(side_effect=self._serve)

    def fault(
        self,
        status: int | None = None,
        *,
        exc: type[Exception] | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Body = None,
        method: str | None = None,
        path_contains: str | None = None,
        applied: bool = False,
    ) -> None:
        """Fail the next `times` matching requests with `status` (+ headers, body) or `exc`.

        The default body is the service's own error envelope for `status`; a dict body is
        sent as JSON, a str as plain text. A faulted request changes no state, unless
        `applied`: then the service acts on it first and only the answer is lost (a read
        timeout after the write, a 500 after the commit).
        """
        self.faults.add(
            Fault(status, exc, times, dict(headers or {}), body, method, path_contains, applied)
        )

    def calls(
        self, method: str | None = None, path_contains: str | None = None
    ) -> list[httpx.Request]:
        """The requests received, filtered like `fault` filters them."""
        probe = Fault(status=0, method=method, path_contains=path_contains)
        return [request for request in self.requests if probe.matches(request)]

    # --- hooks for subclasses -------------------------------------------------------------

    def check_access(self, request: httpx.Request) -> httpx.Response | None:
        """Auth and rate limiting; a response here answers the request. None lets it through."""
        return None

    def error_body(self, status: int, message: str | None = None) -> Body:
        """The service's error envelope; `message` defaults to a generic one for `status`."""
        return message or httpx.codes.get_reason_phrase(status)

    def not_found(self, request: httpx.Request) -> httpx.Response:
        return self.error(404)

    def error(self, status: int, body: Body = None, headers: dict | None = None) -> httpx.Response:
        """An error response; without `body`, the service's own envelope for `status`."""
        body = self.error_body(status) if body is None else body
        if isinstance(body, str):
            return text_response(status, body, headers)
        return json_response(status, body, headers)

    # --- dispatch -------------------------------------------------------------------------

    def relative_path(self, request: httpx.Request) -> str | None:
        """The request path below the base URL, or None when it is not below it."""
        path = request.url.path
        if not path.startswith(self._base_path):
            return None
        rest = path[len(self._base_path) :]
        if rest and not rest.startswith("/"):
            return None
        return rest or "/"

    def handle(self, request: httpx.Request) -> httpx.Response:
        denied = self.check_access(request)
        if denied is not None:
            return denied
        path = self.relative_path(request)
        if path is not None:
            for methods, pattern, handler in self._routes:
                match = pattern.fullmatch(path)
                if match and request.method in methods:
                    try:
                        return handler(request, **match.groupdict())
                    except Reject as rejected:
                        return self.error(
                            rejected.status, self.error_body(rejected.status, rejected.message)
                        )
        return self.not_found(request)

    def _serve(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            return self._serve_one(request)

    def _serve_one(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        fault = self.faults.take(request)
        if fault is not None and fault.applied:
            self.handle(request)
        response = self._inject(fault, request) if fault else self.handle(request)
        for name, value in self.default_headers.items():
            response.headers.setdefault(name, value)
        return response

    def _inject(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.exc is not None:
            try:
                error = fault.exc("simulated", request=request)  # type: ignore[call-arg]
            except TypeError:
                error = fault.exc("simulated")
            raise error
        assert fault.status is not None
        return self.error(fault.status, fault.body, fault.headers)
