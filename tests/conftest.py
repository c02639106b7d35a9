"""Shared set-up: stateful stand-ins of Twenty, Mautic and Slack, and a mocked Windmill API."""

import inspect
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import respx

from f.marketing.lib.slack_ledger import LEDGER_PREFIX
from f.marketing.lib.windmill_api import job_workspace, running_job
from tests.fakes import FakeMautic, FakeSlackApi, FakeSlackWebhook, FakeTwenty, FakeWindmill

ROUTING = {
    "segments": {
        "active": [1],
        "churned": [5],
        "plans": {"free": [2], "pro": [3], "business": [4]},
    },
    "campaigns": {"onboarding": 10, "upgrade": 11, "winback": 12},
    "slack_rules": [
        {"name": "paid signup", "events": ["user.registered"], "plans": ["pro", "business"]},
        {"name": "partner signup", "events": ["user.registered"], "sources": ["partner"]},
        {"name": "upgrade", "events": ["user.upgraded"]},
        {"name": "churn", "events": ["user.churned"]},
    ],
}


@dataclass
class Services:
    twenty: FakeTwenty
    mautic: FakeMautic
    slack: FakeSlackWebhook
    slack_api: FakeSlackApi
    router: respx.MockRouter
    clock: "Clock"
    windmill: FakeWindmill | None = None

    @property
    def sleeps(self) -> list[float]:
        """What jobs waited inside a worker (retry backoffs), in seconds."""
        return self.clock.sleeps

    def calls(self) -> list[str]:
        """Every request Twenty, Mautic and Slack received, as 'METHOD path', in order."""
        return [
            f"{call.request.method} {call.request.url.path}"
            for call in self.router.calls
            if call.request.url.host != "windmill.test"
        ]

    def resources(self) -> dict[str, dict]:
        """The Windmill resources that point the handler at these stand-ins."""
        return {
            "f/marketing/twenty": {
                "base_url": self.twenty.base_url,
                "api_key": self.twenty.api_key,
            },
            "f/marketing/mautic": {
                "base_url": self.mautic.base_url,
                "username": self.mautic.username,
                "password": self.mautic.password,
            },
            "f/marketing/slack": {"webhook_url": self.slack.url},
        }

    @property
    def total_calls(self) -> int:
        """Calls to Twenty, Mautic and Slack (the Windmill API is the job's own platform)."""
        return len(self.calls())


class Clock:
    """Time for the stand-ins: it moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        """Time passing between jobs, with no worker waiting."""
        self.now += seconds


@pytest.fixture
def services(monkeypatch) -> Iterator[Services]:
    """The three services, remembering what they were sent; waits between retries are not
    spent but recorded, and move the stand-ins' clock."""
    clock = Clock()
    monkeypatch.setattr("f.marketing.lib.service_http.time.sleep", clock.sleep)
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        fakes = Services(
            FakeTwenty(monotonic=clock),
            FakeMautic(),
            FakeSlackWebhook(),
            FakeSlackApi(),
            router,
            clock,
        )
        fakes.twenty.mount(router)
        fakes.mautic.mount(router)
        fakes.slack.mount(router)
        fakes.slack_api.mount(router)
        yield fakes


