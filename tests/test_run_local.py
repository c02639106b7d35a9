"""The local run from the README: a dry run unless asked for a live one, with one clean JSON
document on stdout and one line for any failure."""

import json
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "scripts/run_local.py"


def run_local(monkeypatch, *args: str, script: str = SCRIPT) -> int | str | None:
    """Run a scripts/ command in this process, as `python scripts/x.py` would."""
    script = str(ROOT / script)
    monkeypatch.setattr(sys, "argv", [script, *args])
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # python puts the script's folder first
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
    captured = capsys.readouterr()
    assert code == 0
    plan = json.loads(captured.out)  # stdout is the result alone; log lines are on stderr
    assert plan["dry_run"] is True
    assert "POST /rest/people?upsert=true" in [call["request"] for call in plan["would_call"]]
    assert "dry run, nothing is sent" in captured.err
    assert services.total_calls == 0


def test_with_credentials_but_no_live_flag_it_still_calls_nothing(
    services, monkeypatch, tmp_path, capsys
):
    credentials = tmp_path / "credentials.local.json"
    credentials.write_text(json.dumps(services.resources()))
    assert run_local(monkeypatch, "--credentials", str(credentials)) == 0
    assert json.loads(capsys.readouterr().out)["dry_run"] is True
    assert services.total_calls == 0


def test_live_it_says_where_it_writes_then_runs_for_real(services, monkeypatch, tmp_path, capsys):
    credentials = tmp_path / "credentials.local.json"
    credentials.write_text(json.dumps(services.resources()))
    code = run_local(
        monkeypatch,
        "scripts/examples/user_churned.json",
        "--live",
        "--credentials",
        str(credentials),
    )
    captured = capsys.readouterr()
    assert code == 0
    assert services.twenty.person_by_email("jane.doe@example.com")["churnReason"] == "too expensive"
    assert len(services.slack.messages) == 1
    banner = captured.err.splitlines()[0]
    assert banner.startswith("run-example: live run, writing to twenty at ")
    assert "mautic at " in banner and "slack at " in banner
    assert json.loads(captured.out)["ok"] is True
    slack_webhook = services.resources()["f/marketing/slack"]["webhook_url"]
    for secret in (services.twenty.api_key, slack_webhook):
        assert secret not in captured.out + captured.err


def test_live_without_credentials_is_refused_in_one_line(services, monkeypatch, tmp_path, capsys):
    code = run_local(monkeypatch, "--live", "--credentials", str(tmp_path / "none.json"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        f"run-example: --live needs credentials at {tmp_path / 'none.json'}: copy "
        "scripts/credentials.example.json there and fill it in"
    )
    assert services.total_calls == 0


def test_relative_paths_are_read_from_the_folder_the_command_runs_in(
    services, monkeypatch, tmp_path, capsys
):
    (tmp_path / "mine.json").write_text((ROOT / "scripts/examples/user_churned.json").read_text())
    monkeypatch.chdir(tmp_path)
    assert run_local(monkeypatch, "mine.json", "--credentials", "none.json") == 0
    assert json.loads(capsys.readouterr().out)["event"] == "user.churned"
    assert run_local(monkeypatch, "missing.json") == 2
    assert f"no event file at {tmp_path / 'missing.json'}" in capsys.readouterr().err


def test_a_failed_job_exits_non_zero_with_the_reason(services, monkeypatch, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"event": "user.registered", "email": "nope"}))
    code = run_local(monkeypatch, str(bad), "--credentials", str(tmp_path / "none.json"))
    err = capsys.readouterr().err
    assert code == 2  # bad input, not a failed service
    assert "email: not a valid email address" in err.splitlines()[-1]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing-event", "run-example: no event file at "),
        ("bad-event", "run-example: the event file "),
        ("bad-credentials", "is not valid JSON"),
        ("placeholders", "f/marketing/twenty base_url still holds the example's placeholder"),
        ("not-resources", "must be a JSON object of resources by path"),
        ("number-for-url", "f/marketing/twenty (type c_twenty) is malformed: base_url: "),
        ("unknown-key", "apikey: Extra inputs are not permitted"),
        ("no-scheme", "base_url: Value error, must start with https://"),
        ("unknown-resource", "unknown resource f/marketing/hubspot"),
        ("folder", "is a folder, not a file"),
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
    elif setup == "not-resources":
        credentials.write_text('["f/marketing/twenty"]')
    elif setup == "folder":
        credentials = tmp_path
    else:
        resources = services.resources()
        twenty = resources["f/marketing/twenty"]
        if setup == "number-for-url":
            twenty["base_url"] = 8080
        elif setup == "unknown-key":
            twenty["apikey"] = twenty.pop("api_key")
        elif setup == "no-scheme":
            twenty["base_url"] = "crm.acme.test"
        else:
            resources["f/marketing/hubspot"] = {}
        credentials.write_text(json.dumps(resources))

    code = run_local(monkeypatch, event, "--credentials", str(credentials))
    captured = capsys.readouterr()
    assert code == 2
    assert expected in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err
    assert "8080" not in captured.err and "crm.acme.test" not in captured.err  # never the value
    assert services.total_calls == 0


def test_an_event_file_with_extra_keys_runs_as_a_webhook_would(services, monkeypatch, tmp_path):
    body = json.loads(Path("scripts/examples/user_churned.json").read_text()) | {"utm": "x"}
    event = tmp_path / "event.json"
    event.write_text(json.dumps(body))
    assert run_local(monkeypatch, str(event), "--credentials", str(tmp_path / "none.json")) == 0


def test_a_service_that_refuses_ends_the_live_run_in_one_line(
    services, monkeypatch, tmp_path, capsys
):
    credentials = tmp_path / "credentials.local.json"
    credentials.write_text(json.dumps(services.resources()))
    services.mautic.fault(403, times=10, path_contains="/contacts/new")
    code = run_local(monkeypatch, "--live", "--credentials", str(credentials))
    err = capsys.readouterr().err
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("run-example: the job failed: user.registered: mautic upsert contact")
    assert "Done: twenty upsert person" in last and "Traceback" not in err
