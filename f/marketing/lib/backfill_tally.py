"""What a backfill did, or a chunk of it: counts by kind, and the first problems by row (never
a value from the row). Also what a checkpoint keeps, so a resumed run reports the whole file."""

from dataclasses import dataclass, field
from typing import Any

MAX_LISTED = 200  # failures and skips listed in the result; the counts count them all


@dataclass
class Tally:
    """What a chunk did, or a run (the sum of its chunks): also what a checkpoint keeps."""

    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] = self.counts.get(what, 0) + n

    def problem(self, what: str, text: str) -> None:
        self.add(what)
        if len(self.problems) < MAX_LISTED:
            self.problems.append(text)

    def merge(self, other: "Tally") -> None:
        for what, n in other.counts.items():
            self.add(what, n)
        self.problems += other.problems[: MAX_LISTED - len(self.problems)]

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "problems": list(self.problems)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Tally":
        return cls(dict(data.get("counts") or {}), list(data.get("problems") or []))
