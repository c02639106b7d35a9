"""f/marketing/backfill: a file of existing users into the Twenty and Mautic stand-ins, with
batch calls, the live events' rules, a checkpoint to resume from, and a dry run first."""

import json
import types

import pytest

from f.marketing.backfill import main
from f.marketing.lib.backfill_checkpoint import CHECKPOINTS
from f.marketing.lib.consent import NO_CONSENT_COMMENT
from f.marketing.lib.errors import ConfigError, JobFailed

HEADER = "email,name,plan,source,marketing_consent,churned,reason\n"


@pytest.fixture
def unpaced(windmill):
    """No pacing unless a test asks: the stand-ins are not rate limited by default."""
    windmill.resources["f/marketing/routing"]["rate_limits"] = {
        "twenty_per_minute": None,
        "mautic_per_minute": None,
    }
    windmill.write()
    return windmill


def csv_file(*rows: str) -> bytes:
    return (HEADER + "".join(f"{row}\n" for row in rows)).encode()


def users(n: int, start: int = 0, consent: str = "yes", plan: str = "pro") -> list[str]:
    return [f"user{i}@acme.com,User {i},{plan},import,{consent},," for i in range(start, start + n)]


def run(file: bytes, **options) -> dict:
    return main(file=file, dry_run=options.pop("dry_run", False), **options)


def twenty_calls(services) -> list[str]:
    return [c for c in services.calls() if "/rest/" in c]


def mautic_calls(services) -> list[str]:
    return [c for c in services.calls() if "/api/" in c]


# --- what a row does ------------------------------------------------------------------------


def test_good_rows_are_applied_and_bad_ones_reported_without_stopping_them(services, unpaced):
    result = run(
        csv_file(
            "jane@acme.com,Jane Doe,pro,ads,yes,,",
            "not-an-email,Bad,pro,ads,yes,,",
            "john@acme.com,John,free,seo,maybe,,",
            "ann@acme.com,Ann,business,partner,no,,",
        )
    )
    assert (result["rows"], result["valid"], result["invalid"]) == (4, 2, 2)
    assert result["problems"][:2] == [
        "row 2: email: not a valid email address",
        "row 3: marketing_consent: must be true or false (or yes/no, 1/0)",
    ]
    assert result["counts"]["twenty created"] == 2 and result["counts"]["mautic created"] == 2
    jane = services.twenty.person_by_email("jane@acme.com")
    assert (jane["name"]["firstName"], jane["subscriptionPlan"]) == ("Jane", "pro")
    assert services.twenty.person_by_email("john@acme.com") is None
    assert "not-an-email" not in json.dumps(result)


def test_consent_decides_segments_and_do_not_contact_as_live_events_do(services, unpaced):
    run(csv_file("jane@acme.com,Jane,pro,ads,yes,,", "ann@acme.com,Ann,pro,ads,no,,"))
    jane = services.mautic.contact_by_email("jane@acme.com")
    ann = services.mautic.contact_by_email("ann@acme.com")
    assert jane["dnc"] == [] and jane["fields"]["marketing_consent"] is True
    assert jane["id"] in services.mautic.segment_members[1]  # active
    assert jane["id"] in services.mautic.segment_members[3]  # plan-pro
    assert [(d["reason"], d["comments"]) for d in ann["dnc"]] == [(3, NO_CONSENT_COMMENT)]
    assert all(ann["id"] not in members for members in services.mautic.segment_members.values())
    assert not any(services.mautic.campaign_members.values()), "campaigns are off by default"
    assert services.slack.messages[-1]["text"].startswith("Backfill of 2 users")
    assert len(services.slack.messages) == 1, "one summary, no message per user"


def test_a_new_contact_without_consent_is_created_with_its_do_not_contact(services, unpaced):
    """In the same call: there is no moment when it could be mailed."""
    run(csv_file("ann@acme.com,Ann,pro,ads,no,,"))
    [batch] = services.mautic.calls(method="POST", path_contains="/contacts/batch/new")
    assert json.loads(batch.content)[0]["doNotContact"][0]["comments"] == NO_CONSENT_COMMENT
    assert services.mautic.calls(path_contains="/dnc/") == []


