"""A webhook delivery that fails is recorded in a job of its own, without Windmill's trigger
event, and that job fails in its place.

Windmill keeps a preprocessor's output as the job's arguments only when the whole job
succeeds (windmill-worker python_executor.rs reads args.json back after the process exits
0; a failed job is completed with `preprocessed_args: None`). A delivery whose `main` fails
therefore keeps the trigger event: every header, the SaaS's bearer token among them, the query
with Stripe's `?token=`, the body. Anyone who may see the folder's jobs could read the token
and run the script as its owner. So a delivery's job does not fail: it queues a job carrying
only what the delivery's preprocessor handed over (the exact body, as JSON text) and the
failure's message, and that job fails with the same message, where the job history, the
workspace error handler and f/marketing/replay find it. When that job cannot be queued, the
delivery fails itself, so that no failure goes unseen.
"""

import json
import uuid
from collections.abc import Callable
from typing import Any

from f.marketing.lib.errors import MarketingError
from f.marketing.lib.job_log import log
from f.marketing.lib.job_result import JobResult
from f.marketing.lib.windmill_api import current_job_id, job_workspace

# Fixed, so that a re-run of a delivery records its failure under the same job id, once.
REFUSALS = uuid.UUID("3c7e0f55-9b2a-4d61-8f4e-a2b6c1d9e870")


class DeliveryFailed(MarketingError):
    """The failure of a webhook delivery, raised by the job that records it."""


def failure_job_id(delivery_job_id: str) -> str:
    return str(uuid.uuid5(REFUSALS, delivery_job_id))


def delivered(
    script: str, labels: list[str], work: Callable[[], dict], *, from_webhook: bool, failed: str
) -> dict:
    """The job's result: `work`'s, or for a webhook delivery that failed, its record's. A
    recording job (`failed` set) fails with the recorded message and does nothing else."""
    if failed:
        fail_as_recorded(failed)
    if not from_webhook:
        return work()
    try:
        return work()
    except Exception as exc:  # a delivery's job must not fail: it would keep the token
        return record(script, exc, labels)


def record(script: str, failure: Exception, labels: list[str]) -> dict:
    """Queue the job that fails in the delivery's place; the delivery's own result. Re-raises
    `failure` when this job is no delivery, or nothing could be queued (a local run).

    The body recorded is the one Windmill stored with this job (its trigger event's
    `raw_string`), never `main`'s `payload`: a caller that skips the preprocessor sets that
    argument, and the worker has replaced a `$var:` there with the secret it names."""
    message = failure_message(failure)
    delivery = current_job_id()
    job_id = failure_job_id(delivery or str(uuid.uuid4()))
    try:
        with job_workspace() as workspace:
            raw = _delivered_body(workspace.read_job(delivery)) if delivery else None
            if raw is None:
                raise failure  # no trigger event stored: not a delivery, so nothing to hide
            workspace.queue_job(
                script,
                {"payload": raw, "failed": json.dumps({"message": message})},
                delay=0,
                job_id=job_id,
                skip_preprocessor=True,
            )
    except MarketingError:
        raise failure from None
    unexpected = not isinstance(failure, MarketingError)
    log.warning(
        "delivery failed; recorded in job %s", job_id, exc_info=failure if unexpected else None
    )
    return JobResult(
        [*labels, "delivery-failed"],
        ok=False,
        fields={"failed": message.splitlines()[0], "failure_job": job_id},
    ).as_dict()


def _delivered_body(job: dict[str, Any]) -> str | None:
    """The exact body of a delivery, from its stored trigger event ("" without ?raw=true);
    None when the job's arguments are no trigger event."""
    event = (job.get("args") or {}).get("event") if isinstance(job.get("args"), dict) else None
    if not isinstance(event, dict) or "kind" not in event:
        return None
    raw = event.get("raw_string")
    return raw if isinstance(raw, str) else ""


def failure_message(failure: Exception) -> str:
    """The failure as the recording job states it: our own messages carry no value and no
    secret; anything else is named by its kind only."""
    if isinstance(failure, MarketingError):
        return str(failure)
    return f"{type(failure).__name__} (an unexpected error; details in the delivery's log)"


def fail_as_recorded(failed: Any) -> None:
    """In the recording job: fail with the delivery's message, doing nothing else. The message
    travels as JSON text, which Windmill never rewrites: a caller's `$var:` here would
    otherwise be the job's error, in the Runs page and the Slack alert."""
    try:
        message = json.loads(failed)["message"] if isinstance(failed, str) else None
    except (ValueError, KeyError, TypeError):
        message = None
    if not isinstance(message, str):
        raise DeliveryFailed("failed: not a recorded delivery failure (leave it empty)")
    raise DeliveryFailed(
        f"{message}\n(Failure of a webhook delivery, recorded in this job so that the "
        f"delivery's job keeps no token; replay it with f/marketing/replay.)"
    )