@dataclass
class Windmill:
    """The job's workspace: the stand-in API a job reaches through its environment."""

    api: FakeWindmill
    resources: dict

    def write(self) -> None:
        """Store `resources` (edited by a test) in the workspace."""
        for path, value in self.resources.items():
            self.api.put(path, value)
        for path in set(self.api.resources) - set(self.resources):
            if not path.startswith(LEDGER_PREFIX):
                del self.api.resources[path]

    def ledger(self) -> dict[str, dict]:
        """The Slack ledger's entries, by event fingerprint."""
        return {
            path.removeprefix(LEDGER_PREFIX): entry["value"]
            for path, entry in self.api.resources.items()
            if path.startswith(LEDGER_PREFIX)
        }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With MARKETING_NO_SKIPS set (.ci/run sets it), a skipped test fails the run: in CI a
    missing Node.js, TypeScript tool or PostgreSQL server must not pass as green."""
    if not os.environ.get("MARKETING_NO_SKIPS") or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reasons = sorted({str(report.longrepr[-1]) for report in skipped if report.longrepr})
        print(f"\n{len(skipped)} test(s) skipped, and MARKETING_NO_SKIPS is set: {reasons}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# The Windmill stand-in of the running test, for calls made the way a webhook makes them.
ACTIVE: list[FakeWindmill] = []


@pytest.fixture
def windmill(monkeypatch, services) -> Windmill:
    api = FakeWindmill()
    monkeypatch.setattr(sys.modules[__name__], "ACTIVE", [api])
    api.mount(services.router)
    monkeypatch.setenv("WM_WORKSPACE", api.workspace)
    monkeypatch.setenv("WM_TOKEN", api.token)
    monkeypatch.setenv("BASE_INTERNAL_URL", api.base_url)
    monkeypatch.delenv("WM_BASE_URL", raising=False)
    monkeypatch.delenv("WM_MOCKED_API_FILE", raising=False)
    wm = Windmill(
        api, {**services.resources(), "f/marketing/routing": json.loads(json.dumps(ROUTING))}
    )
    wm.write()
    services.windmill = api
    return wm


def run_event(dry_run: bool = False, **body) -> dict:
    """handle_user_event run by hand: the event as JSON text, the only way it takes one."""
    from f.marketing.handle_user_event import main

    return main(payload=json.dumps(body), dry_run=dry_run)


RAW = object()  # the exact JSON of the body, as a URL with ?raw=true passes it


def run_as_webhook(main, body, *, raw=RAW, headers: dict | None = None):
    """Call `main` the way a Windmill webhook does (windmill.md, "fake runner"). A delivery
    that failed records its failure in a job of its own (lib/delivery_failures.py): that job
    is then run as a worker would, and raises DeliveryFailed with the delivery's message."""
    module = inspect.getmodule(main)
    assert module is not None
    event = trigger_event(body, raw=raw, headers=headers)
    job_id = str(uuid.uuid4())
    if ACTIVE and hasattr(module, "preprocessor"):  # stored as Windmill stores a delivery
        ACTIVE[0].jobs[job_id] = {
            "id": job_id, "script_path": module.__name__.replace(".", "/"),
            "args": {"event": event}, "state": "running", "skip_preprocessor": False,
            "parent_job": None, "created_at": ACTIVE[0].clock().isoformat(),
            "scheduled_in_secs": 0,
        }  # fmt: skip
    with running_job(job_id):
        result = main(**webhook_args(main, body, raw=raw, headers=headers))
    if isinstance(result, dict) and result.get("failure_job"):
        workspace = job_workspace()
        try:
            recorded = workspace.read_job(result["failure_job"])
        finally:
            workspace.close()
        assert recorded["skip_preprocessor"] and "failed" in recorded["args"]
        main(**main_args(main, recorded["args"]))
    return result


def trigger_event(body, *, raw=RAW, headers: dict | None = None, query=None) -> dict:
    """What a webhook hands a preprocessor (WebhookPreprocessorEvent): the parsed body, the
    exact body as `raw_string` only with `?raw=true` (`raw=None`: a URL without it), every
    header by its lowercase name and every query parameter."""
    raw_string = json.dumps(body) if raw is RAW else raw
    query = dict(query or {}) | ({"raw": "true"} if raw_string is not None else {})
    return {
        "kind": "webhook",
        "body": body,
        "raw_string": raw_string,
        "query": query,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
    }


def main_args(main, given: dict) -> dict:
    """What Windmill passes `main`: its parameters only, None for a missing one, and the
    Python default for a None (the wrapper's spread, python_executor.rs)."""
    args = {}
    for name, param in inspect.signature(main).parameters.items():
        value = given.get(name)
        if value is None and param.default is not inspect.Parameter.empty:
            value = param.default
        args[name] = value
    return args


def webhook_args(main, body, *, raw=RAW, headers: dict | None = None) -> dict:
    """The arguments a webhook call gives `main`, which Windmill also stores as the job's.

    With a `preprocessor` in main's module, it gets the trigger event and its return value
    becomes the arguments; without one, the body's keys do.
    """
    preprocessor = getattr(inspect.getmodule(main), "preprocessor", None)
    if preprocessor is not None:
        body = preprocessor(trigger_event(body, raw=raw, headers=headers))
    return main_args(main, body)