def test_existing_people_and_contacts_are_updated_keeping_what_others_set(services, unpaced):
    services.twenty.add_person("jane@acme.com", subscriptionPlan="free", jobTitle="CTO")
    bounced = {"channel": "email", "reason": 2, "comments": "bounced"}
    ann = services.mautic.add_contact("ann@acme.com", dnc=[bounced], segments=[1, 2])
    jane = services.mautic.add_contact("jane@acme.com", segments=[2, 5])  # free, churned
    result = run(csv_file("jane@acme.com,Jane,pro,ads,yes,,", "ann@acme.com,Ann,pro,ads,no,,"))

    assert result["counts"]["twenty updated"] == 1 and result["counts"]["mautic updated"] == 2
    person = services.twenty.person_by_email("jane@acme.com")
    assert (person["subscriptionPlan"], person["jobTitle"]) == ("pro", "CTO")
    members = services.mautic.segment_members
    assert jane in members[1] and jane in members[3], "active, plan-pro"
    assert jane not in members[2] and jane not in members[5], "left plan-free and churned"
    assert services.mautic.contacts[ann]["dnc"] == [bounced], "a bounce is not rewritten"
    assert ann not in members[1] and ann not in members[2], "no consent: out of every segment"


def test_consent_given_now_lifts_our_do_not_contact_only(services, unpaced):
    ours = {"channel": "email", "reason": 3, "comments": NO_CONSENT_COMMENT}
    unsubscribed = {"channel": "email", "reason": 1, "comments": "unsubscribed"}
    jane = services.mautic.add_contact("jane@acme.com", dnc=[ours])
    john = services.mautic.add_contact("john@acme.com", dnc=[unsubscribed])
    result = run(csv_file("jane@acme.com,Jane,pro,ads,yes,,", "john@acme.com,John,pro,ads,yes,,"))
    assert services.mautic.contacts[jane]["dnc"] == []
    assert services.mautic.contacts[john]["dnc"][0]["reason"] == 1
    assert john not in services.mautic.segment_members[1], "an unsubscribe still wins"
    assert result["counts"]["do-not-contact lifted"] == 1


def test_a_churned_row_records_the_churn_and_moves_to_the_churned_segment(services, unpaced):
    jane = services.mautic.add_contact("jane@acme.com", segments=[1, 3])
    run(
        HEADER.replace("\n", ",churned_at\n").encode()
        + b"jane@acme.com,Jane,pro,ads,yes,yes,too expensive,2026-10-01T09:00:00Z\n"
        + b"john@acme.com,John,pro,ads,yes,yes,,\n"
    )
    person = services.twenty.person_by_email("jane@acme.com")
    assert person["churnReason"] == "too expensive"
    assert person["churnedAt"].startswith("2026-10-01T09:00:00")
    assert services.mautic.contacts[jane]["fields"]["churn_reason"] == "too expensive"
    assert services.mautic.contacts[jane]["fields"]["churned_at"] == "2026-10-01 09:00:00"
    john = services.twenty.person_by_email("john@acme.com")
    assert john["churnedAt"] is None, "no date in the file: none made up"
    members = services.mautic.segment_members
    assert jane in members[5] and jane not in members[1] and jane not in members[3]


def test_campaigns_only_when_asked_and_never_twice(services, unpaced):
    services.mautic.campaigns[10]["allow_restart"] = True
    file = csv_file("jane@acme.com,Jane,pro,ads,yes,,", "john@acme.com,John,pro,ads,yes,yes,")
    run(file, campaigns=True)
    jane = services.mautic.contact_by_email("jane@acme.com")["id"]
    john = services.mautic.contact_by_email("john@acme.com")["id"]
    assert services.mautic.campaign_members[10] == {jane}  # onboarding
    assert services.mautic.campaign_members[12] == {john}  # win-back
    run(file, campaigns=True, restart=True)
    assert services.mautic.campaign_rotations[(10, jane)] == 1, "a restartable campaign, once"


# --- batches, faults, pace -----------------------------------------------------------------


def test_calls_are_batched(services, unpaced):
    result = run(csv_file(*users(400)))
    assert result["counts"]["twenty created"] == 400 == len(services.twenty.people)
    assert len(twenty_calls(services)) == 7  # 60 a call
    batches = services.mautic.calls(path_contains="/contacts/batch/new")
    assert [len(json.loads(b.content)) for b in batches] == [180, 180, 40]
    bulk = services.mautic.calls(path_contains="/contacts/add")
    assert len(bulk) == 6, "one bulk add per segment per chunk (active, plan-pro) x 3"
    assert result["calls"] == {"twenty": 7, "mautic": len(mautic_calls(services))}


def test_a_rate_limit_in_the_middle_is_waited_out_without_losing_rows(services, unpaced):
    services.twenty.rate_limit = 3
    services.twenty.rate_limit_headers = True
    services.twenty.reset_rate_limit()
    result = run(csv_file(*users(400)))
    assert result["counts"]["twenty created"] == 400 == len(services.twenty.people)
    assert any(s >= 1 for s in services.sleeps), "waited as Retry-After said"
    assert result["counts"].get("failed") is None


def test_a_bare_429_from_an_older_twenty_is_backed_off(services, unpaced):
    services.twenty.fault(429, times=2, path_contains="/batch/")
    run(csv_file(*users(100)))
    assert len(services.twenty.people) == 100


