"""f/marketing/setup: from credentials to a first event, against stand-ins that serve Twenty's
metadata API and Mautic's fields, segments, campaigns and permission checks."""

import json
from pathlib import Path

import pytest

from f.marketing.handle_user_event import main as handle
from f.marketing.lib.delivery_failures import DeliveryFailed
from f.marketing.lib.errors import SetupIncomplete
from f.marketing.setup import main as setup
from tests.conftest import run_as_webhook
from tests.test_run_local import run_local

EXAMPLE_ROUTING = json.loads(Path("scripts/examples/routing.resource.json").read_text())["value"]
EXAMPLES = ["user_registered", "user_upgraded", "user_churned"]
TWENTY_FIELDS = ["subscriptionPlan", "signupSource", "marketingConsent", "churnReason", "churnedAt"]
MAUTIC_FIELDS = ["plan", "signup_source", "marketing_consent", "churn_reason", "churned_at"]
SEGMENTS = ["active", "churned", "plan-free", "plan-pro", "plan-business"]


@pytest.fixture
def fresh(services, windmill):
    """A Twenty and a Mautic with nothing configured, and the example routing."""
    services.twenty.custom_fields.clear()
    services.mautic.fields = {"email": "email", "firstname": "text", "lastname": "text"}
    services.mautic.segments.clear()
    services.mautic.segment_members.clear()
    services.mautic.campaigns.clear()
    windmill.resources["f/marketing/routing"] = json.loads(json.dumps(EXAMPLE_ROUTING))
    windmill.write()
    return services


def failing(result: dict) -> dict[str, str]:
    return {
        f"{c['service']} {c['subject']}": c["detail"]
        for c in result["checks"]
        if c["status"] == "failed"
    }


def statuses(result: dict) -> dict[str, str]:
    return {f"{c['service']} {c['subject']}": c["status"] for c in result["checks"]}


def run_setup(**kwargs) -> dict:
    """The result, whether setup passed or failed (a failure carries it)."""
    try:
        return setup(**kwargs)
    except SetupIncomplete as exc:
        return exc.result


def writes(services) -> list[str]:
    return [c for c in services.calls() if not c.startswith("GET")]


def test_a_fresh_install_is_reported_exactly_and_nothing_is_changed(fresh):
    with pytest.raises(SetupIncomplete) as caught:
        setup()

    assert set(failing(caught.value.result)) == {
        *(f"twenty People field {name}" for name in TWENTY_FIELDS),
        *(f"mautic contact field {alias}" for alias in MAUTIC_FIELDS),
        *(f"mautic segment {alias}" for alias in SEGMENTS),
    }
    assert "15 check(s) would make events fail" in str(caught.value)
    assert "fix: run setup with apply" in str(caught.value)
    assert [c for c in writes(fresh) if "permissioncheck" not in c] == []
    assert fresh.twenty.custom_fields == {} and fresh.mautic.segments == {}


@pytest.mark.parametrize("metadata_format", ["direct", "proxy"])
def test_after_apply_the_three_example_events_go_through_with_no_4xx(fresh, metadata_format):
    """Newer Twenty servers answer a created field bare and list objects as {"data": [...]},
    older ones through the GraphQL proxy; either way the person object is past the first
    page of objects."""
    fresh.twenty.metadata_format = metadata_format
    result = setup(apply=True)
    creates = [c for c in fresh.calls() if c == "POST /rest/metadata/fields"]
    assert len(creates) == len(TWENTY_FIELDS), "each field created once, never re-posted"

    assert result["ok"] is True
    assert fresh.twenty.custom_fields == {
        "subscriptionPlan": "TEXT",
        "signupSource": "TEXT",
        "marketingConsent": "BOOLEAN",
        "churnReason": "TEXT",
        "churnedAt": "DATE_TIME",
    }
    assert {a: fresh.mautic.fields[a] for a in MAUTIC_FIELDS} == {
        "plan": "text",
        "signup_source": "text",
        "marketing_consent": "boolean",
        "churn_reason": "textarea",
        "churned_at": "datetime",
    }
    assert sorted(s["alias"] for s in fresh.mautic.segments.values()) == sorted(SEGMENTS)
    assert all(s["published"] and s["global"] for s in fresh.mautic.segments.values())

    before = len(fresh.router.calls)
    for example in EXAMPLES:
        body = json.loads(Path(f"scripts/examples/{example}.json").read_text())
        assert run_as_webhook(handle, body)["ok"] is True
    # Refused by nobody; the one 404 allowed is the rate-limit line's, absent until a burst.
    answers = [
        call.response.status_code
        for call in fresh.router.calls[before:]
        if "/rate_slots/" not in call.request.url.path or call.response.status_code != 404
    ]
    assert answers and all(status < 400 for status in answers)
    contact = fresh.mautic.contact_by_email("jane.doe@example.com")
    churned = next(i for i, s in fresh.mautic.segments.items() if s["alias"] == "churned")
    assert contact["id"] in fresh.mautic.segment_members[churned]

    again = setup()
    assert again["ok"] is True and "fixed" not in statuses(again).values()


