"""The stand-ins behave like the services (the README's "API facts relied on" names the
upstream files): statuses, envelopes, upsert semantics, quirks and refusals.

Each test talks to a mounted fake through a plain httpx.Client, as a client under test would.
"""

import base64
import hashlib
import hmac
import json

import httpx
import pytest
import respx

from tests.fakes import FakeMautic, FakeSlackApi, FakeSlackWebhook, FakeStripe, FakeTwenty

TWENTY_AUTH = {"Authorization": "Bearer twenty-test-key"}
MAUTIC_AUTH = {"Authorization": "Basic " + base64.b64encode(b"api-user:api-pass").decode()}
SLACK_AUTH = {"Authorization": "Bearer xoxb-test-token"}


@pytest.fixture
def router():
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def twenty(router) -> FakeTwenty:
    fake = FakeTwenty(select_options={"tier": {"PRO", "FREE"}})
    fake.custom_fields["tier"] = "SELECT"
    fake.mount(router)
    return fake


@pytest.fixture
def mautic(router) -> FakeMautic:
    fake = FakeMautic()
    fake.mount(router)
    return fake


@pytest.fixture
def tw(twenty):
    with httpx.Client(base_url=twenty.base_url, headers=TWENTY_AUTH) as client:
        yield client


@pytest.fixture
def mc(mautic):
    with httpx.Client(base_url=mautic.base_url, headers=MAUTIC_AUTH) as client:
        yield client


def upsert(tw: httpx.Client, email: str, **fields) -> httpx.Response:
    body = {"emails": {"primaryEmail": email}, **fields}
    return tw.post("/rest/people", params={"upsert": "true"}, json=body)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- Twenty ---------------------------------------------------------------------------------


def test_twenty_requires_the_bearer_key(twenty):
    with httpx.Client(base_url=twenty.base_url) as anonymous:
        response = anonymous.post("/rest/people", json={"emails": {"primaryEmail": "a@b.co"}})
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    assert twenty.people == {}


def test_twenty_upsert_creates_with_equal_timestamps_and_a_lowercased_email(twenty, tw):
    response = upsert(tw, "  Jane@Acme.COM ", name={"firstName": "Jane", "lastName": "Doe"})
    assert response.status_code == 201
    person = response.json()["data"]["createPerson"]
    assert person["emails"]["primaryEmail"] == "jane@acme.com"
    assert person["createdAt"] == person["updatedAt"]
    assert twenty.person_by_email("JANE@acme.com")["id"] == person["id"]


def test_twenty_upsert_updates_keeping_created_fields_and_unsent_fields(twenty, tw):
    first = upsert(
        tw, "jane@acme.com", name={"firstName": "Jane", "lastName": "Doe"}, subscriptionPlan="free"
    )
    created = first.json()["data"]["createPerson"]
    second = upsert(tw, "JANE@acme.com", subscriptionPlan="pro")
    assert second.status_code == 201  # 201 on update too
    person = second.json()["data"]["createPerson"]
    assert person["id"] == created["id"] and len(twenty.people) == 1
    assert person["createdAt"] == created["createdAt"] != person["updatedAt"]
    assert person["createdBy"] == created["createdBy"]
    assert (person["subscriptionPlan"], person["name"]["firstName"]) == ("pro", "Jane")


def test_twenty_upsert_resurrects_a_soft_deleted_person(twenty, tw):
    seeded = twenty.add_person("gone@acme.com", subscriptionPlan="free")
    twenty.soft_delete(seeded["id"])
    listed = tw.get("/rest/people", params={"limit": 5})
    assert listed.json()["data"]["people"] == [] and listed.json()["totalCount"] == 0
    person = upsert(tw, "gone@acme.com").json()["data"]["createPerson"]
    assert person["id"] == seeded["id"] and person["deletedAt"] is None
    assert person["subscriptionPlan"] == "free"


def test_twenty_create_without_upsert_rejects_a_duplicate_email(twenty, tw):
    twenty.add_person("jane@acme.com")
    response = tw.post("/rest/people", json={"emails": {"primaryEmail": "Jane@acme.com"}})
    assert response.status_code == 400
    assert set(response.json()) == {"statusCode", "error", "messages"}


def test_twenty_rejects_an_unknown_field_with_its_envelope(twenty, tw):
    twenty.custom_fields.pop("subscriptionPlan")
    response = upsert(tw, "jane@acme.com", subscriptionPlan="pro")
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "error": "BadRequestException",
        "messages": ['Object person doesn\'t have any "subscriptionPlan" field.'],
    }
    assert twenty.people == {}


@pytest.mark.parametrize("name", ["plan", "type", "event", "currency", "workspaces"])
def test_twenty_cannot_have_a_custom_field_with_a_reserved_name(name):
    with pytest.raises(ValueError, match=f"custom field named '{name}'"):
        FakeTwenty(custom_fields={name: "TEXT"})


def test_twenty_refuses_plan_as_an_unknown_field(twenty, tw):
    response = upsert(tw, "jane@acme.com", plan="pro")
    assert response.status_code == 400
    assert response.json()["messages"] == ['Object person doesn\'t have any "plan" field.']


def test_twenty_select_fields_accept_only_their_options(tw):
    assert upsert(tw, "a@acme.com", tier="pro").status_code == 400
    assert upsert(tw, "a@acme.com", tier="PRO").status_code == 201
    assert upsert(tw, "b@acme.com", marketingConsent="yes").status_code == 400  # BOOLEAN


