"""Run an event's steps in order; a failed required step ends the job with a message that says
what was done and what was not, and whether a later attempt may succeed."""

import httpx

from f.marketing.lib.errors import JobFailed, MarketingError, ServiceError
from f.marketing.lib.job_log import log
from f.marketing.lib.job_result import JobResult, StepResult
from f.marketing.lib.steps import Context, Step


def run(steps: list[Step], ctx: Context, event_name: str) -> list[StepResult]:
    """Run steps in order; a failed required step raises JobFailed naming done and not done."""
    results: list[StepResult] = []
    for index, step in enumerate(steps):
        try:
            status, detail = step.run(ctx)
        except Exception as exc:
            reason = _reason(step, exc)
            results.append(_result(step, "failed", reason.lstrip(": ").strip()))
            log.warning("%s %s: failed", step.service, step.action)
            if not step.required:
                continue
            not_run = [_result(s, "not run", "an earlier step failed") for s in steps[index + 1 :]]
            cause = exc if isinstance(exc, ServiceError) else None
            raise JobFailed(
                _failure_message(event_name, step, reason, results, not_run),
                JobResult([event_name], event_name, ok=False, steps=results + not_run).as_dict(),
                transient=bool(cause and cause.transient),
                retry_after=cause.retry_after if cause else None,
                rate_limited=bool(cause and cause.rate_limited),
                service=cause.service if cause else None,
            ) from None
        results.append(_result(step, status, detail))
        log.info("%s %s: %s", step.service, step.action, status)
    return results


def _result(step: Step, status: str, detail: str) -> StepResult:
    return StepResult(step.service, step.action, status, detail)


def _failure_message(
    event_name: str,
    step: Step,
    reason: str,
    results: list[StepResult],
    not_run: list[StepResult],
) -> str:
    done = [f"{r.name} ({r.status})" for r in results[:-1]]
    lines = [
        f"{event_name}: {step.service} {step.action} failed{reason}",
        "Done: " + ("; ".join(done) or "nothing"),
        "Not done: " + ("; ".join(r.name for r in not_run) or "nothing"),
        "Every step is idempotent: re-run the job once the cause is fixed.",
    ]
    return "\n".join(lines)


def _reason(step: Step, exc: BaseException) -> str:
    """Why a step failed, said once: the call's own action only when it is not the step's."""
    if isinstance(exc, ServiceError):
        return exc.reason if exc.action == step.action else f": {exc.action}{exc.reason}"
    return f": {safe_reason(exc)}"


def safe_reason(exc: BaseException) -> str:
    """An error's text, unless it could carry a URL (httpx errors): then only its kind."""
    if isinstance(exc, MarketingError):
        return str(exc)
    if isinstance(exc, httpx.HTTPError | httpx.InvalidURL):
        return f"{type(exc).__name__} (details withheld: they may contain a URL)"
    return f"{type(exc).__name__}: {exc}"
