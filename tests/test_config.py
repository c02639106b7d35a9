"""Configuration: read from Windmill resources, and refused with a message that says what to fix."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from f.marketing.lib.errors import ConfigError, ServiceError
from f.marketing.lib.routing import Routing
from f.marketing.lib.settings import ROUTING_PATH, load_settings
from f.marketing.lib.windmill_api import job_workspace

TWENTY = {"base_url": "https://twenty.test/", "api_key": "tw-secret-key"}
MAUTIC = {"base_url": "https://mautic.test", "username": "u", "password": "mautic-secret-pw"}
SLACK = {"webhook_url": "https://hooks.slack.com/services/T1/B2/hook-secret"}


def reader(resources: dict):
    return lambda path: resources.get(path)


def test_resources_are_read_from_their_default_paths():
    settings = load_settings(
        reader=reader(
            {
                "f/marketing/twenty": TWENTY,
                "f/marketing/mautic": MAUTIC,
                "f/marketing/slack": SLACK,
                "f/marketing/routing": {"campaigns": {"onboarding": 7}},
            }
        )
    )
    assert settings.twenty.base_url == "https://twenty.test"  # trailing slash dropped
    assert settings.routing.campaigns.onboarding == 7
    assert settings.slack is not None and settings.slack.webhook_url == SLACK["webhook_url"]


def test_resources_passed_to_main_win_over_the_default_paths():
    other = {"base_url": "https://other.test", "api_key": "k"}
    settings = load_settings(other, MAUTIC, None, {}, reader=reader({"f/marketing/twenty": TWENTY}))
    assert settings.twenty.base_url == "https://other.test"


def test_an_unresolved_res_reference_is_read_from_its_path():
    settings = load_settings(
        "$res:f/marketing/twenty_staging",
        MAUTIC,
        None,
        {},
        reader=reader({"f/marketing/twenty_staging": TWENTY}),
    )
    assert settings.twenty.api_key == "tw-secret-key"


def test_no_slack_resource_means_no_slack():
    assert load_settings(TWENTY, MAUTIC, None, {}, reader=reader({})).slack is None


def test_a_missing_resource_says_which_path_and_type_to_create():
    with pytest.raises(ConfigError) as caught:
        load_settings(None, MAUTIC, None, {}, reader=reader({}))
    message = str(caught.value)
    assert "f/marketing/twenty" in message and "c_twenty" in message
    assert "base_url, api_key" in message


def test_a_malformed_resource_names_the_field_and_never_echoes_secrets():
    bad_mautic = {"base_url": "mautic.test", "username": "u", "password": "mautic-secret-pw"}
    with pytest.raises(ConfigError) as caught:
        load_settings(TWENTY, bad_mautic, None, {}, reader=reader({}))
    assert "base_url: Value error, must start with https://" in str(caught.value)
    assert "mautic-secret-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("mautic", "expected"),
    [
        ({"base_url": "https://m.test"}, "either username and password"),
        ({**MAUTIC, "client_id": "c", "client_secret": "s"}, "not both"),
    ],
)
def test_mautic_needs_exactly_one_way_to_authenticate(mautic, expected):
    with pytest.raises(ConfigError, match=expected):
        load_settings(TWENTY, mautic, None, {}, reader=reader({}))


@pytest.mark.parametrize(
    ("slack", "expected"),
    [
        ({"webhook_url": "http://hooks.slack.com/services/T/B/x"}, "must be an https:// URL"),
        ({"webhook_url": "hooks.slack.com/services/T/B/x"}, "must be an https:// URL"),
        ({"token": "xoxb-1", "channel": "C1", "api_base_url": "http://x.test"}, "https://"),
        ({"token": "xoxb-1"}, "channel"),
        ({}, "either webhook_url, or token and channel"),
    ],
)
def test_slack_resource_is_checked(slack, expected):
    with pytest.raises(ConfigError, match=expected):
        load_settings(TWENTY, MAUTIC, slack, {}, reader=reader({}))


@pytest.mark.parametrize(
    "slack",
    [
        {"webhook_url": "https://hooks.slack-gov.com/services/T1/B2/x"},
        {"webhook_url": "http://127.0.0.1:8099/services/T1/B2/x"},
        {"token": "xoxb-1", "channel": "C1", "api_base_url": "https://slack-gov.com/api"},
    ],
    ids=["govslack-webhook", "local-stand-in", "govslack-api"],
)
def test_slack_may_live_on_another_https_host(slack):
    settings = load_settings(TWENTY, MAUTIC, slack, {}, reader=reader({}))
    assert settings.slack is not None


def test_routing_names_the_bad_entry():
    routing = {"slack_rules": [{"name": "x", "events": ["user.deleted"]}]}
    with pytest.raises(ConfigError, match=r"slack_rules\.0\.events: Value error, unknown event"):
        load_settings(TWENTY, MAUTIC, None, routing, reader=reader({}))


def test_routing_typos_are_refused_not_ignored():
    with pytest.raises(ConfigError, match="segmets: Extra inputs are not permitted"):
        load_settings(TWENTY, MAUTIC, None, {"segmets": {}}, reader=reader({}))


def test_the_committed_example_routing_is_valid():
    with open("scripts/examples/routing.resource.json") as f:
        Routing.model_validate(json.load(f)["value"])


def test_a_local_run_reads_resources_from_the_mocked_api_file(tmp_path, monkeypatch):
    mock = tmp_path / "mock.json"
    mock.write_text(
        json.dumps(
            {
                "resources": {
                    "f/marketing/twenty": TWENTY,
                    "f/marketing/mautic": MAUTIC,
                    ROUTING_PATH: {},
                },
                "variables": {},
            }
        )
    )
    monkeypatch.setenv("WM_MOCKED_API_FILE", str(mock))
    monkeypatch.setenv("WM_WORKSPACE", "test")
    settings = load_settings(reader=job_workspace().get)
    assert settings.mautic.username == "u"
    assert settings.slack is None and settings.slack_problem is None


def failing_reader(resources: dict, failing: str):
    def read(path):
        if path == failing:
            raise ServiceError("Windmill", f"read resource {path}", "server error", status=503)
        return resources.get(path)

    return read


def test_a_resource_that_cannot_be_read_is_not_taken_for_a_missing_one():
    read = failing_reader({}, "f/marketing/twenty")
    with pytest.raises(
        ConfigError, match=r"f/marketing/twenty could not be read \(HTTP 503\): server error"
    ):
        load_settings(None, MAUTIC, None, {}, reader=read)


def test_a_slack_resource_that_cannot_be_read_is_a_problem_not_no_slack():
    settings = load_settings(
        TWENTY, MAUTIC, None, {}, reader=failing_reader({}, "f/marketing/slack")
    )
    assert settings.slack is None
    assert settings.slack_problem is not None and "HTTP 503" in settings.slack_problem


@pytest.mark.parametrize(
    ("type_name", "model"),
    [
        ("c_twenty", "TwentySettings"),
        ("c_mautic", "MauticSettings"),
        ("c_slack_notify", "SlackSettings"),
        ("c_marketing_routing", "Routing"),
    ],
)
def test_each_resource_type_offers_exactly_the_fields_the_code_reads(type_name, model):
    from f.marketing.lib import resource_types as resources
    from f.marketing.lib import settings as config

    spec_file = Path(f"f/marketing/resource_types/{type_name}.resource-type.json")
    spec = json.loads(spec_file.read_text())
    fields = set(getattr(config, model).model_fields)
    assert set(spec["schema"]["properties"]) == fields
    assert set(getattr(resources, type_name).__annotations__) == fields
    required = {n for n, f in getattr(config, model).model_fields.items() if f.is_required()}
    assert set(spec["schema"]["required"]) == required


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("plan", "Twenty reserves the name 'plan'.*'planCustom'"),
        ("type", "Twenty reserves the name 'type'.*'typeCustom'"),
        ("currency", "Twenty reserves the name 'currency'.*'currencyCustom'"),
        ("Plan", "'Plan' is not a Twenty field name"),
        ("signup_source", "'signup_source' is not a Twenty field name"),
    ],
)
def test_a_twenty_field_name_twenty_refuses_is_refused_before_any_call(name, expected):
    routing = {"fields": {"twenty": {"plan": name}}}
    with pytest.raises(ConfigError, match=rf"fields\.twenty\.plan: Value error, {expected}"):
        load_settings(TWENTY, MAUTIC, None, routing, reader=reader({}))


def test_the_default_twenty_field_names_are_ones_twenty_accepts():
    from f.marketing.lib.routing import TWENTY_RESERVED_NAMES, TwentyFields

    names = set(TwentyFields().model_dump().values())
    assert names == {
        "subscriptionPlan",
        "signupSource",
        "marketingConsent",
        "churnReason",
        "churnedAt",
    }
    assert not names & TWENTY_RESERVED_NAMES


def test_the_committed_resource_types_are_generated_from_the_settings_models():
    done = subprocess.run(
        [sys.executable, "scripts/export_schemas.py", "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_routing_form_takes_segments_by_alias_or_id():
    spec = json.loads(
        Path("f/marketing/resource_types/c_marketing_routing.resource-type.json").read_text()
    )
    active = spec["schema"]["properties"]["segments"]["properties"]["active"]
    assert active["items"]["type"] == ["integer", "string"]


def test_a_segment_alias_with_an_underscore_is_refused_naming_the_rule():
    """Mautic saves `plan_pro` as `planpro`: setup would create one at every apply, and the
    handler would never find it by the routing's name."""
    with pytest.raises(ConfigError) as caught:
        routing = {"segments": {"plans": {"pro": ["plan_pro"]}}}
        load_settings(TWENTY, MAUTIC, None, routing, reader=reader({}))
    message = str(caught.value)
    assert "segments.plans.pro.0" in message and "cannot hold _" in message
    assert Routing.model_validate({"segments": {"plans": {"pro": ["plan-pro", 3]}}})
