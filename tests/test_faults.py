"""Faults are normal: what is retried, what fails at once, and what a failed job says."""

import httpx
import pytest

from f.marketing.lib.attempt_schedule import attempt_job_id
from f.marketing.lib.contract import event_key, parse_event
from f.marketing.lib.errors import JobFailed
from f.marketing.lib.windmill_api import running_job
from tests.conftest import run_event as main
from tests.test_handle_user_event import EMAIL, registered, steps


def slack_calls(services) -> list[str]:
    return [c for c in services.calls() if c.startswith("POST /services/") or "chat." in c]


# --- Twenty ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"exc": httpx.ConnectError},
        {"exc": httpx.ConnectTimeout},
        {"exc": httpx.ReadTimeout},
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"status": 408},
    ],
    ids=lambda f: f.get("exc", f.get("status")).__name__ if "exc" in f else str(f["status"]),
)
def test_transient_twenty_failures_are_retried(services, windmill, fault):
    services.twenty.fault(**fault, times=2)
    result = main(**registered())
    assert result["ok"] is True
    assert services.twenty.person_by_email(EMAIL) is not None
    assert len(services.sleeps) == 2 and all(0.25 <= s <= 1.0 for s in services.sleeps)


def test_twenty_down_stops_before_mautic_or_slack_and_tries_again_later(services, windmill):
    services.twenty.fault(status=503, times=100)
    result = main(**registered())
    assert result["status"] == "retry-scheduled"
    assert "twenty upsert person failed" in result["reason"]
    assert "HTTP 503 after 4 attempts" in result["reason"]
    assert [s["status"] for s in result["steps"]][:2] == ["failed", "not run"]
    assert services.mautic.requests == [] and services.slack.messages == []


def test_the_last_attempt_fails_saying_what_was_done_and_what_was_not(services, windmill):
    services.twenty.fault(status=503, times=100)
    last = attempt_job_id(event_key(parse_event(registered())), 8)
    with running_job(last), pytest.raises(JobFailed) as caught:
        main(**registered())
    message = str(caught.value)
    assert "twenty upsert person failed" in message
    assert "Done: nothing" in message
    assert "Not done: mautic upsert contact" in message and "slack notify" in message
    assert "Gave up: this was attempt 8 of 8" in message


def test_a_permanent_twenty_error_fails_at_once_with_twentys_message(services, windmill):
    services.twenty.custom_fields.pop("signupSource")
    with pytest.raises(JobFailed, match=r"Object person doesn't have any \"signupSource\" field"):
        main(**registered())
    assert len(services.twenty.requests) == 1
    assert services.sleeps == []


def test_a_bad_twenty_key_fails_at_once(services, windmill):
    windmill.resources["f/marketing/twenty"]["api_key"] = "wrong-key"
    windmill.write()
    with pytest.raises(JobFailed, match=r"HTTP 401"):
        main(**registered())
    assert len(services.twenty.requests) == 1
    assert "wrong-key" not in str(services.sleeps)


# --- Mautic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [{"exc": httpx.ConnectError}, {"exc": httpx.ReadTimeout}, {"status": 500}, {"status": 504}],
    ids=["connect", "read-timeout", "500", "504"],
)
def test_transient_mautic_failures_are_retried(services, windmill, fault):
    services.mautic.fault(**fault, times=1, path_contains="/contacts/new")
    assert main(**registered())["ok"] is True
    assert len(services.mautic.contacts) == 1


def test_a_mautic_rate_limit_hands_the_event_to_the_queue_with_its_retry_after(services, windmill):
    services.mautic.fault(status=429, headers={"Retry-After": "7"}, times=1)
    result = main(**registered())
    assert result["status"] == "retry-scheduled" and services.sleeps == []
    [queued] = windmill.api.jobs.values()
    assert 7 <= queued["scheduled_in_secs"] <= 8


def test_mautic_failure_fails_the_job_and_says_twenty_was_done(services, windmill):
    services.mautic.api_enabled = False
    with pytest.raises(JobFailed) as caught:
        main(**registered())
    message = str(caught.value)
    assert message.startswith("user.registered: mautic upsert contact failed (HTTP 403): API")
    assert "Done: twenty upsert person (created)" in message
    not_done = message.split("Not done: ")[1].split("\n")[0]
    assert "mautic add to segments 1, 3; mautic add to onboarding campaign 10" in not_done
    assert not_done.endswith("slack notify (rule: paid signup)")
    assert services.slack.messages == [], "Slack only after Twenty and Mautic succeeded"
    assert caught.value.summary["steps"][0]["status"] == "created"


