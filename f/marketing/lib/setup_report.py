"""What f/marketing/setup found: one Check per thing checked (ok, fixed, warning or failed,
with the exact fix), and the Report that lists them, as log lines and as the job's result."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from f.marketing.lib.errors import MarketingError, ServiceError


@dataclass
class Check:
    service: str
    subject: str
    status: str  # ok | fixed | warning | failed
    detail: str = ""
    fix: str = ""
    blocking: bool = True
    by_apply: bool = False  # what setup with apply adds

    def line(self) -> str:
        text = f"{self.status.upper():8} {self.service:8} {self.subject}"
        text += f": {self.detail}" if self.detail else ""
        return text + (f"\n{'':18}fix: {self.fix}" if self.fix else "")


@dataclass
class Report:
    apply: bool
    checks: list[Check] = field(default_factory=list)

    def add(self, service: str, subject: str, status: str, detail: str = "", **kw: Any) -> None:
        self.checks.append(Check(service, subject, status, detail, **kw))

    def for_apply(self, service: str, subject: str, missing: str, by_hand: str) -> None:
        """Something missing that apply adds (the check ran without apply)."""
        fix = f"run setup with apply, or {by_hand}"
        self.add(service, subject, "failed", missing, fix=fix, by_apply=True)

    def attempt(
        self, service: str, subject: str, action: Callable[[], object], blocking: bool = True
    ) -> bool:
        """Run a check that calls a service; a refusal becomes a failed check, not a crash."""
        try:
            action()
        except MarketingError as exc:
            self.add(service, subject, "failed", str(exc), fix=fix_for(exc), blocking=blocking)
            return False
        return True

    @property
    def blocking(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed" and c.blocking]

    def advice(self) -> str:
        """What to do about the blocking checks: apply only where apply can help."""
        if self.apply:
            return "after apply: fix them as each says"
        by_apply = [c.by_apply for c in self.blocking]
        if all(by_apply):
            return "run with apply to add what is missing"
        if any(by_apply):
            return "run with apply to add what is missing; fix the others as each says"
        return "fix them as each says: apply does not add these"

    def counts(self) -> str:
        statuses = ["ok", "fixed", "warning", "failed"]
        return ", ".join(f"{sum(c.status == s for c in self.checks)} {s}" for s in statuses)

    def text(self) -> str:
        return "\n".join([*(c.line() for c in self.checks), self.counts()])

    def result(self) -> dict[str, Any]:
        return {
            "ok": not self.blocking,
            "apply": self.apply,
            "summary": self.counts(),
            "checks": [asdict(c) for c in self.checks],
            "wm_labels": ["setup", "ok" if not self.blocking else "setup-failed"],
        }


def fix_for(exc: MarketingError) -> str:
    if isinstance(exc, ServiceError) and exc.status == 401:
        return f"check the {exc.service} credentials in their resource"
    if isinstance(exc, ServiceError) and exc.status is None:
        return f"check the {exc.service} base_url and that this worker can reach it"
    return ""