def test_a_second_apply_adds_nothing(fresh):
    setup(apply=True)
    calls = len(writes(fresh))
    setup(apply=True)
    assert [c for c in writes(fresh)[calls:] if "permissioncheck" not in c] == []


def test_a_restricted_mautic_api_user_is_reported_not_silently_accepted(fresh):
    fresh.mautic.permissions = {"lead:leads:editother", "lead:fields:full"}
    with pytest.raises(SetupIncomplete) as caught:
        setup(apply=True)
    failed = failing(caught.value.result)
    assert "mautic permission lead:lists:viewother" in failed
    assert "mautic permission lead:leads:create" in failed
    status = statuses(caught.value.result)
    assert status["mautic permission campaign:campaigns:viewother"] == "warning"
    fixes = {c["fix"] for c in caught.value.result["checks"] if c["status"] == "failed"}
    assert (
        "give the API user's role Segments: View Others (to use segments other users made)" in fixes
    )
    # It cannot see other users' segments, so it does not create look-alikes of them.
    assert fresh.mautic.segments == {}
    assert "may exist: not created" in failed["mautic segment active"]


def test_mautic_segments_and_campaigns_are_checked_as_the_api_user_sees_them(services, windmill):
    services.mautic.segments[3]["published"] = False
    services.mautic.campaigns[11]["published"] = False
    services.mautic.permissions.discard("campaign:campaigns:viewother")
    for own in (10, 11):  # 12 stays the marketing team's
        services.mautic.campaigns[own]["owner"] = services.mautic.username
    windmill.resources["f/marketing/routing"]["segments"]["plans"]["business"] = [77]
    windmill.write()

    result = run_setup()
    failed, status = failing(result), statuses(result)
    assert "unpublished" in failed["mautic segment 3"]
    assert failed["mautic segment 77"] == "does not exist"
    # Events check membership without campaign access; only setup's read of its settings fails.
    assert "mautic winback campaign 12" not in failed
    assert status["mautic winback campaign 12"] == "warning"
    assert status["mautic permission campaign:campaigns:viewother"] == "warning"
    assert status["mautic onboarding campaign 10"] == "warning"  # allows restarts
    assert status["mautic upgrade campaign 11"] == "warning"  # unpublished, allows restarts


def test_an_api_user_without_contacts_create_is_a_blocking_failure(services, windmill):
    """contacts/new needs Contacts: Create even for a known email: every event would fail."""
    services.mautic.permissions.discard("lead:leads:create")
    result = run_setup()
    assert result["ok"] is False
    failed = failing(result)
    assert failed["mautic permission lead:leads:create"] == "not granted"
    fix = next(c["fix"] for c in result["checks"] if c["subject"].endswith("lead:leads:create"))
    assert fix.startswith("give the API user's role Contacts: Create")
    with pytest.raises(DeliveryFailed) as caught:
        run_as_webhook(
            handle, json.loads(Path("scripts/examples/user_registered.json").read_text())
        )
    assert "mautic upsert contact failed (HTTP 403)" in str(caught.value)


@pytest.mark.parametrize("mautic6", [False, True], ids=["mautic5", "mautic6"])
def test_campaigns_pass_the_membership_check_on_mautic_5_and_6(services, windmill, mautic6):
    services.mautic.mautic6 = mautic6
    result = run_setup()
    status = statuses(result)
    assert [status[f"mautic {p} campaign {c}"] for p, c in
            [("onboarding", 10), ("upgrade", 11), ("winback", 12)]] == ["warning"] * 3  # fmt: skip
    assert not [k for k in failing(result) if "campaign" in k]


def test_a_twenty_server_that_ignores_upsert_is_reported(fresh):
    fresh.twenty.supports_upsert = False
    result = run_setup(apply=True)
    assert "ignores ?upsert=true" in failing(result)["twenty upsert"]


