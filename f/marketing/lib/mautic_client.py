"""Thin client for the Mautic REST API: contacts, segments, campaigns, do-not-contact.

Facts relied on (mautic/mautic 5.1; README, "API facts relied on"):
- `POST /api/contacts/new` is an upsert on the unique-identifier fields (email by default):
  200 when it updated, 201 when it created. Unknown field aliases are silently ignored, so the
  reply's `fields.all` is checked for every alias we sent.
- An email do-not-contact added over an existing one rewrites its reason and comment, unless
  the stored reason is 1 (unsubscribed): LeadBundle/Model/DoNotContact.php, addDncForContact.
  So ours is only ever added to a contact that has none (lib/consent.py).
- Segment add/remove answer 403 for a segment the API user may not use (unpublished, or
  another user's without lead:lists:viewother): LeadBundle/Controller/Api/ListApiController.php.
- `contacts/new` and `contacts/batch/new` need Contacts: Create (`lead:leads:create`) even
  when the email matches a contact (CommonApiController::newEntityAction, newEntitiesAction).
- Campaign add answers `{"success": 1}` even for a member, and re-adding a member of a
  campaign that allows restarts sends its sequence again. Membership is read from the
  `campaign_leads` stats table (`GET /api/stats/campaign_leads`, StatsApiController::listAction
  with CampaignBundle's StatsSubscriber: rows in any publish state, for any API user who may
  view contacts); its failures come as HTTP 200 with `errors`.
- Errors are `{"errors": [{"code", "message", ...}]}`, and some 2xx replies carry them too.
- OAuth2 access tokens live 60 minutes; a 401 means fetch a new one, once.
"""

from dataclasses import dataclass, field
from typing import Any

import httpx

from f.marketing.lib.errors import ServiceError
from f.marketing.lib.service_http import (
    DEFAULT_POLICY,
    RetryPolicy,
    ServiceClient,
    ServiceHttp,
    json_body,
)
from f.marketing.lib.service_settings import MauticSettings

PAGE = 200  # Mautic lists 30 a page unless asked
BATCH = 200  # api_batch_max_limit: more items in one batch call is a 500
# Emails per look-up: `where ... in` goes in the query string, which web servers cap (8 KB).
LOOKUP = 60

SEGMENT_ACCESS_HINT = (
    "segment {id} is unpublished, or the Mautic API user may not use it: publish it and set "
    "'Visible to other users', or give the API user's role Segments: View Others "
    "(lead:lists:viewother)"
)


@dataclass(frozen=True)
class Contact:
    id: int
    created: bool
    fields: dict[str, Any]
    email_dnc: list[dict[str, Any]] = field(default_factory=list)
    ignored_fields: tuple[str, ...] = ()

    def flag(self, name: str) -> bool:
        """A boolean field's value: Mautic shows one as true/false or "1"/"0"
        (CoreBundle/Form/RequestTrait.php)."""
        value = self.fields.get(name)
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)


def _contact(data: dict[str, Any], *, created: bool, sent: dict[str, Any]) -> Contact:
    all_fields = data["fields"]["all"]
    return Contact(
        id=int(data["id"]),
        created=created,
        fields=all_fields,
        email_dnc=[
            entry
            for entry in data.get("doNotContact") or []
            if isinstance(entry, dict) and entry.get("channel", "email") == "email"
        ],
        ignored_fields=tuple(
            alias
            for alias in sent
            if alias not in {"email", "doNotContact"} and alias not in all_fields
        ),
    )


def read_error(response: httpx.Response) -> str:
    body = json_body(response)
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
        if isinstance(errors, dict) and errors:
            return "; ".join(str(e.get("message", e)) for e in errors.values())
        if body.get("error"):  # the OAuth2 token endpoint's own envelope
            return str(body.get("error_description") or body["error"])
    return response.text.strip()[:300] or response.reason_phrase


def _success(response: httpx.Response) -> None:
    if not response.json().get("success"):
        raise ValueError("no success flag")