def test_an_unknown_segment_fails_at_once_with_mauticts_message(services, windmill):
    windmill.resources["f/marketing/routing"]["segments"]["active"] = [99]
    windmill.write()
    with pytest.raises(JobFailed, match="Item was not found"):
        main(**registered())
    assert services.sleeps == []


def test_a_missing_mautic_custom_field_is_an_error_not_silent_data_loss(services, windmill):
    services.mautic.fields.pop("signup_source")
    with pytest.raises(JobFailed, match="Mautic has no contact field signup_source"):
        main(**registered())


@pytest.mark.parametrize(
    "fault", [{"exc": httpx.ReadTimeout}, {"status": 500}, {"status": 502}], ids=str
)
@pytest.mark.parametrize("applied", [True, False], ids=["landed", "lost"])
def test_a_campaign_add_that_may_have_landed_is_checked_before_it_is_repeated(
    services, windmill, fault, applied
):
    """A campaign that allows restarts would send its sequence twice if the add were replayed."""
    services.mautic.campaigns[10]["allow_restart"] = True
    services.mautic.fault(**fault, applied=applied, path_contains="/campaigns/10/", method="POST")
    assert main(**registered())["ok"] is True
    contact = services.mautic.contact_by_email(EMAIL)
    assert contact["id"] in services.mautic.campaign_members[10]
    assert services.mautic.campaign_rotations.get((10, contact["id"]), 1) == 1
    adds = services.mautic.calls(method="POST", path_contains="/campaigns/10/")
    assert len(adds) == (1 if applied else 2)


def use_mautic_oauth(services, windmill) -> None:
    services.mautic.oauth_clients["client-1"] = "client-secret"
    windmill.resources["f/marketing/mautic"] = {
        "base_url": services.mautic.base_url,
        "client_id": "client-1",
        "client_secret": "client-secret",
    }
    windmill.write()


def test_mautic_oauth_fetches_one_token_per_job(services, windmill):
    use_mautic_oauth(services, windmill)
    assert main(**registered())["ok"] is True
    assert services.calls().count("POST /oauth/v2/token") == 1
    assert services.mautic.contact_by_email(EMAIL) is not None


def test_oauth_credentials_with_a_leftover_username_use_oauth(services, windmill):
    """A username without its password is no basic auth: the resource is OAuth2 (found by
    the type checker: the client sent basic auth with no password, and every call crashed)."""
    use_mautic_oauth(services, windmill)
    windmill.resources["f/marketing/mautic"]["username"] = "old-api-user"
    windmill.write()
    assert main(**registered())["ok"] is True
    assert services.calls().count("POST /oauth/v2/token") == 1
    assert services.mautic.contact_by_email(EMAIL) is not None


def test_an_expired_mautic_token_is_renewed_once(services, windmill):
    use_mautic_oauth(services, windmill)
    services.mautic.fault(
        status=401,
        body={"errors": [{"code": 401, "message": "invalid_grant", "type": "invalid_grant"}]},
        path_contains="/contacts/new",
    )
    assert main(**registered())["ok"] is True
    assert services.calls().count("POST /oauth/v2/token") == 2


def test_a_wrong_mautic_client_secret_fails_at_once(services, windmill):
    use_mautic_oauth(services, windmill)
    services.mautic.oauth_clients["client-1"] = "rotated"
    with pytest.raises(
        JobFailed, match=r"upsert contact failed: get OAuth2 token \(HTTP 400\)"
    ) as caught:
        main(**registered())
    assert "client-secret" not in str(caught.value)
    assert services.calls().count("POST /oauth/v2/token") == 1


# --- Slack ----------------------------------------------------------------------------------


def test_slack_rate_limit_honours_retry_after_then_posts(services, windmill):
    services.slack.fault(status=429, headers={"Retry-After": "2"}, times=1)
    result = main(**registered())
    assert len(services.slack.messages) == 1
    assert 2.0 <= services.sleeps[0] < 2.5
    assert steps(result)["slack notify (rule: paid signup)"][0] == "done"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 404, "body": "no_service"}, "no_service: the webhook is revoked"),
        ({"status": 410, "body": "channel_is_archived"}, "channel_is_archived"),
        ({"status": 400, "body": "invalid_blocks"}, "invalid_blocks"),
        ({"status": 503, "body": "service_unavailable", "times": 10}, "after 4 attempts"),
        ({"exc": httpx.ConnectError, "times": 10}, "could not connect"),
    ],
    ids=["dead", "archived", "invalid", "503", "unreachable"],
)
def test_a_slack_failure_is_reported_but_does_not_fail_the_job(services, windmill, fault, expected):
    services.slack.fault(**fault)
    result = main(**registered())
    assert result["ok"] is True
    status, detail = steps(result)["slack notify (rule: paid signup)"]
    assert status == "failed" and expected in detail
    assert "slack-failed" in result["wm_labels"]
    assert services.mautic.contact_by_email(EMAIL) is not None