def test_one_person_twenty_refuses_fails_alone(services, windmill, unpaced):
    services.twenty.custom_fields["subscriptionPlan"] = "SELECT"
    services.twenty.select_options["subscriptionPlan"] = {"PRO", "FREE"}
    windmill.resources["f/marketing/routing"]["fields"] = {
        "twenty_plan_values": {"pro": "PRO", "free": "FREE", "business": "NOPE"}
    }
    windmill.write()
    rows = [*users(30), "boss@acme.com,Boss,business,ads,yes,,", *users(29, start=30)]
    result = run(csv_file(*rows))
    assert result["counts"]["twenty created"] == 59
    assert result["problems"] == [
        'row 31: twenty: Invalid value "NOPE" for field "subscriptionPlan": not one of '
        "['FREE', 'PRO']"
    ]
    assert services.mautic.contact_by_email("boss@acme.com") is None, "not half applied"
    assert len(twenty_calls(services)) <= 1 + 2 * 6, "split in halves, not one by one"


def test_an_item_mautic_refuses_is_reported_and_the_others_go_on(services, unpaced):
    services.mautic.refused["user3@acme.com"] = "email: This email is on the blocklist."
    result = run(csv_file(*users(10)))
    assert result["counts"]["mautic created"] == 9 and result["counts"]["failed"] == 1
    assert result["problems"] == ["row 4: mautic: HTTP 422: email: This email is on the blocklist."]
    assert len(services.mautic.contacts) == 9
    assert len(services.twenty.people) == 10


@pytest.mark.parametrize(
    "refused",
    [[0], [0, 1, 2], list(range(10))],
    ids=["the-first", "the-first-three", "all"],
)
def test_refused_first_items_come_back_as_a_php_list_and_the_chunk_still_completes(
    services, unpaced, refused
):
    """PHP writes `errors` as a JSON list when exactly the first items failed (#9243)."""
    for i in refused:
        services.mautic.refused[f"user{i}@acme.com"] = "email: This email is on the blocklist."
    result = run(csv_file(*users(10)))
    assert result["counts"]["failed"] == len(refused)
    assert result["problems"] == [
        f"row {i + 1}: mautic: HTTP 422: email: This email is on the blocklist." for i in refused
    ]
    assert len(services.mautic.contacts) == 10 - len(refused)
    assert result["counts"].get("mautic created", 0) == 10 - len(refused)
    again = run(csv_file(*users(10)))
    assert again.get("already_done") is True, "the chunk was checkpointed, not stuck"


def test_the_same_email_twice_in_a_file_the_later_row_wins(services, unpaced):
    result = run(csv_file("jane@acme.com,Jane,free,ads,yes,,", "jane@acme.com,Jane,pro,ads,yes,,"))
    assert services.twenty.person_by_email("jane@acme.com")["subscriptionPlan"] == "pro"
    assert result["problems"] == ["row 1: same email as row 2, which wins"]


def test_the_pace_stays_under_the_routing_rate_limits(services, windmill, monkeypatch):
    windmill.resources["f/marketing/routing"]["rate_limits"] = {
        "twenty_per_minute": 60,
        "mautic_per_minute": 120,
    }
    windmill.write()
    clock = services.clock
    monkeypatch.setattr(
        "f.marketing.lib.pacer.time", types.SimpleNamespace(monotonic=clock, sleep=clock.sleep)
    )
    start = clock.now
    result = run(csv_file(*users(600)))
    minutes = (clock.now - start) / 60
    assert result["calls"]["twenty"] == 10
    assert result["calls"]["twenty"] / minutes <= 60 and result["calls"]["mautic"] / minutes <= 120
    assert minutes >= (result["calls"]["mautic"] - 1) / 120


# --- checkpoint, resume, second runs -------------------------------------------------------


def test_a_cancelled_run_resumes_where_it_stopped_and_creates_nothing_twice(
    services, windmill, unpaced, monkeypatch
):
    """Cancelled in the middle of the second chunk, after its people and contacts were
    written but before its segments: the resume applies that chunk again, and only it."""
    from f.marketing.lib.backfill_apply import Applier

    original, chunks = Applier._segments_and_campaigns, []

    def cancelled_in_second_chunk(self, *args):
        chunks.append(1)
        if len(chunks) == 2:
            raise KeyboardInterrupt  # what a cancel looks like from inside the job
        return original(self, *args)

    monkeypatch.setattr(Applier, "_segments_and_campaigns", cancelled_in_second_chunk)
    file = csv_file(*users(500))
    with pytest.raises(KeyboardInterrupt):
        run(file)
    checkpoint = _checkpoint(windmill)
    assert checkpoint["rows_done"] == 180 and checkpoint["complete"] is False
    assert len(services.mautic.contacts) == 360, "the second chunk's contacts were written"

    monkeypatch.setattr(Applier, "_segments_and_campaigns", original)
    result = run(file)
    assert result["resumed_after_row"] == 180
    assert len(services.twenty.people) == 500 == len(services.mautic.contacts)
    assert len(services.mautic.segment_members[1]) == 500
    counts = result["counts"]
    # Twenty's part runs ahead of Mautic's: the cancelled run had created the people of the
    # chunks after the checkpoint, which the resume updates (and counts once).
    assert (counts["twenty created"], counts["twenty updated"]) == (180, 320)
    assert _checkpoint(windmill)["complete"] is True