class MauticClient(ServiceClient):
    SERVICE = "Mautic"
    read_error = staticmethod(read_error)

    def __init__(self, http: ServiceHttp, oauth: tuple[str, str] | None = None) -> None:
        super().__init__(http)
        self._oauth = oauth
        self._token: str | None = None

    @classmethod
    def from_settings(
        cls, settings: MauticSettings, policy: RetryPolicy = DEFAULT_POLICY, **http_options: Any
    ) -> "MauticClient":
        http = cls._connect(
            settings.base_url, policy, {"auth": settings.basic_auth, **http_options}
        )
        return cls(http, settings.oauth_client)

    def find_contact(self, email: str) -> Contact | None:
        """The contact `contacts/new` would match for this email, if any (newest added wins)."""
        return self.find_contacts([email]).get(email)

    def find_contacts(self, emails: list[str]) -> dict[str, Contact]:
        """The contacts `contacts/batch/new` would match for these (up to 60) emails, by email.

        `where[0][val]` is one comma-separated string, each value quoted (str_getcsv, in
        CommonRepository::buildWhereClauseFromArray); `limit=0` is no limit, so a contact
        sharing its email with another is seen and the newest of them wins.
        """

        def read(response: httpx.Response) -> dict[str, Contact]:
            found: dict[str, dict[str, Any]] = {}
            for data in _listed(response.json(), "contacts"):
                email = str(data["fields"]["all"].get("email") or "").lower()
                if email not in found or _newer(data, found[email]):
                    found[email] = data
            return {e: _contact(d, created=False, sent={}) for e, d in found.items()}

        params = {
            "where[0][col]": "email",
            "where[0][expr]": "in",
            "where[0][val]": ",".join(f'"{email}"' for email in emails),
            "limit": "0",
        }
        return self._call("GET", "/api/contacts", action="find contacts", params=params, read=read)

    def upsert_contacts(self, bodies: list[dict[str, Any]]) -> list[Contact | str]:
        """Up to 200 upserts in one call, one after another (a second item with the same email
        updates the first one's contact). Each comes back as a Contact, or as Mautic's message
        when that item failed: the call answers 201 either way."""

        def read(response: httpx.Response) -> list[Contact | str]:
            reply = response.json()
            codes = _by_index(reply["statusCodes"])
            errors, listed = _by_index(reply.get("errors")), _by_index(reply.get("contacts"))
            outcomes: list[Contact | str] = []
            for index, body in enumerate(bodies):
                data, code = listed.get(index), int(codes[index])
                if code in (200, 201) and isinstance(data, dict):
                    outcomes.append(_contact(data, created=code == 201, sent=body))
                else:
                    error = errors.get(index)
                    said = error.get("message") if isinstance(error, dict) else None
                    outcomes.append(f"HTTP {code}: {said or 'failed'}")
            return outcomes

        return self._call(
            "POST",
            "/api/contacts/batch/new",
            action=f"upsert {len(bodies)} contacts",
            json=bodies,
            read=read,
            errors_in_items=True,
        )

    def add_contacts_to_segment(self, segment_id: int, contact_ids: list[int]) -> list[int]:
        """Add many at once; the ids Mautic did not add (unknown, or not editable by the API
        user). ListApiController::addLeadsAction; the same 403 as a single add."""
        return self._call(
            "POST",
            f"/api/segments/{segment_id}/contacts/add",
            action=f"add {len(contact_ids)} contacts to segment {segment_id}",
            json={"ids": contact_ids},
            read=lambda response: [
                int(i) for i, d in response.json()["details"].items() if not d.get("success")
            ],
            hint_403=SEGMENT_ACCESS_HINT.format(id=segment_id),
        )

    def upsert_contact(self, body: dict[str, Any]) -> Contact:
        """Create or update the contact matched by `body["email"]`, in one call."""

        def read(response: httpx.Response) -> Contact:
            data = response.json()["contact"]
            return _contact(data, created=response.status_code == 201, sent=body)

        return self._call(
            "POST", "/api/contacts/new", action="upsert contact", json=body, read=read
        )

    def segment_ids(self, contact_id: int) -> set[int]:
        return self._call(
            "GET",
            f"/api/contacts/{contact_id}/segments",
            action="list contact segments",
            read=lambda response: _ids(response.json().get("lists")),
        )

    def in_campaign(self, campaign_id: int, contact_id: int) -> bool:
        """Whether the contact is a member (manual removals count as not), in any publish state.

        Read from the campaign_leads stats table, which answers alike on Mautic 5 and 6 and
        sees every member whoever built the campaign. `GET /api/campaigns/{id}/contacts` with a
        `where` is a 400 on Mautic 6, and `GET /api/contacts/{id}/campaigns` hides unpublished
        campaigns and other users' ones.
        """
        params = {
            "where[0][col]": "campaign_id",
            "where[0][expr]": "eq",
            "where[0][val]": str(campaign_id),
            "where[1][col]": "lead_id",
            "where[1][expr]": "eq",
            "where[1][val]": str(contact_id),
            "where[2][col]": "manually_removed",
            "where[2][expr]": "eq",
            "where[2][val]": "0",
            "limit": "1",
        }
        action = f"check campaign {campaign_id} membership"

        def read(response: httpx.Response) -> bool:
            reply = response.json()
            if "total" not in reply and "availableTables" in reply:
                raise ServiceError(
                    "Mautic", action, "this Mautic has no campaign_leads stats table to read"
                )
            return int(reply["total"]) > 0

        return self._call("GET", "/api/stats/campaign_leads", action=action, params=params,
                          read=read)  # fmt: skip

    def add_to_segment(self, segment_id: int, contact_id: int) -> None:
        self._segment(segment_id, contact_id, "add")

    def remove_from_segment(self, segment_id: int, contact_id: int) -> None:
        self._segment(segment_id, contact_id, "remove")

    def _segment(self, segment_id: int, contact_id: int, change: str) -> None:
        preposition = "to" if change == "add" else "from"
        self._call(
            "POST",
            f"/api/segments/{segment_id}/contact/{contact_id}/{change}",
            action=f"{change} {preposition} segment {segment_id}",
            read=_success,
            hint_403=SEGMENT_ACCESS_HINT.format(id=segment_id),
        )

    def add_to_campaign(self, campaign_id: int, contact_id: int) -> None:
        """Add once. A request that may have landed is not repeated blindly: a campaign that
        allows restarts would send its sequence again, so membership is checked first."""
        path = f"/api/campaigns/{campaign_id}/contact/{contact_id}/add"
        action = f"add to campaign {campaign_id}"
        try:
            self._call("POST", path, action=action, replay_safe=False, read=_success)
        except ServiceError as exc:
            if not (exc.transient and exc.maybe_applied):
                raise
            if self.in_campaign(campaign_id, contact_id):
                return
            self._call("POST", path, action=action, replay_safe=False, read=_success)

    def remove_from_campaign(self, campaign_id: int, contact_id: int) -> None:
        """Idempotent: removing a non-member changes nothing and still answers success."""
        self._call(
            "POST",
            f"/api/campaigns/{campaign_id}/contact/{contact_id}/remove",
            action=f"remove from campaign {campaign_id}",
            read=_success,
        )

    # --- for the segment aliases of the routing, and for f/marketing/setup ----------------

    def segments(self) -> list[dict[str, Any]]:
        """Every segment the API user can list (all of them with lead:lists:viewother)."""
        return self._listing("/api/segments", "lists", action="list segments")

    def segment(self, segment_id: int) -> dict[str, Any] | None:
        return self._one(f"/api/segments/{segment_id}", "list", action=f"read segment {segment_id}")

    def create_segment(self, alias: str, name: str) -> dict[str, Any]:
        """A published segment visible to other users, with no filters: members are added."""
        body = {"name": name, "alias": alias, "isPublished": True, "isGlobal": True}
        return self._call(
            "POST",
            "/api/segments/new",
            action=f"create segment {alias}",
            json=body,
            read=lambda response: response.json()["list"],
        )

    def campaign(self, campaign_id: int) -> dict[str, Any] | None:
        return self._one(
            f"/api/campaigns/{campaign_id}", "campaign", action=f"read campaign {campaign_id}"
        )

    def contact_fields(self) -> list[dict[str, Any]]:
        return self._listing("/api/fields/contact", "fields", action="list contact fields")

    def create_contact_field(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create it; True when Mautic creates its column later, in the background (202)."""
        return self._call(
            "POST",
            "/api/fields/contact/new",
            action=f"create contact field {body.get('alias')}",
            json=body,
            read=lambda response: (response.json()["field"], response.status_code == 202),
        )

    def me(self) -> dict[str, Any]:
        """The API user (GET /api/users/self needs no permission): also a credentials check."""
        return self._call(
            "GET", "/api/users/self", action="read the API user", read=lambda r: dict(r.json())
        )

    def granted(self, user_id: int, permissions: list[str]) -> dict[str, bool]:
        """Which of these role permissions the user has (UserApiController::isGrantedAction)."""
        return self._call(
            "POST",
            f"/api/users/{user_id}/permissioncheck",
            action="check the API user's permissions",
            json={"permissions": permissions},
            read=lambda r: {p: bool(r.json()[p]) for p in permissions},
        )

    def _listing(self, path: str, key: str, *, action: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._call(
                "GET",
                path,
                action=action,
                params={"start": len(items), "limit": PAGE},
                read=lambda response: _listed(response.json(), key),
            )
            items += page
            if len(page) < PAGE:
                return items

    def _one(self, path: str, key: str, *, action: str) -> dict[str, Any] | None:
        return self._call(
            "GET",
            path,
            action=action,
            ok_statuses=(404,),
            read=lambda r: None if r.status_code == 404 else dict(r.json()[key]),
        )

    def add_do_not_contact(self, contact_id: int, reason: int, comments: str) -> None:
        self._call(
            "POST",
            f"/api/contacts/{contact_id}/dnc/email/add",
            action="add do-not-contact",
            json={"reason": reason, "comments": comments},
        )

    def remove_do_not_contact(self, contact_id: int) -> None:
        self._call(
            "POST", f"/api/contacts/{contact_id}/dnc/email/remove", action="remove do-not-contact"
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        action: str,
        hint_403: str = "",
        errors_in_items: bool = False,
        **kwargs: Any,
    ) -> Any:
        if self._oauth and self._token is None:
            self._fetch_token()
        read = kwargs.pop("read", None)

        def checked(response: httpx.Response) -> Any:
            body = json_body(response)
            if (
                response.is_success
                and not errors_in_items
                and isinstance(body, dict)
                and body.get("errors")
            ):
                # Some 2xx replies carry errors (batch items, stats listings): they are errors.
                raise ServiceError(
                    "Mautic", action, read_error(response), status=response.status_code
                )
            return read(response) if read else response

        def send() -> Any:
            return self.http.request(
                method, path, action=action, headers=self._auth_headers(), read=checked, **kwargs
            )

        try:
            try:
                return send()
            except ServiceError as exc:
                if exc.status != 401 or not self._oauth:
                    raise
                self._fetch_token()  # expired token: one fresh token, one more try
                return send()
        except ServiceError as exc:
            if exc.status == 403 and hint_403:
                raise ServiceError(
                    "Mautic", action, f"{exc.detail} ({hint_403})", status=403
                ) from None
            raise

    def _auth_headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self._token}"} if self._oauth else None

    def _fetch_token(self) -> None:
        client_id, client_secret = self._oauth or ("", "")
        self._token = self.http.request(
            "POST",
            "/oauth/v2/token",
            action="get OAuth2 token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
            read=lambda response: str(response.json()["access_token"]),
        )


def _newer(data: dict[str, Any], than: dict[str, Any]) -> bool:
    """Mautic matches the newest contact of those sharing an email (LeadModel)."""
    return (str(data.get("dateAdded") or ""), int(data["id"])) > (
        str(than.get("dateAdded") or ""),
        int(than["id"]),
    )


def _listed(body: Any, key: str) -> list[dict[str, Any]]:
    # Lists are objects keyed by id; an empty one may be [] or {}, or the whole body [].
    listing = body.get(key) if isinstance(body, dict) else body
    if isinstance(listing, dict):
        return [item for item in listing.values() if isinstance(item, dict)]
    return [item for item in listing or [] if isinstance(item, dict)]


def _by_index(items: Any) -> dict[int, Any]:
    """A batch reply's per-item array by request index. PHP writes an array keyed 0..k as a
    JSON list and any other as an object keyed by the index as text, so `errors` is a list
    when exactly the first items failed, and `contacts` an object when any but the last did
    (CommonApiController::newEntitiesAction; mautic#9243)."""
    if isinstance(items, list):
        return dict(enumerate(items))
    if isinstance(items, dict):
        return {int(key): value for key, value in items.items()}
    return {}


def _ids(listing: Any) -> set[int]:
    # Mautic lists are objects keyed by id, and an empty one may come back as [] or {}.
    if isinstance(listing, dict):
        return {int(key) for key in listing}
    if isinstance(listing, list):
        return {int(item["id"]) for item in listing if isinstance(item, dict) and "id" in item}
    return set()