def test_what_surely_did_not_reach_slack_is_retried(services, windmill):
    services.slack.fault(exc=httpx.ConnectError)
    services.slack.fault(status=503, body="service_unavailable")
    result = main(**registered())
    assert len(slack_calls(services)) == 3 and len(services.slack.messages) == 1
    assert steps(result)["slack notify (rule: paid signup)"][0] == "done"


@pytest.mark.parametrize(
    "fault",
    [
        {"exc": httpx.ReadTimeout},
        {"exc": httpx.RemoteProtocolError},
        {"status": 500, "body": "rollup_error"},
        {"status": 502, "body": "bad gateway"},
    ],
    ids=["read-timeout", "dropped", "500", "502"],
)
def test_a_post_whose_answer_was_lost_is_not_repeated_even_by_a_re_run(services, windmill, fault):
    services.slack.fault(**fault, applied=True)
    first = main(**registered())
    status, detail = steps(first)["slack notify (rule: paid signup)"]
    assert status == "uncertain" and "may or may not have been posted" in detail
    assert "slack-uncertain" in first["wm_labels"]
    assert len(slack_calls(services)) == 1 and len(services.slack.messages) == 1

    second = main(**registered())
    assert steps(second)["slack notify (rule: paid signup)"] == (
        "skipped",
        "already posted for this event",
    )
    assert len(services.slack.messages) == 1


def test_a_failed_slack_post_is_retried_by_a_re_run(services, windmill):
    services.slack.fault(status=503, times=4)
    main(**registered())
    assert services.slack.messages == []
    main(**registered())
    assert len(services.slack.messages) == 1


@pytest.mark.parametrize(
    ("channel", "token", "expected"),
    [
        ("C0456PRIV", "xoxb-test-token", "not_in_channel"),
        ("C0999NONE", "xoxb-test-token", "channel_not_found"),
        ("C0123TEST", "xoxb-revoked", "invalid_auth"),
    ],
)
def test_chat_post_message_errors_that_arrive_as_200_are_errors(
    services, windmill, channel, token, expected
):
    windmill.resources["f/marketing/slack"] = {"token": token, "channel": channel}
    windmill.write()
    result = main(**registered())
    status, detail = steps(result)["slack notify (rule: paid signup)"]
    assert (status, detail.endswith(expected)) == ("failed", True)
    assert services.slack_api.messages == []
    assert token not in str(result)


def test_chat_post_message_posts_to_the_channel(services, windmill):
    windmill.resources["f/marketing/slack"] = {"token": "xoxb-test-token", "channel": "C0123TEST"}
    windmill.write()
    result = main(**registered())
    assert services.slack_api.messages[0]["channel"] == "C0123TEST"
    assert steps(result)["slack notify (rule: paid signup)"] == (
        "done",
        "posted to channel C0123TEST",
    )


# --- unreadable replies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["<html>Maintenance</html>", {"contact": {}}, {"contact": {"id": 1}}],
    ids=["html", "no-id", "no-fields"],
)
def test_an_unreadable_mautic_upsert_reply_is_retried(services, windmill, body):
    """The upsert is safe to repeat: a 2xx that is not the JSON expected is tried again."""
    services.mautic.fault(status=200, body=body, path_contains="/contacts/new")
    assert main(**registered())["ok"] is True
    assert len(services.mautic.calls(path_contains="/contacts/new")) == 2
    assert len(services.mautic.contacts) == 1


def test_an_unreadable_twenty_reply_is_retried_then_reported(services, windmill):
    services.twenty.fault(status=201, body={"data": {}}, times=10)
    result = main(**registered())
    assert "unreadable reply from Twenty" in result["reason"]
    assert "HTTP 201 after 4 attempts" in result["reason"]
    assert result["status"] == "retry-scheduled"
    assert services.mautic.requests == []


def test_an_unreadable_campaign_add_reply_is_checked_not_repeated(services, windmill):
    """The add may have landed: membership is read before anything is sent again."""
    services.mautic.campaigns[10]["allow_restart"] = True
    services.mautic.fault(
        status=200, body="", applied=True, method="POST", path_contains="/campaigns/10/"
    )
    assert main(**registered())["ok"] is True
    contact_id = services.mautic.contact_by_email(EMAIL)["id"]
    assert services.mautic.campaign_rotations[(10, contact_id)] == 1
    assert len(services.mautic.calls(method="POST", path_contains="/campaigns/10/")) == 1
