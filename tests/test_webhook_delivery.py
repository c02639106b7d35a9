"""What reaches a job from a webhook, on a stand-in worker that treats arguments as Windmill's
does: it rewrites `$var:`/`$res:`/`$WM_…` strings before any code runs, passes `raw_string`
only with `?raw=true`, honours `skip_preprocessor` for any caller, and keeps the whole trigger
event (headers, the URL's token) as the arguments of a job that fails.

The event is read from its exact bytes, later attempts and replays carry it as JSON text,
and no argument a caller sets decides which hosts a job talks to.
"""

import json

import pytest

from f.marketing.handle_user_event import SCRIPT_PATH, preprocessor
from f.marketing.stripe_events import preprocessor as stripe_preprocessor
from tests.job_runner import JobRunner
from tests.test_handle_user_event import EMAIL, registered

SECRET = "twenty-secret-api-key"
STRIPE = "f/marketing/stripe_events"


@pytest.fixture
def worker(services, windmill) -> JobRunner:
    windmill.api.variables["f/marketing/twenty_api_key"] = SECRET
    return JobRunner(windmill.api, error_handler="f/marketing/on_failure")


def run(worker: JobRunner, path: str, body, **how) -> dict:
    """How the delivery ended (or the job that recorded its failure), and the delivery's job."""
    job = worker.webhook(path, body, **how)
    worker.run_all()
    return {"job": worker.windmill.jobs[job], **worker.outcome(job)}


def stored(services) -> str:
    """Everything Twenty, Mautic and Slack now hold, as one text."""
    held = [services.twenty.people, services.mautic.contacts, services.slack.messages]
    return json.dumps(held, default=str)


@pytest.mark.parametrize(
    "name",
    ["$var:f/marketing/twenty_api_key", "$WM_TOKEN", "$res:f/marketing/twenty"],
    ids=["var", "reserved", "res"],
)
def test_a_name_that_names_a_secret_is_stored_as_written_never_as_the_secret(
    services, windmill, worker, name
):
    # A `$var:` elsewhere in the body makes the worker walk it, so `$WM_TOKEN` is rewritten too.
    body = registered(name=name, source="$var:f/marketing/twenty_api_key")
    outcome = run(worker, SCRIPT_PATH, body)

    assert outcome["success"], outcome
    person = services.twenty.person_by_email(EMAIL)
    assert person["name"]["firstName"] == name
    assert services.mautic.contact_by_email(EMAIL)["fields"]["firstname"] == name
    held = stored(services)
    assert SECRET not in held and windmill.api.token not in held
    assert services.twenty.api_key not in held


def test_the_stand_in_worker_rewrites_the_parsed_body_as_windmill_does(windmill):
    """A test of the stand-in: the parsed body that an older preprocessor read from is
    rewritten, strings in it that start with `$` included; the raw text next to it is not."""
    windmill.api.variables["f/x"] = SECRET
    body = registered(name="$WM_TOKEN", source="$var:f/x")
    args = {"event": {"kind": "webhook", "body": body, "raw_string": json.dumps(body)}}
    rewritten = windmill.api.rewrite_args(args, {"id": "job-1"})["event"]
    assert rewritten["body"]["name"] == windmill.api.token
    assert rewritten["body"]["source"] == SECRET
    assert json.loads(rewritten["raw_string"]) == body
    untouched = {"event": {"body": {"name": "$WM_TOKEN"}}}  # no $var:/$res: anywhere
    assert windmill.api.rewrite_args(untouched, {"id": "job-1"}) == untouched


def test_an_unknown_path_fails_the_job_before_any_code_and_replay_recovers_the_event(
    services, windmill, worker
):
    body = registered(name="$var:f/marketing/no_such_variable")
    outcome = run(worker, SCRIPT_PATH, body)
    assert outcome["success"] is False
    assert (
        "Variable f/marketing/no_such_variable not found" in outcome["result"]["error"]["message"]
    )
    assert services.total_calls == 1, "only the failure alert"
    # Before any code ran: Windmill keeps the trigger event, the URL's token in it.
    assert outcome["job"]["args"]["event"]["query"]["token"] == "webhook-token"
    # Windmill keeps the trigger event as the failed job's arguments; replay takes its raw body.
    replay = worker.webhook("f/marketing/replay", {"since": "2026-11-29T00:00:00Z",
                                                   "confirm": True})  # fmt: skip
    worker.windmill.jobs[replay]["skip_preprocessor"] = True
    worker.run_all()
    assert worker.results[replay]["result"]["counts"] == {"queued": 1}
    assert services.twenty.person_by_email(EMAIL)["name"]["firstName"] == body["name"]