def test_a_twenty_key_without_data_model_access_says_which_role_setting(fresh):
    fresh.twenty.data_model_access = False
    result = run_setup(apply=True)
    check = next(c for c in result["checks"] if c["subject"] == "data model")
    assert check["status"] == "failed" and "Data model permission" in check["fix"]
    assert fresh.twenty.custom_fields == {}


def test_a_select_plan_field_gets_an_option_for_every_plan(fresh):
    values = {"free": "FREE", "pro": "PRO", "business": "BUSINESS"}
    routing = {**EXAMPLE_ROUTING, "fields": {"twenty_plan_values": values}}
    fresh.twenty.custom_fields["subscriptionPlan"] = "SELECT"
    fresh.twenty.select_options["subscriptionPlan"] = {"FREE"}

    assert (
        "without the options BUSINESS, PRO"
        in failing(run_setup(routing=routing))["twenty People field subscriptionPlan"]
    )
    assert fresh.twenty.select_options["subscriptionPlan"] == {"FREE"}
    setup(apply=True, routing=routing)
    assert fresh.twenty.select_options["subscriptionPlan"] == {"FREE", "PRO", "BUSINESS"}

    partial = {**routing, "fields": {"twenty_plan_values": {"free": "FREE"}}}
    assert (
        "'pro' has no option value"
        in failing(run_setup(routing=partial))["twenty People field subscriptionPlan"]
    )


def test_a_field_of_the_wrong_type_is_reported_and_left_alone(services, windmill):
    services.mautic.fields["marketing_consent"] = "text"
    services.twenty.custom_fields["churnedAt"] = "TEXT"
    failed = failing(run_setup(apply=True))
    assert failed["mautic contact field marketing_consent"].startswith("is text")
    assert failed["twenty People field churnedAt"].startswith("is TEXT")
    assert services.mautic.fields["marketing_consent"] == "text"


def test_fields_mautic_creates_in_the_background_are_not_ready_until_its_cron_ran(fresh):
    fresh.mautic.fields_in_background = True
    result = run_setup(apply=True)
    assert "create-column" in next(
        c["fix"] for c in result["checks"] if c["subject"] == "contact field plan"
    )
    fresh.mautic.run_field_cron()
    assert setup()["ok"] is True


def test_nothing_is_deleted_or_renamed(fresh):
    fresh.twenty.custom_fields["legacyScore"] = "NUMBER"
    fresh.mautic.fields["legacy_score"] = "number"
    setup(apply=True)
    assert fresh.twenty.custom_fields["legacyScore"] == "NUMBER"
    assert fresh.mautic.fields["legacy_score"] == "number"
    assert not [c for c in fresh.calls() if c.startswith(("DELETE", "PATCH", "PUT"))]


def test_windmill_resources_and_the_ledger_folder_are_checked(services, windmill):
    windmill.api.unreadable.add("f/marketing/mautic")
    windmill.api.folder_writable = False
    del windmill.resources["f/marketing/slack"]
    windmill.write()
    result = run_setup()
    checks = {f"{c['service']} {c['subject']}": c for c in result["checks"]}
    assert checks["windmill f/marketing/mautic"]["status"] == "failed"
    assert "HTTP 401" in checks["windmill f/marketing/mautic"]["detail"]
    assert checks["windmill f/marketing/slack"]["status"] == "warning"
    ledger = checks["windmill Slack ledger"]
    assert ledger["status"] == "failed" and not ledger["blocking"]
    assert "marketing_ops" in ledger["fix"]


def test_the_slack_test_message_is_posted_on_request(services, windmill):
    assert setup(send_test_message=True)["ok"] is True
    assert services.slack.messages[0]["text"].startswith("Test from f/marketing/setup")
    setup()
    assert len(services.slack.messages) == 1


def test_the_report_names_no_secret(fresh, caplog):
    with pytest.raises(SetupIncomplete) as caught:
        setup()
    text = json.dumps(caught.value.result) + str(caught.value) + caplog.text
    for secret in (fresh.twenty.api_key, fresh.mautic.password, "s3cr3tW3bh00kT0k3n"):
        assert secret not in text


# --- scripts/setup: the same check from a terminal ------------------------------------------


def fresh_stand_ins(services) -> None:
    services.twenty.custom_fields.clear()
    services.mautic.fields = {"email": "email", "firstname": "text", "lastname": "text"}
    services.mautic.segments.clear()