@pytest.mark.parametrize("newer", [False, True], ids=["older-server", "newer-server"])
def test_twenty_rate_limit_is_a_token_bucket_per_minute(router, newer):
    clock = Clock()
    twenty = FakeTwenty(rate_limit=2, rate_limit_headers=newer, monotonic=clock)
    twenty.mount(router)
    with httpx.Client(base_url=twenty.base_url, headers=TWENTY_AUTH) as tw:
        statuses = [upsert(tw, "jane@acme.com").status_code for _ in range(3)]
        limited = upsert(tw, "jane@acme.com")
        clock.now += 30  # one token back at 2 a minute
        refilled = upsert(tw, "jane@acme.com")
    assert statuses == [201, 201, 429] and refilled.status_code == 201
    assert limited.json()["statusCode"] == 429
    if newer:
        assert limited.headers["Retry-After"] == "30"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert limited.json()["error"] == "RATE_LIMITED"
    else:
        assert "retry-after" not in limited.headers


def test_twenty_lists_people_only_with_a_limit_and_a_filter_it_models(twenty, tw):
    twenty.add_person("jane@acme.com")
    twenty.add_person("john@acme.com")
    body = tw.get("/rest/people", params={"limit": 1}).json()
    assert len(body["data"]["people"]) == 1 and body["totalCount"] == 2
    assert body["pageInfo"]["hasNextPage"] is True
    assert tw.get("/rest/people").status_code == 400
    by_name = {"filter": 'name.firstName[eq]:"Jane"', "limit": 5}
    assert tw.get("/rest/people", params=by_name).status_code == 400  # never "all of them"


def test_twenty_finds_people_by_email_with_eq_and_in(twenty, tw):
    twenty.add_person("jane@acme.com")
    twenty.add_person("john@acme.com")
    one = {"filter": 'emails.primaryEmail[eq]:"jane@acme.com"', "limit": 5}
    both = {"filter": 'emails.primaryEmail[in]:["jane@acme.com","john@acme.com","x@y.co"]',
            "limit": 60}  # fmt: skip
    emails = lambda r: {p["emails"]["primaryEmail"] for p in r.json()["data"]["people"]}  # noqa: E731
    assert emails(tw.get("/rest/people", params=one)) == {"jane@acme.com"}
    assert emails(tw.get("/rest/people", params=both)) == {"jane@acme.com", "john@acme.com"}
    bare = {"filter": "emails.primaryEmail[in]:jane@acme.com", "limit": 5}
    assert tw.get("/rest/people", params=bare).status_code == 400


def test_twenty_batch_refuses_invalid_records_whole_and_answers_in_no_set_order(twenty, tw):
    twenty.add_person("old@acme.com", subscriptionPlan="free")
    items = [{"emails": {"primaryEmail": f"u{i}@acme.com"}} for i in range(61)]
    assert tw.post("/rest/batch/people", params={"upsert": "true"}, json=items).status_code == 400
    batch = [{"emails": {"primaryEmail": "new@acme.com"}},
             {"emails": {"primaryEmail": "old@acme.com"}, "subscriptionPlan": "pro"}]  # fmt: skip
    reply = tw.post("/rest/batch/people", params={"upsert": "true"}, json=batch)
    assert reply.status_code == 201
    people = reply.json()["data"]["createPeople"]
    assert [p["emails"]["primaryEmail"] for p in people] == ["old@acme.com", "new@acme.com"]
    assert twenty.person_by_email("old@acme.com")["subscriptionPlan"] == "pro"
    bad = [{"emails": {"primaryEmail": "third@acme.com"}}, {"tier": "NOT_AN_OPTION"}]
    assert tw.post("/rest/batch/people", params={"upsert": "true"}, json=bad).status_code == 400
    assert len(twenty.people) == 2, "nothing of a batch refused by validation was written"


def test_twenty_batch_keeps_its_updates_when_its_insert_fails(twenty, tw):
    """Updates, then one INSERT, with no transaction: a unique violation among the new
    records is a 400 after the matched ones were updated (no rollback)."""
    twenty.add_person("old@acme.com", subscriptionPlan="free")
    twice = [{"emails": {"primaryEmail": "old@acme.com"}, "subscriptionPlan": "pro"},
             *[{"emails": {"primaryEmail": "dup@acme.com"}}] * 2]  # fmt: skip
    assert tw.post("/rest/batch/people", params={"upsert": "true"}, json=twice).status_code == 400
    assert twenty.person_by_email("old@acme.com")["subscriptionPlan"] == "pro"
    assert twenty.person_by_email("dup@acme.com") is None


def test_twenty_unknown_routes_are_errors_not_silent_200s(twenty, tw):
    wrong_object = tw.get("/rest/person", params={"limit": 1})
    assert wrong_object.status_code == 400
    assert "Did you mean 'people'?" in wrong_object.json()["messages"][0]
    assert tw.get("/nothing/here").status_code == 404
    person = twenty.add_person("jane@acme.com")
    assert tw.patch(f"/rest/people/{person['id']}", json={}).status_code == 404


# --- Mautic ---------------------------------------------------------------------------------


