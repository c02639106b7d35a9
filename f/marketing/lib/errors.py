"""The few kinds of failure a job can end with, each with a message an operator can act on."""


class MarketingError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidEvent(MarketingError):
    """The event does not match the contract; raised before any downstream call."""

    def __init__(self, event: str | None, problems: list[str]) -> None:
        self.problems = problems
        what = f"{event} event" if event else "event"
        super().__init__(f"Invalid {what}: " + "; ".join(problems))


class SignatureRefused(MarketingError):
    """A webhook request whose signature does not check out; raised before any downstream
    call, since its body cannot be trusted."""


class ConfigError(MarketingError):
    """A Windmill resource is missing or malformed; raised before any downstream call."""


class ServiceError(MarketingError):
    """A service refused a request or stayed unreachable after retries.

    The message carries the service's own words and never a credential or a full URL.
    """

    def __init__(
        self,
        service: str,
        action: str,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        maybe_applied: bool = False,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        self.service = service
        self.action = action
        self.status = status
        self.transient = transient
        self.maybe_applied = maybe_applied
        self.attempts = attempts
        self.retry_after = retry_after  # what the service asked to wait, when it said
        self.rate_limited = status == 429
        self.detail = message
        super().__init__(f"{service} {action} failed{self.reason}")

    @property
    def reason(self) -> str:
        """How it failed, to follow "... failed": " (HTTP 403 after 2 attempts): Forbidden",
        or ": <detail>" when no answer came (the detail then says what happened)."""
        answer = [f"HTTP {self.status}"] if self.status is not None else []
        tries = [f"after {self.attempts} attempts"] if self.attempts > 1 else []
        said = " ".join(answer + tries)
        return f" ({said}): {self.detail}" if said else f": {self.detail}"


class JobFailed(MarketingError):
    """A required step failed; the message says what was done and what was not.

    `transient` when the cause may pass (a service down, a rate limit): a later attempt may
    succeed, after at least `retry_after` seconds if the service said so.
    """

    def __init__(
        self,
        message: str,
        summary: dict,
        *,
        transient: bool = False,
        retry_after: float | None = None,
        rate_limited: bool = False,
        service: str | None = None,
    ) -> None:
        self.summary = summary
        self.service = service  # the service whose failure ended the job
        self.transient = transient
        self.retry_after = retry_after
        self.rate_limited = rate_limited
        super().__init__(message)


class SetupIncomplete(MarketingError):
    """f/marketing/setup found something that would make events fail; the message lists it."""

    def __init__(self, message: str, result: dict) -> None:
        self.result = result
        super().__init__(message)
