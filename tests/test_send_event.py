"""scripts/send_event.py: one event, delivered now, and Windmill's job id printed."""

import os
import subprocess
import sys

import pytest

from tests.receiver import Answer, Receiver

TOKEN = "wm-token-s3cr3t"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def send(receiver: Receiver, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "WINDMILL_WEBHOOK_URL": receiver.url,
        "WINDMILL_API_TOKEN": TOKEN,
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "scripts/send_event.py", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_json_file_is_sent_and_the_job_id_printed(receiver):
    done = send(receiver, "scripts/examples/user_registered.json")
    assert done.returncode == 0, done.stderr
    [request] = receiver.received
    assert done.stdout.strip() == request.query["job_id"]
    assert request.body["email"] == "jane.doe@example.com"
    assert request.body["timestamp"] == "2026-11-26T10:00:00Z"  # a replay keeps its time


def test_an_event_from_flags(receiver):
    receiver.answers.append(Answer(503, "busy"))
    done = send(
        receiver, "--event", "user.churned", "--email", "Jane@Acme.com", "--reason", "price"
    )
    assert done.returncode == 0, done.stderr
    assert len(receiver.received) == 2  # retried once
    assert receiver.received[1].body["event"] == "user.churned"
    assert receiver.received[1].body["reason"] == "price"


def test_a_refused_event_exits_non_zero_with_the_reason(receiver):
    done = send(receiver, "--event", "user.registered", "--email", "jane@acme.com")
    assert done.returncode == 2
    assert "plan: required" in done.stderr and "marketingConsent: required" in done.stderr
    assert receiver.received == []


def test_windmill_refusing_the_job_exits_non_zero_without_leaking_the_token(receiver):
    receiver.default = Answer(401, f"bad token {TOKEN}")
    done = send(receiver, "scripts/examples/user_churned.json")
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr and TOKEN not in done.stderr + done.stdout


def test_missing_configuration_is_explained(receiver):
    done = send(receiver, "scripts/examples/user_churned.json", env={"WINDMILL_API_TOKEN": ""})
    assert done.returncode == 2
    assert "set WINDMILL_WEBHOOK_URL" in done.stderr and "WINDMILL_API_TOKEN" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "send_event: not sent: no event file at "),
        ("{not json", "is not valid JSON"),
        ('[{"event": "user.churned"}]', "must hold one event, a JSON object"),
        (b"\xff\xfe", "cannot read the event file"),
    ],
)
def test_an_event_file_that_cannot_be_sent_gives_one_line(receiver, tmp_path, content, expected):
    event = tmp_path / "event.json"
    if isinstance(content, bytes):
        event.write_bytes(content)
    elif content is not None:
        event.write_text(content)
    done = send(receiver, str(event))
    assert done.returncode == 2
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and receiver.received == []