def test_a_webhook_url_without_raw_true_is_refused_before_any_call(services, windmill, worker):
    outcome = run(worker, SCRIPT_PATH, registered(), raw=None)
    assert outcome["success"] is False
    message = outcome["result"]["error"]["message"]
    assert "the webhook URL needs ?raw=true" in message and EMAIL not in message
    assert services.twenty.people == {} and services.mautic.contacts == {}


@pytest.mark.parametrize(
    "event",
    [None, [], "text", {"kind": "webhook"}, {"raw_string": 7}, {"raw_string": "not json"}],
    ids=["none", "list", "text", "no-raw", "raw-not-text", "raw-not-json"],
)
def test_the_preprocessors_never_fail(event):
    """A failed preprocessor keeps the trigger event, the token with it, as the job's args."""
    for pre in (preprocessor, stripe_preprocessor):
        assert isinstance(pre(event), dict)


@pytest.mark.parametrize(
    "body",
    [registered(email="not-an-email"), ["not", "an", "object"]],
    ids=["invalid-event", "not-an-object"],
)
def test_a_failed_delivery_keeps_no_token_its_failure_is_a_job_of_its_own(
    services, windmill, worker, body
):
    """Windmill stores the preprocessor's output as a job's args only when the job succeeds:
    a delivery that failed would keep every header, the bearer token among them. So the
    delivery ends well, and a job carrying only the exact body fails in its place."""
    delivery = worker.webhook(SCRIPT_PATH, body, headers={"Authorization": "Bearer tok-123"})
    worker.run_all()
    job = worker.windmill.jobs[delivery]
    assert worker.results[delivery]["success"] is True
    assert set(job["args"]) == {"payload", "from_webhook"}
    assert "tok-123" not in json.dumps(job["args"])
    result = worker.results[delivery]["result"]
    assert result["ok"] is False and "delivery-failed" in result["wm_labels"]
    recorded = worker.windmill.jobs[result["failure_job"]]
    assert recorded["skip_preprocessor"] and set(recorded["args"]) == {"payload", "failed"}
    assert "tok-123" not in json.dumps(recorded["args"])
    assert worker.results[recorded["id"]]["success"] is False
    message = worker.outcome(delivery)["result"]["error"]["message"]
    assert "Failure of a webhook delivery" in message
    assert len([m for m in services.slack.messages if "failed" in m["text"]]) == 1, "one alert"
    assert services.twenty.people == {} and services.mautic.contacts == {}


def test_a_re_run_of_a_failed_delivery_fails_itself_and_records_nothing_more(
    services, windmill, worker
):
    """A re-run has the stored arguments (the exact body), no trigger event: nothing to hide."""
    delivery = worker.webhook(SCRIPT_PATH, registered(email="not-an-email"))
    worker.run_all()
    job = worker.windmill.jobs[delivery]
    job.update(state="queued", skip_preprocessor=True)  # "Run again" with its stored args
    worker.run_all()
    assert worker.results[delivery]["success"] is False
    assert set(job["args"]) == {"payload", "from_webhook"}
    recorded = [j for j in worker.windmill.jobs.values() if "failed" in j["args"]]
    assert len(recorded) == 1


def test_a_caller_claiming_a_webhook_cannot_have_a_secret_copied_into_a_new_job(
    services, windmill, worker
):
    """With skip_preprocessor a caller sets from_webhook and payload; the worker puts the
    secret in payload. The failure is recorded from the job's stored arguments, never from
    payload: here there is no trigger event, so nothing is recorded and the job fails."""
    job = worker.webhook(
        SCRIPT_PATH, {"payload": "$var:f/marketing/twenty_api_key", "from_webhook": True}
    )
    worker.windmill.jobs[job]["skip_preprocessor"] = True
    worker.run_all()
    assert worker.results[job]["success"] is False
    assert SECRET not in json.dumps(worker.windmill.jobs, default=str)
    assert SECRET not in json.dumps(worker.results, default=str)


