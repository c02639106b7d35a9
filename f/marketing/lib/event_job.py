"""One contract event as a Windmill job: plan its steps, run them, and when a service failed
for a while, queue the next attempt instead of failing (lib/later_attempts.py).

Shared by the scripts that turn something into a contract event: handle_user_event (the
SaaS's own webhook) and stripe_events (Stripe's). Each says how its next attempt is queued.
"""

from dataclasses import dataclass, field

from f.marketing.lib.contract import Event
from f.marketing.lib.errors import JobFailed
from f.marketing.lib.job_log import log
from f.marketing.lib.job_result import JobResult
from f.marketing.lib.later_attempts import Later
from f.marketing.lib.plan import plan as plan_steps
from f.marketing.lib.run_steps import run
from f.marketing.lib.settings import Settings
from f.marketing.lib.steps import Context


@dataclass
class EventJob:
    event: Event
    settings: Settings
    later: Later
    notes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # besides the event's name

    def handle(self, dry_run: bool) -> dict:
        """The job's result: the dry-run plan, the steps run, or the next attempt queued."""
        parsed = self.event
        steps = plan_steps(
            parsed,
            self.settings.routing,
            slack_enabled=self.settings.slack is not None,
            slack_problem=self.settings.slack_problem,
        )
        if dry_run:
            log.info("%s: dry run, %d steps planned, no call made", parsed.event, len(steps))
            return JobResult(
                [parsed.event, *self.labels, "dry-run"],
                parsed.event,
                fields={"dry_run": True, "would_call": [step.describe() for step in steps]},
                notes=self.notes,
            ).as_dict()
        services = list(dict.fromkeys(step.service for step in steps))
        queued = self.later.behind_the_line(services, parsed.event, self.notes, self.labels)
        if queued is not None:
            return queued
        try:
            with Context.connect(self.settings, self.later.resources) as ctx:
                results = run(steps, ctx, parsed.event)
        except JobFailed as failed:
            if not failed.transient:
                raise
            return self.later.queue(failed, parsed.event, self.notes, self.labels)

        labels = [parsed.event, *self.labels]
        for result in results:
            if result.status in {"failed", "uncertain"}:
                self.notes.append(f"{result.name}: {result.detail}")
                labels.append(f"{result.service}-{result.status}")
        return JobResult(
            labels,
            parsed.event,
            ok=True,
            fields={"attempt": self.later.attempt.number},
            steps=results,
            notes=self.notes + ctx.notes,
        ).as_dict()
