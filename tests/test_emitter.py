"""The emitter: fire-and-forget delivery to the Windmill webhook, never in the caller's way.

A real HTTP receiver on 127.0.0.1 stands in for Windmill.
"""

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from f.marketing import emitter as emitter_module
from f.marketing.emitter import Emitter
from f.marketing.lib.contract import parse_event
from f.marketing.lib.delivery_job import delivery_job_id
from f.marketing.lib.service_http import RetryPolicy
from tests.receiver import Answer, Receiver, refused_url

TOKEN = "wm-token-s3cr3t"
FAST = RetryPolicy(
    max_attempts=3,
    initial_delay=0.01,
    max_delay=0.02,
    max_retry_after=5.0,
    budget=10.0,
    timeout=httpx.Timeout(1.0, connect=1.0),
)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def make_emitter():
    made: list[Emitter] = []

    def make(url: str | None, token: str | None = TOKEN, **options) -> Emitter:
        options.setdefault("policy", FAST)
        em = Emitter(url, token, **options)
        made.append(em)
        return em

    yield make
    for em in made:
        em.shutdown(0.5)


def job_of(event_id: str | None) -> str:
    """The job id the receiver's webhook (workspace test) gets for this event."""
    assert event_id is not None
    return delivery_job_id("test", "f/marketing/handle_user_event", event_id)


def register(em: Emitter, **overrides) -> str | None:
    fields = {
        "name": "Jane Doe",
        "plan": "pro",
        "source": "ads",
        "marketing_consent": True,
        "timestamp": "2026-11-26T10:00:00Z",
    }
    return em.user_registered("Jane@Acme.com", **{**fields, **overrides})


def test_an_event_is_delivered_with_the_right_url_headers_and_body(receiver, make_emitter):
    em = make_emitter(receiver.url)
    event_id = register(em)
    assert em.flush(5)

    [request] = receiver.received
    assert request.path == "/api/w/test/jobs/run/p/f/marketing/handle_user_event"
    assert request.query == {"raw": "true", "job_id": job_of(event_id)}
    assert uuid.UUID(event_id).version == 4
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {
        "event": "user.registered",
        "email": "jane@acme.com",
        "name": "Jane Doe",
        "plan": "pro",
        "source": "ads",
        "marketingConsent": True,
        "timestamp": "2026-11-26T10:00:00Z",
    }
    assert em.stats().sent == 1


def test_every_event_the_emitter_sends_is_one_the_handler_accepts(receiver, make_emitter):
    em = make_emitter(receiver.url)
    register(em, name=None)
    em.user_upgraded("a@b.io", previous_plan="free", new_plan="pro")
    em.user_churned("a@b.io", reason=None)
    assert em.flush(5)
    events = [parse_event(r.body) for r in receiver.received]
    assert [e.event for e in events] == ["user.registered", "user.upgraded", "user.churned"]
    assert events[1].timestamp.tzinfo is not None  # filled in when the event was made


def test_query_parameters_of_the_webhook_url_are_kept(receiver, make_emitter):
    em = make_emitter(receiver.url + "?tag=marketing")
    event_id = register(em)
    assert em.flush(5)
    query = {"tag": "marketing", "raw": "true", "job_id": job_of(event_id)}
    assert receiver.received[0].query == query