def test_replay_of_must_be_a_job_id(services, windmill, worker):
    """It is copied into the next attempt's arguments, where a `$var:` would have become the
    secret it names."""
    services.mautic.fault(503, times=4, path_contains="/contacts/new")
    job = worker.webhook(SCRIPT_PATH, {"payload": json.dumps(registered()),
                                       "replay_of": "$var:f/marketing/twenty_api_key"})  # fmt: skip
    worker.windmill.jobs[job]["skip_preprocessor"] = True
    worker.run_all()
    assert "replay_of: not a job id" in worker.results[job]["result"]["error"]["message"]
    assert SECRET not in json.dumps(worker.windmill.jobs, default=str)


def test_skip_preprocessor_cannot_bring_resources_or_a_dry_run_to_a_webhook_job(
    services, windmill, worker
):
    """Anyone who may run the script may skip its preprocessor; main takes no resource."""
    forged = {
        "payload": json.dumps(registered()),
        "twenty": {
            "base_url": "https://twenty.attacker.test",
            "api_key": "$var:f/marketing/twenty_api_key",
        },  # the real key, elsewhere
        "slack": {"webhook_url": "https://hooks.slack.com/services/T666/B666/elsewhere"},
    }
    job = worker.webhook(SCRIPT_PATH, forged)
    worker.windmill.jobs[job]["skip_preprocessor"] = True
    worker.run_all()
    assert worker.results[job]["success"], worker.results[job]
    assert services.twenty.person_by_email(EMAIL) is not None
    assert not [c for c in services.calls() if "attacker" in c or "T666" in c]


def test_skip_preprocessor_cannot_point_stripe_events_at_another_stripe(services, windmill, worker):
    """A body with its own `stripe` resource and a made-up event: the event is read back from
    the workspace's Stripe, which has never heard of it, and nothing is applied."""
    windmill.api.put("f/marketing/stripe", {"signing_secret": "whsec_x", "api_key": "rk_test_x",
                                            "api_base_url": "https://stripe.invalid"})  # fmt: skip
    made_up = {"id": "evt_forged", "object": "event", "type": "customer.subscription.updated"}
    forged = {
        "payload": json.dumps(made_up),
        "stripe": {"signing_secret": "whsec_y", "api_key": "rk_test_y",
                   "api_base_url": "https://stripe.attacker.test"},
    }  # fmt: skip
    # The other Stripe would vouch for the event, if it were ever asked.
    attacker = services.router.route(host="stripe.attacker.test").respond(200, json=made_up)
    job = worker.webhook(STRIPE, forged)
    worker.windmill.jobs[job]["skip_preprocessor"] = True
    worker.run(worker.take())
    assert attacker.calls.call_count == 0
    assert services.twenty.people == {} and services.mautic.contacts == {}


def test_a_caller_skipping_the_preprocessor_cannot_have_a_secret_written_or_shown(
    services, windmill, worker
):
    """With skip_preprocessor, the body's keys are main's arguments and the worker rewrites
    them: fields as separate arguments would carry the secret into Twenty or a dry run's
    plan. main takes the event only as JSON text, and a `failed` message only as JSON text."""
    for forged in [
        registered(name="$var:f/marketing/twenty_api_key"),  # fields: not main's arguments
        {"payload": "$var:f/marketing/twenty_api_key", "dry_run": True},
        {"payload": json.dumps(registered()), "failed": "$var:f/marketing/twenty_api_key"},
    ]:
        job = worker.webhook(SCRIPT_PATH, forged)
        worker.windmill.jobs[job]["skip_preprocessor"] = True
        worker.run_all()
        assert SECRET not in json.dumps(worker.results[job], default=str)
    assert SECRET not in stored(services)
    assert services.twenty.people == {} and services.mautic.contacts == {}


def test_a_stripe_payload_that_a_caller_made_a_secret_is_never_sent_or_shown(
    services, windmill, worker
):
    windmill.api.variables["f/marketing/stripe_signing_secret"] = "whsec_TheRealSecret123"
    windmill.api.put("f/marketing/stripe", {"signing_secret": "whsec_x", "api_key": "rk_test_x",
                                            "api_base_url": "https://stripe.test"})  # fmt: skip
    stripe = services.router.route(host="stripe.test").respond(404, json={"error": {}})
    job = worker.webhook(STRIPE, {"payload": "$var:f/marketing/stripe_signing_secret"})
    worker.windmill.jobs[job]["skip_preprocessor"] = True
    worker.run_all()
    assert stripe.calls.call_count == 0, "not an evt_ id: never put in a URL"
    assert "whsec_TheRealSecret123" not in json.dumps(worker.results, default=str)
