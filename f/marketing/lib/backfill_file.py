"""The users of a backfill file, read one at a time and checked against the event contract.

A file is CSV with a header row, or JSON: an array of objects or one object per line (JSON
Lines). Either is read as a stream, so memory does not grow with the number of rows. Each row
stands for a user as they are now: their registration (email, name, plan, source, marketing
consent) and, when `churned`, their churn (reason). A row that breaks the contract is reported
by its number and fields, never by its values, and skipped.
"""

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from f.marketing.lib.backfill_tally import Tally
from f.marketing.lib.contract import UserChurned, UserRegistered, parse_event
from f.marketing.lib.errors import InvalidEvent, MarketingError

COLUMNS = (
    "email",
    "name",
    "plan",
    "source",
    "marketing_consent",
    "churned",
    "reason",
    "signed_up_at",
    "churned_at",
)
# The contract's own (camelCase) names are accepted too, for files made from event bodies.
ALIASES = {
    "marketingConsent": "marketing_consent",
    "signedUpAt": "signed_up_at",
    "churnedAt": "churned_at",
}
TRUE = {"true", "yes", "1", "y"}
FALSE = {"false", "no", "0", "n"}
CHUNK = 64 * 1024
MAX_ROW = 1024 * 1024


class Readable(Protocol):
    """What a file is read through: an open file, an S3 download, bytes in memory."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class User:
    """One valid row: the registration it stands for, and the churn when there is one."""

    number: int
    registered: UserRegistered
    churned: UserChurned | None = None
    # Without a churned_at the contract gets the run's time, but no churn date is written.
    churn_dated: bool = True

    @property
    def email(self) -> str:
        return self.registered.email


@dataclass(frozen=True)
class BadRow:
    number: int
    problems: list[str]

    def text(self) -> str:
        return f"row {self.number}: " + "; ".join(self.problems)


class BadFile(MarketingError):
    """The file as a whole cannot be read (format, header): no row after the problem is read."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"Backfill file: {problem}")


def read_users(stream: Readable, kind: str, now: datetime | None = None) -> Iterator[User | BadRow]:
    """Every row of the file, in order, as a User or a BadRow. `kind` is csv, json or auto.
    `stream` needs only `read(n)`: an open file, an S3 reader, bytes in memory."""
    now = now or datetime.now(UTC)
    buffered = io.BufferedReader(_Raw(stream), CHUNK)
    first = _skip_blank_start(buffered)
    if kind == "auto":
        kind = "json" if first in ("[", "{") else "csv"
    text = io.TextIOWrapper(buffered, encoding="utf-8", newline="")
    records = _csv_records(text) if kind == "csv" else _json_records(text)
    for number, record in records:
        yield check_row(number, record, now)


def check_row(number: int, record: Any, now: datetime) -> User | BadRow:
    """The contract's checks, plus the backfill's own columns (churned, dates)."""
    if isinstance(record, _Unfit):
        return BadRow(number, [record.problem])
    if not isinstance(record, dict):
        return BadRow(number, ["not an object with the columns " + ", ".join(COLUMNS)])
    # A blank cell is a missing value ("plan: required"), as a spreadsheet user means it.
    row = {ALIASES.get(str(k), str(k)): _blank_is_none(v) for k, v in record.items()}
    problems = [f"{key}: not a column of a backfill row" for key in row if key not in COLUMNS]
    consent = _boolean(row.get("marketing_consent"), "marketing_consent", problems)
    churned = _boolean(row.get("churned"), "churned", problems, default=False)
    registered = _event(
        {
            "event": "user.registered",
            "email": row.get("email"),
            "name": row.get("name"),
            "plan": row.get("plan"),
            "source": row.get("source"),
            "marketingConsent": consent,
            "timestamp": row.get("signed_up_at") or now.isoformat(),
        },
        problems,
    )
    churn = None
    if churned:
        churn = _event(
            {
                "event": "user.churned",
                "email": row.get("email"),
                "reason": row.get("reason"),
                "timestamp": row.get("churned_at") or now.isoformat(),
            },
            problems,
            skip={"email"},  # said once, by the registration
        )
    elif row.get("reason") is not None:
        problems.append("reason: given for a user who has not churned")
    if problems or not isinstance(registered, UserRegistered):
        return BadRow(number, list(dict.fromkeys(problems)))
    churn = churn if isinstance(churn, UserChurned) else None
    return User(number, registered, churn, churn_dated=row.get("churned_at") is not None)