def _checkpoint(windmill) -> dict:
    [path] = [p for p in windmill.api.resources if p.startswith(CHECKPOINTS)]
    return windmill.api.value(path)


def test_a_failed_run_says_what_was_done_and_resumes(services, windmill, unpaced):
    file = csv_file(*users(300))
    services.mautic.fault(503, times=1_000, path_contains="/contacts/batch/new")
    with pytest.raises(JobFailed) as caught:
        run(file)
    message = str(caught.value)
    assert "Mautic upsert 180 contacts failed (HTTP 503" in message
    assert "Done: no row" in message and "run the backfill again on the same file" in message
    services.mautic.faults.pending.clear()
    result = run(file)
    assert len(services.mautic.contacts) == 300 and "resumed_after_row" not in result


def test_a_second_run_over_the_same_file_changes_nothing(services, unpaced):
    file = csv_file(*users(50), "ann@acme.com,Ann,pro,ads,no,,")
    run(file)
    calls = len(services.calls())
    again = run(file)
    assert again["already_done"] is True and len(services.calls()) == calls
    assert again["counts"]["twenty created"] == 51, "what the first run did"


def test_a_restart_applies_again_and_changes_nothing_either(services, unpaced):
    file = csv_file(
        *users(50), "ann@acme.com,Ann,pro,ads,no,,", "bob@acme.com,Bob,pro,ads,yes,yes,price"
    )
    run(file)
    before = _state(services)
    result = run(file, restart=True)
    assert _state(services) == before
    assert result["counts"]["twenty updated"] == 52 and result["counts"]["mautic updated"] == 52
    assert "do-not-contact marked" not in result["counts"]


def _state(services) -> dict:
    people = {
        p["emails"]["primaryEmail"]: {k: v for k, v in p.items() if k != "updatedAt"}
        for p in services.twenty.people.values()
    }
    contacts = {
        c["fields"]["email"]: (c["fields"], [(d["reason"], d["comments"]) for d in c["dnc"]])
        for c in services.mautic.contacts.values()
    }
    segments = {k: set(v) for k, v in services.mautic.segment_members.items()}
    return {"people": people, "contacts": contacts, "segments": segments}


# --- dry run, input --------------------------------------------------------------------------


def test_the_dry_run_is_the_default_and_writes_nothing(services, windmill):
    services.twenty.add_person("user0@acme.com")
    services.mautic.add_contact("user1@acme.com")
    result = main(file=csv_file(*users(200), "bad,,,,,,"))
    assert result["dry_run"] is True
    assert [c for c in services.calls() if not c.startswith("GET")] == []
    counts = result["counts"]
    assert (counts["twenty would create"], counts["twenty would update"]) == (199, 1)
    assert (counts["mautic would create"], counts["mautic would update"]) == (199, 1)
    # 200 rows in two chunks: Twenty 3 + 1 batches; Mautic per chunk one batch and one bulk
    # add for each of two segments, plus the segments read of the one contact that exists.
    assert result["estimate"] == {
        "twenty calls": 4,
        "mautic calls": 7,
        "seconds at the rate limits": round(max(4 / 90, 7 / 300) * 60),
    }
    assert not any(p.startswith(CHECKPOINTS) for p in windmill.api.resources)


def test_json_input_and_an_object_storage_file(services, windmill, unpaced):
    rows = [{"email": f"u{i}@acme.com", "plan": "pro", "source": "s", "marketing_consent": True}
            for i in range(5)]  # fmt: skip
    windmill.api.s3["imports/users.json"] = json.dumps(rows).encode()
    result = main(s3_file={"s3": "imports/users.json"}, dry_run=False)
    assert result["counts"]["twenty created"] == 5 and result["file"] == "s3 imports/users.json"


def test_no_file_or_two_files_is_refused(services, windmill):
    with pytest.raises(ConfigError, match="either as file"):
        main()
    with pytest.raises(ConfigError, match="either as file"):
        main(file=b"x", s3_file={"s3": "a"})
