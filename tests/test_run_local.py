"""The local run from the README: a dry run without credentials, a real run with them."""

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = "scripts/run_local.py"


def run_local(monkeypatch, *args: str, script: str = SCRIPT) -> int | str | None:
    """Run a scripts/ command in this process, as `python scripts/x.py` would."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.syspath_prepend("scripts")  # python puts the script's folder first
    # run_local sets both; registering them here restores them after the test.
    monkeypatch.setenv("WM_MOCKED_API_FILE", "")
    monkeypatch.setenv("WM_WORKSPACE", "local")
    with pytest.raises(SystemExit) as finished:
        runpy.run_path(script, run_name="__main__")
    return finished.value.code


def test_without_credentials_it_prints_the_plan_and_calls_nothing(
    services, monkeypatch, tmp_path, capsys
):
    code = run_local(monkeypatch, "--credentials", str(tmp_path / "none.json"))
    out = capsys.readouterr().out
    assert code == 0
    assert '"dry_run": true' in out and "POST /rest/people?upsert=true" in out
    assert services.total_calls == 0


def test_with_credentials_it_runs_for_real(services, monkeypatch, tmp_path, capsys):
    credentials = tmp_path / "credentials.local.json"
    credentials.write_text(json.dumps(services.resources()))
    code = run_local(
        monkeypatch, "scripts/examples/user_churned.json", "--credentials", str(credentials)
    )
    assert code == 0
    assert services.twenty.person_by_email("jane.doe@example.com")["churnReason"] == "too expensive"
    assert len(services.slack.messages) == 1
    assert services.twenty.api_key not in capsys.readouterr().out


def test_a_failed_job_exits_non_zero_with_the_reason(services, monkeypatch, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"event": "user.registered", "email": "nope"}))
    code = run_local(monkeypatch, str(bad), "--credentials", str(tmp_path / "none.json"))
    assert code == 1
    assert "email: not a valid email address" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing-event", "run-example: no event file at "),
        ("bad-event", "run-example: the event file "),
        ("bad-credentials", "is not valid JSON"),
        ("placeholders", "f/marketing/twenty base_url still holds the example's placeholder"),
        ("not-resources", "must be a JSON object of resources by path"),
    ],
)
def test_a_local_file_that_cannot_be_used_gives_one_line(
    services, monkeypatch, tmp_path, capsys, setup, expected
):
    event, credentials = "scripts/examples/user_registered.json", tmp_path / "credentials.json"
    if setup == "missing-event":
        event = str(tmp_path / "nope.json")
    elif setup == "bad-event":
        event = str(tmp_path / "event.json")
        (tmp_path / "event.json").write_text("{not json")
    elif setup == "bad-credentials":
        credentials.write_text('{"f/marketing/twenty": ')
    elif setup == "placeholders":
        credentials.write_text(Path("scripts/credentials.example.json").read_text())
    else:
        credentials.write_text('["f/marketing/twenty"]')

    code = run_local(monkeypatch, event, "--credentials", str(credentials))
    captured = capsys.readouterr()
    assert code == 2
    assert expected in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err
    assert services.total_calls == 0


def test_an_event_file_with_extra_keys_runs_as_a_webhook_would(services, monkeypatch, tmp_path):
    body = json.loads(Path("scripts/examples/user_churned.json").read_text()) | {"utm": "x"}
    event = tmp_path / "event.json"
    event.write_text(json.dumps(body))
    assert run_local(monkeypatch, str(event), "--credentials", str(tmp_path / "none.json")) == 0