@pytest.mark.parametrize(("url", "token"), [(None, TOKEN), ("http://x.test/hook", None)])
def test_missing_configuration_sends_nothing_and_warns_once(
    receiver, make_emitter, caplog, monkeypatch, url, token
):
    monkeypatch.delenv("WINDMILL_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("WINDMILL_API_TOKEN", raising=False)
    em = make_emitter(url, token)
    with caplog.at_level(logging.WARNING, logger="f.marketing.emitter"):
        results = [register(em) for _ in range(3)]
    assert results == [None, None, None]
    assert caplog.text.count("is not set") == 1
    assert em.flush(1) and receiver.received == []
    assert em.stats().unconfigured == 3


@pytest.mark.parametrize("sync", [False, True])
def test_an_emitter_with_no_destination_still_refuses_an_invalid_event(
    make_emitter, caplog, monkeypatch, sync
):
    monkeypatch.delenv("WINDMILL_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("WINDMILL_API_TOKEN", raising=False)
    em = make_emitter(None, None, sync=sync)
    with caplog.at_level(logging.ERROR, logger="f.marketing.emitter"):
        assert register(em, plan="") is None
    assert "plan: must not be empty" in caplog.text
    delivery = em.deliver({"event": "user.churned", "email": "nope", "timestamp": "x"})
    assert not delivery.delivered and "email: not a valid email address" in delivery.reason
    assert em.stats().invalid == 2 and em.stats().unconfigured == 0


def test_configuration_comes_from_the_environment(receiver, monkeypatch):
    monkeypatch.setenv("WINDMILL_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("WINDMILL_API_TOKEN", TOKEN)
    em = Emitter(policy=FAST)
    try:
        register(em)
        assert em.flush(5)
    finally:
        em.shutdown(0.5)
    assert receiver.received[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_an_invalid_event_is_refused_without_a_call_or_an_exception(receiver, make_emitter, caplog):
    em = make_emitter(receiver.url)
    with caplog.at_level(logging.ERROR, logger="f.marketing.emitter"):
        assert register(em, plan="", marketing_consent="yes") is None
    assert "plan: must not be empty" in caplog.text
    assert "marketingConsent" in caplog.text and "yes" not in caplog.text
    assert em.flush(1) and receiver.received == []
    assert em.stats().invalid == 1


def test_a_500_is_retried_with_the_same_event_id(receiver, make_emitter):
    receiver.answers.extend([Answer(500, "boom"), Answer(503, "busy")])
    em = make_emitter(receiver.url)
    event_id = register(em)
    assert em.flush(5)
    assert [r.query["job_id"] for r in receiver.received] == [job_of(event_id)] * 3
    assert em.stats().sent == 1 and em.stats().failed == 0


@pytest.mark.parametrize(
    "refusal",
    [
        "Bad request: Job with id 0190e7f2-0000-7000-8000-000000000000 already exists",
        "SqlErr: error returned from database: duplicate key value violates unique constraint",
    ],
    ids=["checked", "raced"],
)
def test_a_retry_refused_as_a_duplicate_job_means_the_first_attempt_landed(
    receiver, make_emitter, caplog, refusal
):
    # The first answer is lost (client read timeout); Windmill then refuses the same job_id.
    receiver.answers.append(Answer(hold=threading.Event()))
    receiver.default = Answer(400, refusal)
    em = make_emitter(receiver.url, policy=replace(FAST, timeout=httpx.Timeout(0.3)))
    with caplog.at_level(logging.ERROR, logger="f.marketing.emitter"):
        event_id = register(em)
        assert em.flush(5)
    assert [r.query["job_id"] for r in receiver.received] == [job_of(event_id)] * 2
    assert em.stats().sent == 1 and em.stats().failed == 0
    assert "not delivered" not in caplog.text


def test_other_400s_are_failures(receiver, make_emitter):
    receiver.default = Answer(400, "Quota exceeded: too many jobs")
    em = make_emitter(receiver.url)
    register(em)
    assert em.flush(5)
    assert em.stats().failed == 1 and len(receiver.received) == 1


def test_a_database_error_behind_a_400_is_retried_and_the_event_delivered(receiver, make_emitter):
    # windmill-common error.rs: a failed query is a 400 whose text starts with its kind.
    receiver.answers.append(Answer(400, "SqlErr: error returned from database: pool timed out"))
    em = make_emitter(receiver.url)
    register(em)
    assert em.flush(5)
    assert len(receiver.received) == 2
    assert em.stats().sent == 1


def test_a_401_is_tried_once_more_then_given_up(receiver, make_emitter, caplog):
    # A token lookup whose database read failed is refused as an unknown token would be.
    receiver.answers.append(Answer(401, "Not authorized: Unauthorized"))
    em = make_emitter(receiver.url)
    register(em)
    assert em.flush(5)
    assert em.stats().sent == 1 and len(receiver.received) == 2

    receiver.default = Answer(401, "Not authorized: Unauthorized")
    with caplog.at_level(logging.ERROR, logger="f.marketing.emitter"):
        register(em)
        assert em.flush(5)
    assert em.stats().failed == 1 and len(receiver.received) == 4
    assert "HTTP 401" in caplog.text


@pytest.mark.parametrize(
    "answer",
    [Answer(200, "<html>Sign in</html>"), Answer(201, "0190e7f2-0000-7000-8000-000000000000")],
    ids=["a login page", "another job's id"],
)
def test_only_windmill_s_answer_naming_the_job_counts_as_delivered(receiver, make_emitter, answer):
    receiver.default = answer
    em = make_emitter(receiver.url)
    register(em)
    assert em.flush(5)
    assert em.stats().sent == 0 and em.stats().failed == 1


def test_a_redirect_is_not_followed(receiver, make_emitter):
    receiver.default = Answer(302, "", {"Location": "https://login.example.test/"})
    em = make_emitter(receiver.url)
    register(em)
    assert em.flush(5)
    assert em.stats().failed == 1 and len(receiver.received) == 1


def test_a_url_that_is_not_a_script_s_webhook_sends_nothing(receiver, make_emitter, caplog):
    url = receiver.url.replace("/jobs/run/p/", "/jobs/run_wait_result/p/")
    em = make_emitter(url, sync=True)
    with caplog.at_level(logging.ERROR, logger="f.marketing.emitter"):
        assert register(em) is None
    assert receiver.received == []
    assert "WINDMILL_WEBHOOK_URL is not a webhook URL" in caplog.text


def test_windmill_s_echo_of_the_token_or_email_stays_out_of_the_log(receiver, make_emitter, caplog):
    receiver.default = Answer(400, f"Bad request: JANE@ACME.COM {TOKEN.upper()} bad\nmore")
    em = make_emitter(receiver.url)
    with caplog.at_level(logging.ERROR, logger="f.marketing.emitter"):
        register(em)
        assert em.flush(5)
    assert "Bad request: *** *** bad" in caplog.text
    assert "jane@acme.com" not in caplog.text.lower() and TOKEN not in caplog.text.lower()
    assert "more" not in caplog.text


def test_the_job_id_is_derived_from_workspace_script_and_event_id():
    # The same example is pinned in tests/typescript/emitter.test.ts: both emitters agree.
    event_id = "0f8e4a52-7c1d-4b3e-9a61-2b8e51c0d7a4"
    assert delivery_job_id("acme", "f/marketing/handle_user_event", event_id) == (
        "10c2ac3c-20c3-5b3a-bee5-caff66c12fb4"
    )
    assert delivery_job_id("staging", "f/marketing/handle_user_event", event_id) != (
        delivery_job_id("acme", "f/marketing/handle_user_event", event_id)
    )


def test_a_429_waits_as_long_as_retry_after_says(receiver, make_emitter):
    receiver.answers.append(Answer(429, "slow down", {"Retry-After": "2"}))
    waits: list[float] = []
    em = make_emitter(receiver.url, sleep=waits.append)
    register(em)
    assert em.flush(5)
    assert len(receiver.received) == 2
    assert 2.0 <= waits[0] < 2.5


def test_a_permanent_error_is_logged_once_and_not_retried(receiver, make_emitter, caplog):
    receiver.default = Answer(403, "token has no access to this script")
    em = make_emitter(receiver.url)
    with caplog.at_level(logging.ERROR, logger="f.marketing.emitter"):
        event_id = register(em)
        assert em.flush(5)
    assert len(receiver.received) == 1
    assert f"event {event_id} (user.registered) not delivered" in caplog.text
    assert "HTTP 403" in caplog.text and "no access" in caplog.text
    assert em.stats().failed == 1


def test_a_slow_receiver_does_not_hold_up_the_caller(receiver, make_emitter):
    release = threading.Event()
    receiver.default = Answer(hold=release)
    em = make_emitter(receiver.url)
    first = register(em)
    assert receiver.wait_for(1)  # the first delivery is now stuck in the receiver
    second = register(em)  # and yet the caller gets an id straight away
    assert first and second and first != second
    assert em.stats().pending == 2
    release.set()
    assert em.flush(5)
    assert em.stats().sent == 2


def test_a_receiver_that_is_down_costs_the_caller_nothing_and_is_logged(make_emitter, caplog):
    em = make_emitter(refused_url())
    with caplog.at_level(logging.WARNING):
        event_id = register(em)
        assert event_id is not None
        assert em.flush(5)
    assert f"event {event_id} (user.registered) not delivered" in caplog.text
    assert "could not connect" in caplog.text
    assert em.stats().failed == 1


def test_a_full_queue_drops_counts_and_warns(receiver, make_emitter, caplog):
    release = threading.Event()
    receiver.default = Answer(hold=release)
    em = make_emitter(receiver.url, queue_size=2)
    register(em)
    assert receiver.wait_for(1)  # one in flight, the queue is empty again
    with caplog.at_level(logging.WARNING, logger="f.marketing.emitter"):
        accepted = [register(em) for _ in range(5)]
    assert [a is not None for a in accepted] == [True, True, False, False, False]
    assert em.stats().dropped == 3
    assert caplog.text.count("event dropped: the queue is full") == 1
    release.set()
    assert em.flush(5)
    assert len(receiver.received) == 3


def test_flush_returns_within_its_timeout(receiver, make_emitter):
    release = threading.Event()
    receiver.default = Answer(hold=release)
    em = make_emitter(receiver.url)
    register(em)
    started = time.monotonic()
    assert em.flush(0.2) is False
    assert time.monotonic() - started < 1.0
    release.set()
    assert em.flush(5) is True


def test_sync_mode_delivers_before_returning_and_still_retries(receiver, make_emitter):
    receiver.answers.append(Answer(502, "bad gateway"))
    em = make_emitter(receiver.url, sync=True)
    event_id = register(em)
    assert len(receiver.received) == 2  # delivered before the call returned
    assert job_of(event_id) == receiver.received[1].query["job_id"]
    delivery = em.deliver(
        {
            "event": "user.churned",
            "email": "a@b.io",
            "reason": None,
            "timestamp": "2026-11-26T10:00:00Z",
        }
    )
    assert delivery.delivered and delivery.job_id == job_of(delivery.event_id)
    assert not delivery.already_queued


def test_sync_mode_failure_returns_none_and_never_raises(make_emitter):
    em = make_emitter(refused_url(), sync=True)
    assert register(em) is None
    assert em.stats().failed == 1


def test_no_secret_in_any_log_line(receiver, make_emitter, caplog):
    receiver.answers.append(Answer(500, "oops"))
    receiver.default = Answer(401, f"invalid token {TOKEN}")
    em = make_emitter(receiver.url + "?token=query-s3cr3t")
    with caplog.at_level(logging.DEBUG):
        register(em)
        assert em.flush(5)
        em.user_churned("a@b.io", reason="x")
        assert em.flush(5)
    assert caplog.text, "failures were logged"
    for secret in (TOKEN, "query-s3cr3t", "jane@acme.com"):
        assert secret not in caplog.text


def test_the_module_functions_use_one_lazily_built_emitter(receiver, monkeypatch):
    monkeypatch.setenv("WINDMILL_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("WINDMILL_API_TOKEN", TOKEN)
    monkeypatch.setattr(emitter_module, "_default", None)
    try:
        assert emitter_module.user_churned("a@b.io", reason="price") is not None
        assert emitter_module.flush(5)
        assert emitter_module.stats().sent == 1
        em = emitter_module.configure(sync=True, policy=FAST)
        assert em.sync and emitter_module.user_upgraded("a@b.io", previous_plan="a", new_plan="b")
    finally:
        emitter_module.configure(webhook_url="", token="")
    assert len(receiver.received) == 2


# --- process lifecycle: at exit and after fork, in a child interpreter ----------------------


def run_python(code: str, receiver: Receiver) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WINDMILL_WEBHOOK_URL": receiver.url,
        "WINDMILL_API_TOKEN": TOKEN,
        "PYTHONPATH": os.getcwd(),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_pending_events_are_flushed_at_exit(receiver):
    release = threading.Event()
    receiver.answers.append(Answer(hold=release))
    threading.Timer(0.3, release.set).start()  # the receiver is slow, but not too slow
    done = run_python(
        """
        from f.marketing.emitter import user_churned
        for n in range(3):
            user_churned(f"user{n}@acme.com", reason="price")
        # no flush: the interpreter exits at once
        """,
        receiver,
    )
    assert done.returncode == 0, done.stderr
    assert receiver.wait_for(3)
    assert sorted(r.body["email"] for r in receiver.received) == [
        "user0@acme.com",
        "user1@acme.com",
        "user2@acme.com",
    ]


def test_the_wait_at_exit_is_bounded(receiver):
    receiver.default = Answer(hold=threading.Event())  # never answers
    started = time.monotonic()
    done = run_python(
        """
        from f.marketing import emitter
        emitter.configure(exit_timeout=0.5)
        emitter.user_churned("a@acme.com", reason=None)
        """,
        receiver,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    assert "1 event(s) not delivered: the process is stopping" in done.stderr


def test_the_sender_keeps_working_in_a_child_after_fork(receiver):
    done = run_python(
        """
        import os
        from f.marketing import emitter
        emitter.user_churned("parent@acme.com", reason=None)  # starts the parent's sender
        assert emitter.flush(5)
        pid = os.fork()
        if pid == 0:
            emitter.user_churned("child@acme.com", reason=None)
            ok = emitter.flush(5)
            os._exit(0 if ok and emitter.stats().sent == 1 else 3)
        _, status = os.waitpid(pid, 0)
        emitter.user_churned("parent-again@acme.com", reason=None)
        assert emitter.flush(5)
        raise SystemExit(os.waitstatus_to_exitcode(status))
        """,
        receiver,
    )
    assert done.returncode == 0, done.stderr
    emails = sorted(r.body["email"] for r in receiver.received)
    assert emails == ["child@acme.com", "parent-again@acme.com", "parent@acme.com"]
    assert len({r.query["job_id"] for r in receiver.received}) == 3


def test_the_saas_side_needs_neither_wmill_nor_the_windmill_scripts(receiver):
    done = run_python(
        """
        import sys
        sys.modules["wmill"] = None  # any `import wmill` now fails
        from f.marketing import emitter
        emitter.configure(sync=True)
        assert emitter.user_churned("a@acme.com", reason=None)
        windmill_side = {"f.marketing.handle_user_event", "f.marketing.lib.workflow", "wmill"}
        assert not windmill_side & {m for m, v in sys.modules.items() if v}, sys.modules.keys()
        """,
        receiver,
    )
    assert done.returncode == 0, done.stderr
    assert [r.body["email"] for r in receiver.received] == ["a@acme.com"]


def test_the_json_schema_for_other_languages_is_current():
    from f.marketing.lib.contract import json_schema

    with open("f/marketing/user_events.schema.json") as committed:
        assert json.load(committed) == json_schema(), (
            "regenerate it: .venv/bin/python scripts/export_schemas.py"
        )


def test_importing_the_emitter_builds_the_contract_models_before_any_thread_emits():
    """The handler's models build on first use; a SaaS emits from many threads, and pydantic
    2.11.0-2.11.4 let a thread validate with a half-built model (pydantic#11849). In a fresh
    process, importing the emitter leaves no model to build."""
    code = textwrap.dedent("""
        from f.marketing.lib.contract import MODELS
        assert not any(m.__pydantic_complete__ for m in MODELS.values())  # deferred
        import f.marketing.emitter
        print(sorted(type(m.__pydantic_validator__).__name__ for m in MODELS.values()))
    """)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(["SchemaValidator"] * 3)