def test_mautic_auth_switches_and_credentials(mautic, mc):
    assert mc.get("/api/contacts").headers["Mautic-Version"] == "5.1.0"
    with httpx.Client(base_url=mautic.base_url, auth=("api-user", "wrong")) as bad:
        wrong = bad.get("/api/contacts")
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["message"] == "Authorization denied, invalid credentials."
    mautic.basic_auth_enabled = False
    disabled = mc.get("/api/contacts")
    assert disabled.status_code == 403 and "Basic Auth disabled" in disabled.text
    mautic.api_enabled = False
    off = mc.get("/api/contacts")
    assert off.status_code == 403 and off.json()["errors"][0]["type"] == "api_disabled"


def test_mautic_oauth_tokens_are_issued_and_expire(mautic):
    mautic.oauth_clients["client-1"] = "secret"
    with httpx.Client(base_url=mautic.base_url) as client:
        form = {"grant_type": "client_credentials", "client_id": "client-1"}
        bad = client.post("/oauth/v2/token", data={**form, "client_secret": "nope"})
        good = client.post("/oauth/v2/token", data={**form, "client_secret": "secret"})
        headers = {"Authorization": f"Bearer {good.json()['access_token']}"}
        before = client.get("/api/contacts", headers=headers)
        mautic.expire_tokens()
        after = client.get("/api/contacts", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
    assert good.json()["expires_in"] == 3600 and good.json()["token_type"] == "bearer"
    assert before.status_code == 200
    assert after.status_code == 401 and after.json()["errors"][0]["type"] == "invalid_grant"


def test_mautic_contacts_new_upserts_on_the_lowercased_email(mautic, mc):
    created = mc.post("/api/contacts/new", json={"email": "Jane@Acme.com", "firstname": "Jane"})
    assert created.status_code == 201
    contact_id = created.json()["contact"]["id"]
    assert created.headers["Location"].endswith(f"/api/contacts/{contact_id}")
    updated = mc.post("/api/contacts/new", json={"email": "jane@acme.com", "plan": "pro"})
    assert updated.status_code == 200 and updated.json()["contact"]["id"] == contact_id
    assert len(mautic.contacts) == 1
    assert mautic.contacts[contact_id]["fields"]["firstname"] == "Jane"


def test_mautic_drops_unknown_aliases_and_lists_every_known_one(mautic, mc):
    mautic.fields.pop("signup_source")
    body = {"email": "jane@acme.com", "signup_source": "ads", "typo_field": "x"}
    contact = mc.post("/api/contacts/new", json=body).json()["contact"]
    assert contact["fields"]["all"] == {
        "id": contact["id"],
        "churn_reason": None,
        "churned_at": None,
        "email": "jane@acme.com",
        "firstname": None,
        "lastname": None,
        "marketing_consent": None,
        "plan": None,
    }


def test_mautic_blanks_do_not_overwrite_but_a_boolean_false_does(mautic, mc):
    mc.post(
        "/api/contacts/new", json={"email": "j@acme.com", "plan": "pro", "marketing_consent": True}
    )
    mc.post("/api/contacts/new", json={"email": "j@acme.com", "plan": "", "marketing_consent": ""})
    fields = mautic.contact_by_email("j@acme.com")["fields"]
    assert (fields["plan"], fields["marketing_consent"]) == ("pro", True)
    mc.post(
        "/api/contacts/new", json={"email": "j@acme.com", "plan": None, "marketing_consent": False}
    )
    fields = mautic.contact_by_email("j@acme.com")["fields"]
    assert (fields["plan"], fields["marketing_consent"]) == ("pro", False)


def test_mautic_refuses_contact_keys_it_does_not_model(mautic, mc):
    """Real Mautic honours these; a client that starts sending one must find out here."""
    for key, value in [("overwriteWithBlank", True), ("tags", ["trial"]), ("owner", 1)]:
        reply = mc.post("/api/contacts/new", json={"email": "j@acme.com", key: value})
        assert reply.status_code == 400 and key in reply.json()["errors"][0]["message"]
    assert mautic.contacts == {}


def test_mautic_inline_do_not_contact_adds_and_reason_zero_lifts(mautic, mc):
    dnc = {"channel": "email", "reason": 3, "comments": "no consent"}
    reply = mc.post("/api/contacts/new", json={"email": "j@acme.com", "doNotContact": [dnc]})
    assert [(d["reason"], d["channel"]) for d in reply.json()["contact"]["doNotContact"]] == [
        (3, "email")
    ]
    stored = mautic.contact_by_email("j@acme.com")["dnc"]
    assert [(d["channel"], d["reason"], d["comments"]) for d in stored] == [
        ("email", 3, "no consent")
    ]
    lift = {"email": "j@acme.com", "doNotContact": [{"channel": "email", "reason": 0}]}
    assert mc.post("/api/contacts/new", json=lift).json()["contact"]["doNotContact"] == []


def test_mautic_lists_are_objects_keyed_by_id_with_a_string_total(mautic, mc):
    contact_id = mautic.add_contact("jane@acme.com")
    where = {"where[0][col]": "email", "where[0][expr]": "eq"}
    found = mc.get("/api/contacts", params={**where, "where[0][val]": "jane@acme.com"}).json()
    assert found["total"] == "1" and list(found["contacts"]) == [str(contact_id)]
    none = mc.get("/api/contacts", params={**where, "where[0][val]": "x@acme.com"}).json()
    assert none == {"total": "0", "contacts": {}}
    empty = mc.get(f"/api/contacts/{contact_id}/segments").json()
    assert empty == {"total": 0, "lists": {}}


def test_mautic_segment_add_is_idempotent_and_enrols_in_no_campaign(mautic, mc):
    contact_id = mautic.add_contact("jane@acme.com")
    for _ in range(2):
        reply = mc.post(f"/api/segments/1/contact/{contact_id}/add")
        assert (reply.status_code, reply.json()) == (200, {"success": 1})
    assert mautic.segment_members[1] == {contact_id}
    assert all(not members for members in mautic.campaign_members.values())
    lists = mc.get(f"/api/contacts/{contact_id}/segments").json()["lists"]
    assert lists["1"]["alias"] == "active"
    unknown_segment = mc.post(f"/api/segments/99/contact/{contact_id}/add")
    unknown_contact = mc.post("/api/segments/1/contact/999/add")
    assert unknown_segment.status_code == unknown_contact.status_code == 404
    assert unknown_segment.json()["errors"][0]["message"] == "Item was not found."
    assert unknown_contact.json()["errors"][0]["message"] == "Contact not found."


@pytest.mark.parametrize(("allow_restart", "rotations"), [(True, 2), (False, 1)])
def test_mautic_campaign_re_add_restarts_only_when_allowed(mautic, mc, allow_restart, rotations):
    mautic.campaigns[10]["allow_restart"] = allow_restart
    contact_id = mautic.add_contact("jane@acme.com")
    for _ in range(2):
        assert mc.post(f"/api/campaigns/10/contact/{contact_id}/add").json() == {"success": 1}
    assert mautic.campaign_rotations[(10, contact_id)] == rotations
    assert mc.post(f"/api/campaigns/77/contact/{contact_id}/add").status_code == 404


def test_mautic_dnc_endpoints(mautic, mc):
    contact_id = mautic.add_contact("jane@acme.com")
    zero = mc.post(f"/api/contacts/{contact_id}/dnc/email/add", json={"reason": 0})
    assert zero.status_code == 400
    assert zero.json()["errors"][0]["message"] == "Invalid reason code given"
    added = mc.post(f"/api/contacts/{contact_id}/dnc/email/add", json={"comments": "manual"})
    assert added.json()["contact"]["doNotContact"][0]["reason"] == 3
    removed = mc.post(f"/api/contacts/{contact_id}/dnc/email/remove").json()
    again = mc.post(f"/api/contacts/{contact_id}/dnc/email/remove").json()
    assert (removed["recordFound"], again["recordFound"]) == (True, False)


@pytest.mark.parametrize("via", ["endpoint", "inline"])
@pytest.mark.parametrize(("stored", "kept"), [(1, True), (2, False), (3, False)])
def test_mautic_dnc_add_rewrites_an_existing_entry_unless_it_is_an_unsubscribe(
    mautic, mc, via, stored, kept
):
    original = {"channel": "email", "reason": stored, "comments": "set by Mautic"}
    contact_id = mautic.add_contact("jane@acme.com", dnc=[original])
    other = 3 if stored != 3 else 2
    if via == "endpoint":
        body = {"reason": other, "comments": "ours"}
        mc.post(f"/api/contacts/{contact_id}/dnc/email/add", json=body)
    else:
        entry = {"channel": "email", "reason": other, "comments": "ours"}
        mc.post("/api/contacts/new", json={"email": "jane@acme.com", "doNotContact": [entry]})
    [entry] = mautic.contacts[contact_id]["dnc"]
    expected = (stored, "set by Mautic") if kept else (other, "ours")
    assert (entry["reason"], entry["comments"]) == expected


def test_mautic_dnc_add_with_the_same_reason_changes_nothing(mautic, mc):
    original = {"channel": "email", "reason": 3, "comments": "first"}
    contact_id = mautic.add_contact("jane@acme.com", dnc=[original])
    mc.post(f"/api/contacts/{contact_id}/dnc/email/add", json={"reason": 3, "comments": "second"})
    assert mautic.contacts[contact_id]["dnc"][0]["comments"] == "first"


@pytest.mark.parametrize(
    ("segment", "permissions", "status"),
    [
        ({"published": True, "global": True, "owner": "marketing"}, {"lead:lists:viewother"}, 200),
        ({"published": False, "global": True, "owner": "marketing"}, {"lead:lists:viewother"}, 403),
        ({"published": True, "global": True, "owner": "marketing"}, set(), 200),
        ({"published": True, "global": False, "owner": "marketing"}, set(), 403),
        ({"published": False, "global": True, "owner": "marketing"}, set(), 403),
        ({"published": False, "global": False, "owner": "api-user"}, set(), 200),
    ],
    ids=["published", "unpublished", "global", "private", "unpublished-global", "own"],
)
def test_mautic_segment_changes_need_a_segment_the_api_user_may_use(
    mautic, mc, segment, permissions, status
):
    mautic.segments[1].update(segment)
    mautic.permissions = permissions
    contact_id = mautic.add_contact("jane@acme.com")
    for change in ("add", "remove"):
        reply = mc.post(f"/api/segments/1/contact/{contact_id}/{change}")
        assert reply.status_code == status
    if status == 403:
        message = reply.json()["errors"][0]["message"]
        assert message == "You do not have access to the requested area/action."


@pytest.mark.parametrize(
    ("campaign", "permissions", "status"),
    [
        ({"published": True, "owner": "marketing"}, {"campaign:campaigns:viewother"}, 200),
        ({"published": False, "owner": "marketing"}, {"campaign:campaigns:viewother"}, 200),
        ({"published": True, "owner": "marketing"}, set(), 403),
        ({"published": True, "owner": "api-user"}, set(), 200),
    ],
    ids=["visible", "unpublished", "another-users", "own"],
)
def test_mautic_campaign_member_list_shows_every_member_or_refuses(
    mautic, mc, campaign, permissions, status
):
    """Unpublished campaigns' members are listed too; without view access, a 403."""
    mautic.campaigns[10].update(campaign)
    mautic.permissions = permissions
    jane = mautic.add_contact("jane@acme.com", campaigns=[10])
    john = mautic.add_contact("john@acme.com")
    where = {"where[0][col]": "lead_id", "where[0][expr]": "eq", "limit": 1}
    jane_reply = mc.get("/api/campaigns/10/contacts", params={**where, "where[0][val]": jane})
    john_reply = mc.get("/api/campaigns/10/contacts", params={**where, "where[0][val]": john})
    assert jane_reply.status_code == john_reply.status_code == status
    if status == 200:
        assert jane_reply.json()["total"] == "1" and jane_reply.json()["contacts"][0]["lead_id"]
        assert john_reply.json() == {"total": "0", "contacts": []}


def test_mautic_campaign_member_list_leaves_out_manual_removals(mautic, mc):
    jane = mautic.add_contact("jane@acme.com", campaigns=[10])
    assert mc.post(f"/api/campaigns/10/contact/{jane}/remove").json() == {"success": 1}
    assert mc.post("/api/campaigns/10/contact/999/remove").status_code == 404
    assert mc.get("/api/campaigns/10/contacts").json()["total"] == "0"
    assert (10, jane) in mautic.campaign_removed
    mc.post(f"/api/campaigns/10/contact/{jane}/add")  # a removed contact added again is back
    assert mautic.campaign_rotations[(10, jane)] == 2


def membership(campaign: int, contact: int) -> dict[str, str | int]:
    """The campaign_leads stats query for one contact (what MauticClient.in_campaign sends)."""
    where = [("campaign_id", campaign), ("lead_id", contact), ("manually_removed", 0)]
    params: dict[str, str | int] = {"limit": 1}
    for i, (col, val) in enumerate(where):
        params |= {f"where[{i}][col]": col, f"where[{i}][expr]": "eq", f"where[{i}][val]": val}
    return params


@pytest.mark.parametrize("mautic6", [False, True], ids=["mautic5", "mautic6"])
def test_mautic_campaign_leads_stats_show_membership_on_5_and_6(router, mautic6):
    mautic = FakeMautic(mautic6=mautic6)
    mautic.mount(router)
    mautic.campaigns[10].update(published=False, owner="someone-else")
    mautic.permissions = {"lead:leads:create", "lead:leads:editother"}  # no campaign access
    jane = mautic.add_contact("jane@acme.com", campaigns=[10])
    john = mautic.add_contact("john@acme.com", campaigns=[10])
    with httpx.Client(base_url=mautic.base_url, headers=MAUTIC_AUTH) as mc:
        mc.post(f"/api/campaigns/10/contact/{john}/remove")
        member = mc.get("/api/stats/campaign_leads", params=membership(10, jane)).json()
        removed = mc.get("/api/stats/campaign_leads", params=membership(10, john)).json()
        elsewhere = mc.get("/api/stats/campaign_leads", params=membership(11, jane)).json()
        unknown = mc.get("/api/stats/no_such_table").json()
        mautic.permissions = set()
        denied = mc.get("/api/stats/campaign_leads", params=membership(10, jane))
    assert member["total"] == "1" and member["stats"][0]["lead_id"] == str(jane)
    assert removed == {"total": "0", "stats": []} and elsewhere == {"total": "0", "stats": []}
    assert "availableTables" in unknown and "total" not in unknown
    assert denied.status_code == 200 and "view permission" in denied.json()["errors"][0]["message"]


def test_mautic_6_refuses_a_where_on_the_campaign_member_list(router):
    mautic = FakeMautic(mautic6=True)
    mautic.mount(router)
    jane = mautic.add_contact("jane@acme.com", campaigns=[10])
    with httpx.Client(base_url=mautic.base_url, headers=MAUTIC_AUTH) as mc:
        where = {"where[0][col]": "lead_id", "where[0][expr]": "eq", "where[0][val]": jane}
        refused = mc.get("/api/campaigns/10/contacts", params=where)
        plain = mc.get("/api/campaigns/10/contacts")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["message"] == (
        'Input value "where" contains a non-scalar value.'
    )
    assert refused.headers["Mautic-Version"].startswith("6.")
    assert plain.json()["total"] == "1"


def test_mautic_campaign_member_list_answers_a_bad_column_as_200_with_errors(mautic, mc):
    reply = mc.get(
        "/api/campaigns/10/contacts",
        params={"where[0][col]": "l.id", "where[0][expr]": "eq", "where[0][val]": "1"},
    )
    assert reply.status_code == 200 and "Unknown column" in reply.json()["errors"][0]["message"]
    assert mc.get("/api/campaigns/77/contacts").status_code == 404


def test_mautic_finds_contacts_by_several_emails_as_a_comma_separated_string(mautic, mc):
    jane, john = mautic.add_contact("jane@acme.com"), mautic.add_contact("john@acme.com")
    where = {"where[0][col]": "email", "where[0][expr]": "in"}
    both = '"jane@acme.com","john@acme.com"'
    found = mc.get("/api/contacts", params={**where, "where[0][val]": both, "limit": 0})
    assert set(found.json()["contacts"]) == {str(jane), str(john)}
    as_array = mc.get("/api/contacts", params={**where, "where[0][val][]": ["jane@acme.com"]})
    assert as_array.status_code == 500
    for n in range(40):
        mautic.add_contact(f"u{n}@acme.com")
    assert len(mc.get("/api/contacts").json()["contacts"]) == 30, "a page is 30 by default"


def test_mautic_batch_new_reports_each_item(mautic, mc):
    too_many = mc.post("/api/contacts/batch/new", json=[{"email": f"{i}@a.co"} for i in range(201)])
    assert too_many.status_code == 500
    mautic.add_contact("old@acme.com")
    reply = mc.post(
        "/api/contacts/batch/new",
        json=[{"email": "new@acme.com"}, {"email": "old@acme.com"}, {"email": "new@acme.com"}],
    )
    assert reply.status_code == 201 and reply.json()["statusCodes"] == [201, 200, 200]
    assert len(mautic.contacts) == 2


def test_mautic_batch_replies_are_php_arrays_a_list_when_keyed_from_zero(mautic, mc):
    """json_encode writes an array keyed 0..k as a list, any other as an object (#9243)."""
    bad = {"doNotContact": [{"reason": "x"}]}
    last_fails = [{"email": "a@acme.com"}, {"email": "b@acme.com", **bad}]
    reply = mc.post("/api/contacts/batch/new", json=last_fails).json()
    assert reply["statusCodes"] == [201, 400]
    assert isinstance(reply["contacts"], list) and len(reply["contacts"]) == 1
    assert reply["errors"] == {"1": {"message": "Invalid reason code given", "code": 400,
                                     "type": "api"}}  # fmt: skip
    first_fails = [{"email": "c@acme.com", **bad}, {"email": "d@acme.com"}]
    reply = mc.post("/api/contacts/batch/new", json=first_fails).json()
    assert reply["errors"] == [{"message": "Invalid reason code given", "code": 400,
                                "type": "api"}]  # fmt: skip
    assert list(reply["contacts"]) == ["1"]


def test_mautic_contact_upserts_need_the_create_permission_even_for_a_known_email(mautic, mc):
    mautic.add_contact("old@acme.com")
    mautic.permissions.discard("lead:leads:create")
    for path, body in [
        ("/api/contacts/new", {"email": "old@acme.com"}),
        ("/api/contacts/batch/new", [{"email": "old@acme.com"}]),
    ]:
        reply = mc.post(path, json=body)
        assert reply.status_code == 403, path
        assert reply.json()["errors"][0]["message"] == (
            "You do not have access to the requested area/action."
        )
    mautic.permissions = {"lead:leads:create", "lead:leads:viewother"}
    reply = mc.post(
        "/api/contacts/batch/new", json=[{"email": "old@acme.com"}, {"email": "n@a.co"}]
    )
    assert reply.json()["statusCodes"] == [403, 201], "an existing contact needs edit access"


def test_mautic_bulk_segment_add(mautic, mc):
    jane = mautic.add_contact("jane@acme.com")
    reply = mc.post("/api/segments/1/contacts/add", json={"ids": [jane, 999]}).json()
    assert reply == {
        "success": 1,
        "details": {str(jane): {"success": True}, "999": {"success": False}},
    }
    assert mautic.segment_members[1] == {jane}
    assert mc.post("/api/segments/1/contacts/add", json={}).status_code == 400
    mautic.segments[1]["published"] = False
    assert mc.post("/api/segments/1/contacts/add", json={"ids": [jane]}).status_code == 403


def test_mautic_hourly_rate_limit_and_unknown_routes(router):
    mautic = FakeMautic(rate_limit=1)
    mautic.mount(router)
    with httpx.Client(base_url=mautic.base_url, headers=MAUTIC_AUTH) as mc:
        assert mc.get("/api/contacts").status_code == 200
        limited = mc.get("/api/contacts")
        mautic.reset_rate_limit()
        unknown = mc.get("/api/nothing")
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["message"].startswith("You exceeded the rate limit of 1")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == 404


# --- Slack webhook --------------------------------------------------------------------------


@pytest.fixture
def hook(router) -> FakeSlackWebhook:
    fake = FakeSlackWebhook()
    fake.mount(router)
    return fake


def test_webhook_success_is_plain_text_ok(hook):
    response = httpx.post(hook.url, json={"text": "hello"})
    assert (response.status_code, response.text) == (200, "ok")
    assert response.headers["content-type"].startswith("text/plain")
    assert hook.messages == [{"text": "hello"}]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ("not json", "invalid_payload"),
        ({"channel": "x"}, "no_text"),
        ({"text": "t", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        (
            {
                "text": "t",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            },
            "invalid_blocks",
        ),
        (
            {
                "text": "t",
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
            },
            "invalid_blocks",
        ),
    ],
    ids=["non-json", "no-text", "51-blocks", "long-section", "long-header"],
)
def test_webhook_rejects_bad_payloads(hook, payload, error):
    if isinstance(payload, str):
        response = httpx.post(hook.url, content=payload)
    else:
        response = httpx.post(hook.url, json=payload)
    assert (response.status_code, response.text) == (400, error)
    assert hook.messages == []


def test_webhook_dead_states_and_unknown_paths(hook):
    assert (
        httpx.post("https://hooks.slack.com/services/T/B/other", json={"text": "x"}).text
        == "no_service"
    )
    hook.archived = True
    archived = httpx.post(hook.url, json={"text": "x"})
    hook.revoked = True
    revoked = httpx.post(hook.url, json={"text": "x"})
    assert (archived.status_code, archived.text) == (410, "channel_is_archived")
    assert (revoked.status_code, revoked.text) == (404, "no_service")


def test_webhook_rate_limit_says_retry_after(router):
    clock = Clock()
    hook = FakeSlackWebhook(rate_limit_per_second=1, clock=clock)
    hook.mount(router)
    assert httpx.post(hook.url, json={"text": "1"}).status_code == 200
    limited = httpx.post(hook.url, json={"text": "2"})
    clock.now += 1.0
    assert httpx.post(hook.url, json={"text": "3"}).status_code == 200
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert [m["text"] for m in hook.messages] == ["1", "3"]


# --- Slack chat.postMessage -----------------------------------------------------------------


@pytest.fixture
def slack_api(router) -> FakeSlackApi:
    fake = FakeSlackApi()
    fake.mount(router)
    return fake


POST_MESSAGE = "https://slack.com/api/chat.postMessage"


@pytest.mark.parametrize(
    ("headers", "channel", "error"),
    [
        ({}, "C0123TEST", "not_authed"),
        ({"Authorization": "Bearer xoxb-wrong"}, "C0123TEST", "invalid_auth"),
        (SLACK_AUTH, "C0999NONE", "channel_not_found"),
        (SLACK_AUTH, "C0456PRIV", "not_in_channel"),
    ],
)
def test_post_message_errors_arrive_as_http_200(slack_api, headers, channel, error):
    response = httpx.post(POST_MESSAGE, headers=headers, json={"channel": channel, "text": "x"})
    assert (response.status_code, response.json()) == (200, {"ok": False, "error": error})
    assert slack_api.messages == []


def test_post_message_success_and_validation(slack_api):
    ok = httpx.post(POST_MESSAGE, headers=SLACK_AUTH, json={"channel": "C0123TEST", "text": "hi"})
    body = ok.json()
    assert body["ok"] is True and body["channel"] == "C0123TEST" and body["ts"]
    assert body["message"]["text"] == "hi"
    no_text = httpx.post(POST_MESSAGE, headers=SLACK_AUTH, json={"channel": "C0123TEST"})
    assert (no_text.status_code, no_text.json()["error"]) == (200, "no_text")
    assert slack_api.messages == [{"channel": "C0123TEST", "text": "hi"}]
    assert httpx.post("https://slack.com/api/chat.nope", headers=SLACK_AUTH).status_code == 404


def test_post_message_rate_limit_is_a_429(router):
    clock = Clock()
    slack_api = FakeSlackApi(rate_limit_per_second=1, clock=clock)
    slack_api.mount(router)
    payload = {"channel": "C0123TEST", "text": "x"}
    httpx.post(POST_MESSAGE, headers=SLACK_AUTH, json=payload)
    limited = httpx.post(POST_MESSAGE, headers=SLACK_AUTH, json=payload)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.json() == {"ok": False, "error": "ratelimited"}


# --- Stripe ---------------------------------------------------------------------------------


@pytest.fixture
def stripe(router) -> FakeStripe:
    fake = FakeStripe()
    fake.add_price("price_pro", "pro")
    fake.add_price("price_business", "business")
    fake.mount(router)
    return fake


@pytest.fixture
def st(stripe):
    auth = {"Authorization": f"Bearer {stripe.api_key}"}
    with httpx.Client(base_url=stripe.base_url, headers=auth) as client:
        yield client


def test_stripe_refuses_a_bad_key_masking_it(stripe):
    with httpx.Client(base_url=stripe.base_url) as client:
        none = client.get("/v1/customers/cus_x")
        wrong = client.get(
            "/v1/customers/cus_x", headers={"Authorization": "Bearer rk_test_0123456789wxyz"}
        )
    assert none.status_code == wrong.status_code == 401
    message = wrong.json()["error"]["message"]
    assert message.startswith("Invalid API Key provided: rk_test_") and "0123456789" not in message


def test_stripe_names_the_permission_a_restricted_key_lacks(stripe, st):
    customer = stripe.add_customer("jane@acme.com")
    stripe.permissions.discard("rak_customer_read")
    reply = st.get(f"/v1/customers/{customer}")
    assert reply.status_code == 403
    assert "'rak_customer_read' permission" in reply.json()["error"]["message"]


def test_stripe_unknown_ids_and_parameters(stripe, st):
    missing = st.get("/v1/subscriptions/sub_nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "No such subscription: 'sub_nope'",
        "type": "invalid_request_error",
        "code": "resource_missing",
        "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
    }
    assert st.get("/v1/subscriptions", params={"email": "x"}).status_code == 400
    assert st.get("/v1/nothing").status_code == 404


def test_stripe_a_price_change_event_carries_the_old_items_in_full(stripe, st):
    customer = stripe.add_customer("jane@acme.com")
    sub = stripe.subscribe(customer, "price_pro")["data"]["object"]["id"]
    event = stripe.change_price(sub, "price_business")
    assert event["type"] == "customer.subscription.updated"
    assert event["data"]["object"]["items"]["data"][0]["price"]["lookup_key"] == "business"
    [old] = event["data"]["previous_attributes"]["items"]["data"]
    assert old["price"]["id"] == "price_pro"
    assert st.get(f"/v1/events/{event['id']}").json() == event
    assert st.get(f"/v1/subscriptions/{sub}").json()["items"]["data"][0]["price"]["id"] == (
        "price_business"
    )


def test_stripe_lists_a_customers_subscriptions_leaving_out_canceled_ones(stripe, st):
    customer = stripe.add_customer("jane@acme.com")
    first = stripe.subscribe(customer, "price_pro")["data"]["object"]["id"]
    second = stripe.subscribe(customer, "price_business")["data"]["object"]["id"]
    deleted = stripe.cancel(first)
    assert deleted["data"]["object"]["status"] == "canceled"
    listed = st.get("/v1/subscriptions", params={"customer": customer}).json()
    assert [s["id"] for s in listed["data"]] == [second]
    everything = st.get("/v1/subscriptions", params={"customer": customer, "status": "all"})
    assert len(everything.json()["data"]) == 2


def test_stripe_a_deleted_customer_reads_as_a_stub(stripe, st):
    customer = stripe.add_customer("jane@acme.com", {"email": "jane@acme.com"})
    stripe.delete_customer(customer)
    assert st.get(f"/v1/customers/{customer}").json() == {
        "id": customer, "object": "customer", "deleted": True
    }  # fmt: skip


def test_stripe_signs_each_delivery_with_every_active_secret(stripe):
    customer = stripe.add_customer("jane@acme.com")
    event = stripe.subscribe(customer, "price_pro")
    stripe.signing_secrets = ["whsec_new", "whsec_old"]
    body, headers = stripe.delivery(event, at=1_800_000_100)
    parts = [p.split("=", 1) for p in headers["stripe-signature"].split(",")]
    assert parts[0] == ["t", "1800000100"]
    expected = {
        hmac.new(s.encode(), f"1800000100.{body}".encode(), hashlib.sha256).hexdigest()
        for s in ("whsec_new", "whsec_old")
    }
    assert {v for k, v in parts if k == "v1"} == expected
    assert [k for k, _ in parts].count("v0") == 1  # test mode adds Stripe's fake scheme
    assert json.loads(body) == event


# --- injected faults ------------------------------------------------------------------------


def test_a_status_fault_uses_the_services_envelope_and_changes_nothing(twenty, mautic, tw, mc):
    twenty.fault(503, times=2)
    mautic.fault(500, path_contains="/contacts/new")
    assert [upsert(tw, "j@acme.com").status_code for _ in range(3)] == [503, 503, 201]
    assert len(twenty.people) == 1 and len(twenty.requests) == 3
    failed = mc.post("/api/contacts/new", json={"email": "j@acme.com"})
    assert failed.status_code == 500 and failed.json()["errors"][0]["code"] == 500
    assert mautic.contacts == {}


def test_a_fault_can_carry_headers_and_a_text_or_json_body(hook, twenty, tw):
    hook.fault(429, headers={"Retry-After": "7"}, body="slow down")
    twenty.fault(400, body={"custom": True})
    limited = httpx.post(hook.url, json={"text": "x"})
    assert (limited.status_code, limited.headers["Retry-After"], limited.text) == (
        429,
        "7",
        "slow down",
    )
    assert upsert(tw, "j@acme.com").json() == {"custom": True}
    assert hook.messages == [] and twenty.people == {}


def test_an_exception_fault_is_raised_with_the_request_and_logged(mautic, mc):
    mautic.fault(exc=httpx.ReadTimeout, method="POST", path_contains="/campaigns/10/")
    contact_id = mautic.add_contact("jane@acme.com")
    assert mc.get("/api/campaigns/10/contacts").status_code == 200  # a GET: not matched
    with pytest.raises(httpx.ReadTimeout) as caught:
        mc.post(f"/api/campaigns/10/contact/{contact_id}/add")
    assert caught.value.request.url.path == f"/api/campaigns/10/contact/{contact_id}/add"
    assert mautic.campaign_members[10] == set()
    assert mc.post(f"/api/campaigns/10/contact/{contact_id}/add").status_code == 200
    assert len(mautic.calls(method="POST", path_contains="/campaigns/10/")) == 2
    assert len(mautic.calls()) == 3


def test_mautic_cleans_a_new_segments_alias_and_numbers_a_taken_one(mautic, mc):
    """ListModel::saveEntity: cleanAlias keeps [a-z0-9-]; a taken alias gets a number."""
    first = mc.post("/api/segments/new", json={"name": "Plan pro", "alias": "plan_pro"}).json()
    second = mc.post("/api/segments/new", json={"name": "Plan pro", "alias": "plan_pro"}).json()
    third = mc.post("/api/segments/new", json={"name": "Plan Pro 2"}).json()
    assert [r["list"]["alias"] for r in (first, second, third)] == [
        "planpro",
        "planpro1",
        "plan-pro-2",
    ]