def _event(body: dict[str, Any], problems: list[str], skip: AbstractSet[str] = frozenset()) -> Any:
    """The contract's verdict, its problems named by the file's columns; a column already
    reported (a consent that is not a yes or no) is not reported twice."""
    try:
        return parse_event(body)
    except InvalidEvent as exc:
        renamed = {"marketingConsent": "marketing_consent", "timestamp": _date_column(body)}
        reported = {problem.partition(":")[0] for problem in problems}
        for problem in exc.problems:
            field, _, what = problem.partition(": ")
            column = renamed.get(field, field)
            if field not in skip and column not in reported:
                problems.append(f"{column}: {what}")
        return None


def _date_column(body: dict[str, Any]) -> str:
    return "churned_at" if body["event"] == "user.churned" else "signed_up_at"


def _boolean(value: Any, column: str, problems: list[str], default: bool | None = None) -> Any:
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is None:
            problems.append(f"{column}: required")
        return default
    word = str(value).strip().lower()
    if word in TRUE or word in FALSE:
        return word in TRUE
    problems.append(f"{column}: must be true or false (or yes/no, 1/0)")
    return default


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class _Raw(io.RawIOBase):
    """Any `read(n)` as the raw stream a BufferedReader wants (S3 readers have no peek)."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _skip_blank_start(buffered: "io.BufferedReader[_Raw]") -> str:
    """Consume a byte-order mark and leading white space; return the next character."""
    while True:
        ahead = buffered.peek(CHUNK)
        stripped = ahead.lstrip(b" \t\r\n\xef\xbb\xbf")
        if stripped or not ahead:
            buffered.read(len(ahead) - len(stripped))
            return stripped[:1].decode("ascii", "replace")
        buffered.read(len(ahead))


def _csv_records(text: io.TextIOWrapper) -> Iterator[tuple[int, "dict[str, Any] | _Unfit"]]:
    reader = csv.reader(text)
    header = next(reader, None)
    if not header:
        raise BadFile("the file is empty: a CSV needs a header row naming its columns")
    names = [ALIASES.get(h.strip(), h.strip()) for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown or "email" not in names:
        raise BadFile(
            f"CSV header: {', '.join(unknown) or 'no email column'}: expected the columns "
            f"{', '.join(COLUMNS)} (name, churned, reason and the dates are optional)"
        )
    # Rows are numbered by record from 1, as a spreadsheet numbers them less its header row:
    # a quoted cell may hold line breaks, so a line count would shift every later row.
    for number, values in enumerate(reader, start=1):
        if not any(v.strip() for v in values):
            continue  # a blank row
        if len(values) != len(names):
            yield number, _Unfit(f"{len(values)} values for {len(names)} columns")
            continue
        yield number, dict(zip(names, values, strict=True))


@dataclass(frozen=True)
class _Unfit:
    """A CSV record whose cells do not fit the header: what is wrong, never its values."""

    problem: str


def _json_records(text: io.TextIOWrapper) -> Iterator[tuple[int, Any]]:
    """Objects of a JSON array or of JSON Lines, decoded as they stream in."""
    decoder = json.JSONDecoder()
    buffer, position, number = "", 0, 0
    started = ended = exhausted = False
    while True:
        while position < len(buffer) and buffer[position] in " \t\r\n,":
            position += 1
        if position < len(buffer):
            if not started and buffer[position] == "[":
                started, position = True, position + 1
                continue
            started = True
            if buffer[position] == "]" and not ended:
                ended, position = True, position + 1
                continue
            if ended:
                raise BadFile("JSON: something follows the closing ] of the array")
            try:
                record, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                end = -1
            # A value that ends where the text read so far ends may go on in the next chunk.
            if end != -1 and (end < len(buffer) or exhausted):
                number += 1
                yield number, record
                position = end
                continue
            if exhausted or len(buffer) - position > MAX_ROW:
                raise BadFile(f"JSON: row {number + 1} is not valid JSON (or over 1 MB)")
        elif exhausted:
            return
        more = text.read(CHUNK)
        exhausted = not more
        buffer, position = buffer[position:] + more, 0


class Scan:
    """The first pass: counts, the bad rows, and the file's fingerprint (for its checkpoint)."""

    def __init__(self) -> None:
        self.rows = self.valid = self.invalid = 0
        self.bad: Tally = Tally()
        self.digest = ""

    @classmethod
    def of(cls, stream: Readable, kind: str, now: datetime) -> "Scan":
        scan, hashing = cls(), _Hashing(stream)
        for row in read_users(hashing, kind, now):
            scan.rows += 1
            if isinstance(row, BadRow):
                scan.invalid += 1
                scan.bad.problem("invalid", row.text())
            else:
                scan.valid += 1
        scan.digest = hashing.sha.hexdigest()
        return scan


class _Hashing:
    def __init__(self, stream: Readable) -> None:
        self.stream, self.sha = stream, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha.update(data)
        return data
