"""The retry policy every service call shares: what is retried, how long it waits, what it says."""

from contextlib import nullcontext

import httpx
import pytest
import respx

from f.marketing.lib.errors import ServiceError
from f.marketing.lib.service_http import RetryPolicy, ServiceHttp, backoff_delay, parse_retry_after

BASE = "https://svc.test"


class Clock:
    """A fake clock that advances only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_http(clock: Clock, policy: RetryPolicy | None = None, jitter: float = 1.0) -> ServiceHttp:
    return ServiceHttp(
        "Svc",
        BASE,
        policy=policy or RetryPolicy(),
        sleep=clock.sleep,
        jitter=lambda: jitter,
        clock=lambda: clock.now,
    )


def test_backoff_doubles_from_half_a_second_up_to_the_cap():
    policy = RetryPolicy(max_delay=4.0)
    assert [backoff_delay(n, policy, lambda: 1.0) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    # The jitter takes at most half the wait away, so retries never come back all at once.
    assert [backoff_delay(n, policy, lambda: 0.0) for n in range(1, 4)] == [0.25, 0.5, 1]


def test_retry_after_is_read_as_seconds_or_as_a_date():
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Thu, 26 Nov 2026 10:00:30 GMT", now=1795687200.0) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@respx.mock
def test_transient_statuses_are_retried_then_succeed():
    clock = Clock()
    route = respx.post(f"{BASE}/x").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200, json={})]
    )
    response = make_http(clock).request("POST", "/x", action="do x")
    assert response.status_code == 200
    assert route.call_count == 3
    assert clock.sleeps == [0.5, 1.0]


@respx.mock
@pytest.mark.parametrize("status", [408, 429, 500, 504])
def test_every_transient_status_is_retried(status):
    clock = Clock()
    route = respx.get(f"{BASE}/x").mock(side_effect=[httpx.Response(status), httpx.Response(200)])
    make_http(clock).request("GET", "/x", action="do x")
    assert route.call_count == 2


@respx.mock
def test_retry_after_is_honoured_with_a_little_jitter():
    clock = Clock()
    respx.post(f"{BASE}/x").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200)]
    )
    make_http(clock, jitter=0.0).request("POST", "/x", action="do x")
    assert clock.sleeps == [3.0]


@respx.mock
def test_a_retry_after_longer_than_the_job_waits_fails_at_once():
    clock = Clock()
    route = respx.post(f"{BASE}/x").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"}, text="slow down")
    )
    with pytest.raises(ServiceError, match="asked to retry after 3600s") as caught:
        make_http(clock).request("POST", "/x", action="do x")
    assert route.call_count == 1 and clock.sleeps == []
    assert caught.value.status == 429


@respx.mock
def test_a_permanent_error_fails_at_once_with_the_services_own_message():
    clock = Clock()
    route = respx.post(f"{BASE}/x").mock(return_value=httpx.Response(422, text="plan is invalid"))
    with pytest.raises(ServiceError) as caught:
        make_http(clock).request("POST", "/x", action="do x")
    assert route.call_count == 1
    assert str(caught.value) == "Svc do x failed (HTTP 422): plan is invalid"
    assert not caught.value.transient


@respx.mock
def test_attempts_are_bounded_and_the_last_failure_is_reported():
    clock = Clock()
    route = respx.get(f"{BASE}/x").mock(return_value=httpx.Response(503, text="maintenance"))
    with pytest.raises(ServiceError, match=r"HTTP 503 after 4 attempts\): maintenance"):
        make_http(clock).request("GET", "/x", action="do x")
    assert route.call_count == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


@respx.mock
def test_total_time_is_bounded_by_the_budget():
    clock = Clock()
    respx.get(f"{BASE}/x").mock(return_value=httpx.Response(429, headers={"Retry-After": "20"}))
    with pytest.raises(ServiceError):
        make_http(clock, RetryPolicy(budget=30.0)).request("GET", "/x", action="do x")
    assert sum(clock.sleeps) <= 30.0


@respx.mock
def test_connection_errors_are_retried():
    clock = Clock()
    route = respx.get(f"{BASE}/x").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ConnectTimeout("slow"),
            httpx.Response(200),
        ]
    )
    make_http(clock).request("GET", "/x", action="do x")
    assert route.call_count == 3


@respx.mock
def test_a_request_that_may_have_landed_is_not_replayed_unless_safe():
    clock = Clock()
    route = respx.post(f"{BASE}/x").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ServiceError, match="timed out waiting for the response") as caught:
        make_http(clock).request("POST", "/x", action="do x", replay_safe=False)
    assert route.call_count == 1
    assert caught.value.maybe_applied


@respx.mock
def test_read_timeouts_of_safe_requests_are_retried():
    clock = Clock()
    route = respx.post(f"{BASE}/x").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200)]
    )
    make_http(clock).request("POST", "/x", action="do x")
    assert route.call_count == 2


def test_every_call_has_a_timeout():
    http = ServiceHttp("Svc", BASE)
    timeout = http._client.timeout
    assert timeout.connect == 5.0 and timeout.read == 10.0


@respx.mock
def test_messages_and_logs_never_carry_the_url(caplog):
    secret_base = "https://hooks.example.test/services/T1/B2/SECRET"
    http = ServiceHttp("Svc", secret_base, sleep=lambda s: None, jitter=lambda: 0.0)
    respx.post(f"{secret_base}/x").mock(
        side_effect=[httpx.ConnectError(f"cannot reach {secret_base}")] * 3
        + [httpx.Response(500, text="boom")]
    )
    with caplog.at_level("DEBUG"), pytest.raises(ServiceError) as caught:
        http.request("POST", "/x", action="post")
    assert "SECRET" not in str(caught.value)
    assert "SECRET" not in caplog.text


@respx.mock
@pytest.mark.parametrize(("status", "calls"), [(500, 1), (502, 1), (503, 2)])
def test_a_5xx_that_may_have_been_acted_on_is_not_replayed_unless_safe(status, calls):
    clock = Clock()
    route = respx.post(f"{BASE}/x").mock(side_effect=[httpx.Response(status), httpx.Response(200)])
    try:
        make_http(clock).request("POST", "/x", action="do x", replay_safe=False)
    except ServiceError as exc:
        assert exc.maybe_applied
    assert route.call_count == calls


@pytest.mark.parametrize("fails", [False, True])
def test_a_client_closes_its_connection_when_its_block_ends(fails):
    from f.marketing.lib.service_settings import TwentySettings
    from f.marketing.lib.twenty_client import TwentyClient

    settings = TwentySettings(base_url=BASE, api_key="k")
    with pytest.raises(RuntimeError) if fails else nullcontext():  # noqa: SIM117
        with TwentyClient.from_settings(settings) as twenty:
            assert not twenty.http._client.is_closed
            if fails:
                raise RuntimeError("a step failed")
    assert twenty.http._client.is_closed
