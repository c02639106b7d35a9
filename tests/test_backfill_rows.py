"""Reading a backfill file: CSV or JSON, streamed, each row checked by the event contract."""

import io
import json
from datetime import UTC, datetime

import pytest

from f.marketing.lib.backfill_file import BadFile, BadRow, User, read_users

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HEADER = "email,name,plan,source,marketing_consent,churned,reason,churned_at\n"


def read(data: str | bytes, kind: str = "auto") -> list[User | BadRow]:
    raw = data.encode() if isinstance(data, str) else data
    return list(read_users(io.BytesIO(raw), kind, NOW))


def test_a_csv_row_becomes_a_registration_and_maybe_a_churn():
    [jane, john] = read(
        HEADER
        + "Jane@Acme.com ,Jane Doe,pro,google-ads,yes,,,\n"
        + 'john@acme.com,"Doe, John",free,seo,0,TRUE,"too expensive, really",2026-10-01T09:00:00Z\n'
    )
    assert isinstance(jane, User) and jane.number == 1 and jane.churned is None
    assert (jane.email, jane.registered.plan, jane.registered.marketingConsent) == (
        "jane@acme.com", "pro", True
    )  # fmt: skip
    assert jane.registered.timestamp == NOW, "no date: the run's"
    assert isinstance(john, User) and john.registered.name == "Doe, John"
    assert john.churned is not None and john.churned.reason == "too expensive, really"
    assert john.churned.timestamp == datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def test_bad_rows_are_reported_by_number_and_column_without_their_values():
    rows = read(
        HEADER
        + "not-an-email,,pro,ads,maybe,,,\n"
        + "ok@acme.com,,,ads,yes,,,\n"
        + "fine@acme.com,,pro,ads,no,,left,\n"
        + "late@acme.com,,pro,ads,yes,yes,,yesterday\n"
        + "good@acme.com,,pro,ads,yes,,,\n"
    )
    bad = {r.number: r.problems for r in rows if isinstance(r, BadRow)}
    assert bad == {
        1: ["marketing_consent: must be true or false (or yes/no, 1/0)",
            "email: not a valid email address"],
        2: ["plan: required"],
        3: ["reason: given for a user who has not churned"],
        4: ["churned_at: input should be a valid datetime or date, input is too short"],
    }  # fmt: skip
    assert [r.number for r in rows if isinstance(r, User)] == [5]
    assert "not-an-email" not in json.dumps(bad) and "maybe" not in json.dumps(bad)


def test_a_quoted_cell_with_line_breaks_keeps_every_later_row_number():
    rows = read(
        HEADER
        + 'one@acme.com,"Jane\nDoe",pro,ads,yes,,,\n'
        + 'two@acme.com,,pro,ads,yes,yes,"too\r\nexpensive\n\nreally",\n'
        + "bad,,pro,ads,yes,,,\n"
        + "four@acme.com,,pro,ads,yes,,,\n"
    )
    numbers = {r.number: type(r).__name__ for r in rows}
    assert numbers == {1: "User", 2: "User", 3: "BadRow", 4: "User"}


def test_a_row_with_too_few_or_too_many_cells_says_how_many():
    rows = read(HEADER + "short@acme.com,,pro\n" + "ok@acme.com,,pro,ads,yes,,,,extra\n")
    assert [(r.number, r.problems) for r in rows if isinstance(r, BadRow)] == [
        (1, ["3 values for 8 columns"]),
        (2, ["9 values for 8 columns"]),
    ]


def test_json_arrays_and_json_lines_read_alike():
    users = [
        {"email": f"u{i}@acme.com", "plan": "pro", "source": "s", "marketingConsent": i % 2 == 0}
        for i in range(3)
    ]
    as_array = read(json.dumps(users, indent=2))
    as_lines = read("\n".join(json.dumps(u) for u in users) + "\n")
    for rows in (as_array, as_lines):
        assert [(r.number, r.email, r.registered.marketingConsent) for r in rows] == [
            (1, "u0@acme.com", True), (2, "u1@acme.com", False), (3, "u2@acme.com", True)
        ]  # fmt: skip


def test_a_json_row_that_is_not_an_object_or_has_other_keys_is_a_bad_row():
    rows = read('[{"email": "a@acme.com", "plan": "p", "source": "s", '
                '"marketing_consent": true, "phone": "1"}, 7]')  # fmt: skip
    assert [r.problems for r in rows] == [
        ["phone: not a column of a backfill row"],
        ["not an object with the columns email, name, plan, source, marketing_consent, "
         "churned, reason, signed_up_at, churned_at"],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "the file is empty"),
        ("mail,plan\nx,y\n", "CSV header: mail: expected the columns email"),
        ('[{"email": "a@acme.com"', "row 1 is not valid JSON"),
        ('[{"email": "a@acme.com", "plan": "p", "source": "s", "marketing_consent": true}] x',
         "something follows the closing ]"),
    ],
)  # fmt: skip
def test_a_file_that_cannot_be_read_says_why(data, message):
    with pytest.raises(BadFile, match=message):
        read(data)


def test_a_byte_order_mark_and_leading_blank_lines_are_fine():
    rows = read(b"\xef\xbb\xbf\n\n" + (HEADER + "a@acme.com,,pro,ads,yes,,,\n").encode())
    assert [r.email for r in rows] == ["a@acme.com"]


def test_the_kind_can_be_forced():
    with pytest.raises(BadFile):
        read("email,plan\n", kind="json")
