"""What an event job returns, whatever became of the event: one shape for every outcome (run,
planned, skipped, waiting for a later attempt, failed at delivery), so that the runs list, the
error handler and f/marketing/replay read each job alike.

- `event`: the contract event's name, once the body is one;
- `ok`: whether the event went through (a dry run says `dry_run` instead);
- what the outcome adds (an attempt's number, the next attempt's time, the plan of a dry run);
- `steps`: each step's service, action, status and detail;
- `notes`: what the operator should know; `wm_labels`: what Windmill's runs list shows.
"""

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepResult:
    """How one step ended."""

    service: str
    action: str
    status: str  # created, updated, done, skipped, uncertain, failed, not run
    detail: str

    @property
    def name(self) -> str:
        return f"{self.service} {self.action}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class JobResult:
    labels: list[str]
    event: str | None = None
    ok: bool | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    steps: list[StepResult] | None = None
    notes: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.event is not None:
            result["event"] = self.event
        if self.ok is not None:
            result["ok"] = self.ok
        result |= self.fields
        if self.steps is not None:
            result["steps"] = [step.as_dict() for step in self.steps]
        if self.notes is not None:
            result["notes"] = list(self.notes)
        return result | {"wm_labels": list(self.labels)}