def test_scripts_setup_prepares_a_fresh_install_from_the_credentials_file(
    services, monkeypatch, tmp_path, capsys
):
    fresh_stand_ins(services)
    credentials = tmp_path / "credentials.local.json"
    credentials.write_text(json.dumps(services.resources()))
    setup_local = "scripts/setup_local.py"

    assert run_local(monkeypatch, "--credentials", str(credentials), script=setup_local) == 1
    assert capsys.readouterr().err.strip() == (
        "setup: set-up incomplete: 15 check(s) would make events fail "
        "(run with apply to add what is missing):"
    )

    code = run_local(monkeypatch, "--apply", "--credentials", str(credentials), script=setup_local)
    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("Ready for events: ")
    assert sorted(s["alias"] for s in services.mautic.segments.values()) == sorted(SEGMENTS)


def test_scripts_setup_without_credentials_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    missing = str(tmp_path / "none.json")
    code = run_local(monkeypatch, "--credentials", missing, script="scripts/setup_local.py")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("setup: no credentials at ")
    assert len(err.strip().splitlines()) == 1


SETUP_LOCAL = "scripts/setup_local.py"


def credentials_file(services, tmp_path, **changes) -> str:
    resources = services.resources()
    for path, fields in changes.items():
        resources[f"f/marketing/{path}"] |= fields
    credentials = tmp_path / "credentials.local.json"
    credentials.write_text(json.dumps(resources))
    return str(credentials)


def test_scripts_setup_prints_each_check_once(services, monkeypatch, tmp_path, capsys):
    fresh_stand_ins(services)
    credentials = credentials_file(services, tmp_path)
    assert run_local(monkeypatch, "--credentials", credentials, script=SETUP_LOCAL) == 1
    captured = capsys.readouterr()
    shown = [line.removeprefix("INFO ") for line in (captured.out + captured.err).splitlines()]
    check_lines = [line for line in shown if line.startswith(("OK ", "FAILED ", "WARNING "))]
    assert check_lines and len(check_lines) == len(set(check_lines))
    assert any("mautic   segment active" in line for line in check_lines)
    assert len(captured.err.strip().splitlines()) == 1  # the verdict, after the report


@pytest.mark.parametrize("outcome", ["ready", "incomplete", "no-credentials", "bad-credentials"])
def test_scripts_setup_json_is_one_document_whatever_the_outcome(
    services, monkeypatch, tmp_path, capsys, outcome
):
    credentials = credentials_file(services, tmp_path)
    if outcome == "incomplete":
        fresh_stand_ins(services)
    elif outcome == "no-credentials":
        credentials = str(tmp_path / "none.json")
    elif outcome == "bad-credentials":
        credentials = credentials_file(services, tmp_path, twenty={"base_url": 8080})
    apply = ["--apply"] if outcome == "ready" else []
    code = run_local(
        monkeypatch, "--json", *apply, "--credentials", credentials, script=SETUP_LOCAL
    )
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # one document, nothing else on stdout
    assert code == {"ready": 0, "incomplete": 1}.get(outcome, 2)
    assert document["ok"] is (outcome == "ready")
    if outcome in {"ready", "incomplete"}:
        assert document["checks"]
    else:
        assert document["error"] and "Traceback" not in captured.err
        assert services.total_calls == 0


def test_apply_is_not_suggested_for_what_apply_cannot_fix(services, monkeypatch, tmp_path, capsys):
    credentials = credentials_file(services, tmp_path, twenty={"api_key": "wrong-key"})
    assert run_local(monkeypatch, "--credentials", credentials, script=SETUP_LOCAL) == 1
    captured = capsys.readouterr()
    assert "fix them as each says: apply does not add these" in captured.err
    assert "run with apply" not in captured.err
    assert "wrong-key" not in captured.out + captured.err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"twenty": {"base_url": 8080}}, "base_url: Input should be a valid string"),
        ({"mautic": {"user": "x"}}, "user: Extra inputs are not permitted"),
        ({"mautic": {"base_url": "mautic.acme.test"}}, "base_url: Value error, must start with"),
    ],
)
def test_scripts_setup_refuses_credentials_of_the_wrong_shape_before_any_call(
    services, monkeypatch, tmp_path, capsys, change, expected
):
    credentials = credentials_file(services, tmp_path, **change)
    assert run_local(monkeypatch, "--credentials", credentials, script=SETUP_LOCAL) == 2
    err = capsys.readouterr().err
    assert err.startswith("setup: ") and expected in err and len(err.strip().splitlines()) == 1
    assert "mautic.acme.test" not in err
    assert services.total_calls == 0
