"""A stateful stand-in for Mautic's REST API: contacts, segments, campaigns, do-not-contact.

It behaves as Mautic 5.1 does (mautic/mautic; see the README's "API facts relied on"),
including the quirks and refusals a client has to survive: `contacts/new` upserts on the email
and silently drops unknown field aliases; blanks do not overwrite but a boolean `false` does;
lists are objects keyed by id with a string `total`; campaign add answers success even when it
starts the sequence again; an email do-not-contact added over another rewrites it unless it
is an unsubscribe; segment add/remove answer 403 for a segment the API user may not use;
`contacts/new` and `batch/new` need "Contacts: Create" even for a contact that exists; and
`GET /api/campaigns/{id}/contacts` answers 403 without access, and 400 to any `where` on
Mautic 6 (`mautic6=True`), where membership is read from the `campaign_leads` stats table
instead. Only the routes the product calls are served (and the refusals of ones it must avoid);
a contact key it does not send is refused rather than half-modelled.
"""

import base64
import copy
import csv
import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from tests.fakes.faults import BadBody, Body, FakeService, Reject, json_response, read_body

# alias -> field type
DEFAULT_FIELDS = {
    "email": "email",
    "firstname": "text",
    "lastname": "text",
    "plan": "text",
    "signup_source": "text",
    "marketing_consent": "boolean",
    "churn_reason": "textarea",
    "churned_at": "datetime",
}
# Built by the marketing team, not the API user: published and visible to other users.
DEFAULT_SEGMENTS = {
    sid: {"alias": alias, "published": True, "global": True, "owner": "marketing"}
    for sid, alias in {
        1: "active",
        2: "plan-free",
        3: "plan-pro",
        4: "plan-business",
        5: "churned",
    }.items()
}
DEFAULT_CAMPAIGNS = {
    cid: {"name": name, "allow_restart": True, "published": True, "owner": "marketing"}
    for cid, name in {10: "Onboarding", 11: "Upgrade", 12: "Win-back"}.items()
}
# What a dedicated API user is given in the README; a test removes one to see the refusal.
DEFAULT_PERMISSIONS = frozenset(
    {
        "lead:leads:create",
        "lead:leads:editother",
        "lead:lists:viewother",
        "campaign:campaigns:viewother",
        "lead:fields:full",
    }
)
# A level grants the lower ones (AbstractPermissions::analyzePermissions).
IMPLIED = {
    "lead:leads:editother": {"lead:leads:viewother", "lead:leads:editown", "lead:leads:viewown"},
    "lead:leads:viewother": {"lead:leads:viewown"},
    "lead:lists:viewother": {"lead:lists:viewown"},
    "campaign:campaigns:viewother": {"campaign:campaigns:viewown"},
    "lead:fields:full": {"lead:fields:view"},
}
USER_IDS = {"marketing": 1}  # the API user is 2
FIELD_TYPES = {"text", "textarea", "boolean", "datetime", "date", "select", "number", "email"}
# Keys of a contact body that Mautic reads but this stand-in does not model: refused, so a
# client that starts sending one finds out here rather than in production.
UNMODELLED_KEYS = {
    "id",
    "tags",
    "overwriteWithBlank",
    "owner",
    "stage",
    "companies",
    "points",
    "ipAddress",
    "lastActive",
}
DNC_REASONS = {1, 2, 3}  # unsubscribed, bounced, manual (0 means contactable)
DNC_UNSUBSCRIBED = 1
# The campaign_leads table, which GET /api/campaigns/{id}/contacts lists.
CAMPAIGN_LEAD_COLUMNS = {
    "campaign_id",
    "lead_id",
    "date_added",
    "manually_removed",
    "manually_added",
    "date_last_exited",
    "rotation",
}
MAX_BATCH = 200  # api_batch_max_limit
PAGE = 30  # default_pagelimit
HOUR = 3600.0
DEFAULT_MESSAGES = {
    400: "Bad request.",
    401: "Authorization denied, invalid credentials.",
    403: "You do not have access to the requested area/action.",
    404: "Item was not found.",
    500: "Internal server error.",
}


def _boolean(value: Any) -> bool:
    """PHP's FILTER_VALIDATE_BOOLEAN as Mautic applies it: only the true words are true."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _is_zero(value: Any) -> bool:
    """0 and "0": what PHP's empty() drops before a non-boolean field is written."""
    return (isinstance(value, int | float) and not isinstance(value, bool) and value == 0) or (
        value == "0"
    )


def php_array(items: dict[int, Any]) -> list | dict:
    """How PHP's json_encode writes an array keyed by index: a JSON list when the keys are
    exactly 0..n-1, else an object keyed by the index as a string (mautic#9243)."""
    if list(items) == list(range(len(items))):
        return list(items.values())
    return {str(key): value for key, value in items.items()}


def _has_email(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("email"), str) and bool(item["email"])


def _auth_error(status: int, message: str, kind: str) -> httpx.Response:
    """Auth errors carry message, code and type, but no details."""
    return json_response(status, {"errors": [{"message": message, "code": status, "type": kind}]})


class FakeMautic(FakeService):
    """Mautic 5.1's contact, segment and campaign API, with Basic auth and OAuth2.

    State: `contacts` (id -> {"id", "fields", "dnc", "dateAdded"}),
    `segment_members` and `campaign_members` (id -> contact ids), `campaign_removed`
    ((campaign, contact) manually removed, whose row Mautic keeps), `campaign_rotations`
    ((campaign, contact) -> times (re)started).
    `segments` and `campaigns` carry `published`, `owner` (and `global` for segments);
    `permissions` are the API user's role grants that change answers.
    """

    DEFAULT_HEADERS: ClassVar[dict[str, str]] = {"Mautic-Version": "5.1.0"}
    routes = (
        ("POST", r"/oauth/v2/token", "issue_token"),
        ("GET", r"/api/contacts", "list_contacts"),
        ("POST", r"/api/contacts/new", "create_contact"),
        ("POST", r"/api/contacts/batch/new", "create_contacts"),
        ("GET", r"/api/contacts/(?P<contact_id>\d+)/segments", "contact_segments"),
        ("GET", r"/api/campaigns/(?P<campaign_id>\d+)/contacts", "campaign_contacts"),
        ("GET", r"/api/stats/(?P<table>\w+)", "list_stats"),
        ("POST", r"/api/contacts/(?P<contact_id>\d+)/dnc/(?P<channel>\w+)/add", "add_dnc"),
        ("POST", r"/api/contacts/(?P<contact_id>\d+)/dnc/(?P<channel>\w+)/remove", "remove_dnc"),
        ("GET", r"/api/segments", "list_segments"),
        ("GET", r"/api/segments/(?P<segment_id>\d+)", "get_segment"),
        ("POST", r"/api/segments/new", "create_segment"),
        ("GET", r"/api/campaigns/(?P<campaign_id>\d+)", "get_campaign"),
        ("GET", r"/api/fields/contact", "list_fields"),
        ("POST", r"/api/fields/contact/new", "create_field"),
        ("GET", r"/api/users/self", "get_self"),
        ("POST", r"/api/users/(?P<user_id>\d+)/permissioncheck", "check_permissions"),
        ("POST", r"/api/segments/(?P<segment_id>\d+)/contacts/add", "segment_bulk_add"),
        (
            "POST",
            r"/api/segments/(?P<segment_id>\d+)/contact/(?P<contact_id>\d+)/(?P<action>add|remove)",
            "segment_membership",
        ),
        (
            "POST",
            r"/api/campaigns/(?P<campaign_id>\d+)/contact/(?P<contact_id>\d+)/(?P<action>add|remove)",
            "campaign_membership",
        ),
    )

    def __init__(
        self,
        base_url: str = "https://mautic.test",
        *,
        username: str = "api-user",
        password: str = "api-pass",
        oauth_clients: dict[str, str] | None = None,
        api_enabled: bool = True,
        basic_auth_enabled: bool = True,
        fields: dict[str, str] | None = None,
        segments: dict[int, dict] | None = None,
        campaigns: dict[int, dict] | None = None,
        permissions: set[str] | frozenset[str] = DEFAULT_PERMISSIONS,
        admin: bool = False,
        fields_in_background: bool = False,
        mautic6: bool = False,
        rate_limit: int | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(base_url)
        self.username = username
        self.password = password
        self.oauth_clients = dict(oauth_clients or {})
        self.api_enabled = api_enabled
        self.basic_auth_enabled = basic_auth_enabled
        self.fields = dict(DEFAULT_FIELDS if fields is None else fields)
        self.segments: dict[int, dict[str, Any]] = copy.deepcopy(
            DEFAULT_SEGMENTS if segments is None else segments
        )
        self.campaigns: dict[int, dict[str, Any]] = copy.deepcopy(
            DEFAULT_CAMPAIGNS if campaigns is None else campaigns
        )
        self.permissions = set(permissions)
        self.admin = admin
        # create_custom_field_in_background: a new field is usable once the cron job has run.
        self.fields_in_background = fields_in_background
        # Mautic 6 (Symfony 6.4): `$request->query->get()` of an array is a 400.
        self.mautic6 = mautic6
        if mautic6:
            self.default_headers = {"Mautic-Version": "6.0.0"}
        self.pending_fields: dict[str, str] = {}
        self._segment_ids = itertools.count(max(self.segments, default=0) + 1)
        self.rate_limit = rate_limit
        self.contacts: dict[int, dict] = {}
        self._by_email: dict[str, list[int]] = {}  # an index, as the database's on email
        self.segment_members: dict[int, set[int]] = {sid: set() for sid in self.segments}
        self.campaign_members: dict[int, set[int]] = {cid: set() for cid in self.campaigns}
        self.campaign_removed: set[tuple[int, int]] = set()
        self.campaign_rotations: dict[tuple[int, int], int] = {}
        # Emails Mautic refuses to save (its own validation, say), with its message.
        self.refused: dict[str, str] = {}
        self.issued_tokens: dict[str, str] = {}  # access token -> client id
        self.expired_tokens: set[str] = set()
        self._ids = itertools.count(1)
        self._token_ids = itertools.count(1)
        self._dnc_ids: dict[tuple[int, str], int] = {}
        self._hour_calls = 0
        # With a clock, the limiter counts calls per clock hour, as Mautic's does; without one,
        # until reset_rate_limit().
        self.monotonic = monotonic
        self._window = 0

    # --- helpers for tests ----------------------------------------------------------------

    def contact_by_email(self, email: str) -> dict | None:
        """The contact Mautic would match: lowercased email, newest dateAdded wins."""
        wanted = email.strip().lower()
        matches = [
            c
            for c in (self.contacts.get(i) for i in self._by_email.get(wanted, ()))
            if c is not None and str(c["fields"].get("email") or "").strip().lower() == wanted
        ]
        return max(matches, key=lambda c: (c["dateAdded"], c["id"]), default=None)

    def _index(self, contact: dict) -> None:
        email = str(contact["fields"].get("email") or "").strip().lower()
        if email and contact["id"] not in self._by_email.get(email, []):
            self._by_email.setdefault(email, []).append(contact["id"])

    def add_contact(
        self,
        email: str,
        *,
        dnc: list[dict] | None = None,
        segments: tuple[int, ...] | list[int] = (),
        campaigns: tuple[int, ...] | list[int] = (),
        date_added: str | None = None,
        **fields: Any,
    ) -> int:
        """Seed a contact directly (no request logged); returns its id."""
        contact = self._new_contact(date_added)
        contact["fields"].update(email=email, **fields)
        self._index(contact)
        contact["dnc"] = [dict(entry) for entry in dnc or []]
        for segment_id in segments:
            self.segment_members.setdefault(segment_id, set()).add(contact["id"])
        for campaign_id in campaigns:
            self.campaign_members.setdefault(campaign_id, set()).add(contact["id"])
            self.campaign_rotations[(campaign_id, contact["id"])] = 1
        return contact["id"]

    def run_field_cron(self) -> None:
        """mautic:custom-field:create-column: the columns of background-created fields."""
        self.fields.update(self.pending_fields)
        self.pending_fields.clear()

    def granted(self, permission: str) -> bool:
        if self.admin or permission in self.permissions:
            return True
        return any(permission in IMPLIED.get(held, ()) for held in self.permissions)

    def expire_tokens(self) -> None:
        """Every token issued so far now gets 401 invalid_grant (60 minutes have passed)."""
        self.expired_tokens.update(self.issued_tokens)

    def reset_rate_limit(self) -> None:
        """Start a new hour."""
        self._hour_calls = 0

    # --- plumbing -------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None = None) -> Body:
        if status == 429 and message is None:
            limit = self.rate_limit if self.rate_limit is not None else 100
            message = f"You exceeded the rate limit of {limit} API calls per hour."
        message = message or DEFAULT_MESSAGES.get(status) or httpx.codes.get_reason_phrase(status)
        return {"errors": [{"code": status, "message": message, "details": [], "type": None}]}

    def not_found(self, request: httpx.Request) -> httpx.Response:
        message = f"Requested URL not found: {request.url.path}"
        return self.error(404, self.error_body(404, message))

    def check_access(self, request: httpx.Request) -> httpx.Response | None:
        """API switch, then Basic auth or a Bearer token, then the hourly rate limiter."""
        path = self.relative_path(request) or ""
        is_api = path == "/api" or path.startswith("/api/")
        if not (is_api or path.startswith("/oauth/")):
            return None
        if not self.api_enabled:
            message = (
                "API disabled. You need to enable the API in the API settings of Mautic's "
                "Configuration."
            )
            return _auth_error(403, message, "api_disabled")
        if not is_api:
            return None  # the token endpoint authenticates the client itself
        denied = self._authenticate(request.headers.get("authorization", ""))
        if denied is not None:
            return denied
        if self.rate_limit is not None:
            if self.monotonic is not None and int(self.monotonic() // HOUR) != self._window:
                self._window, self._hour_calls = int(self.monotonic() // HOUR), 0
            if self._hour_calls >= self.rate_limit:
                return self.error(429)
            self._hour_calls += 1
        return None

    def _authenticate(self, header: str) -> httpx.Response | None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            if not self.basic_auth_enabled:
                message = "Basic Auth disabled. Enable it in Mautic's API settings."
                return _auth_error(403, message, "access_denied")
            try:
                user, _, password = base64.b64decode(credentials).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if (user, password) != (self.username, self.password):
                message = "Authorization denied, invalid credentials."
                return _auth_error(401, message, "access_denied")
            return None
        if scheme.lower() == "bearer":
            if credentials in self.expired_tokens:
                message = "The access token provided has expired."
                return _auth_error(401, message, "invalid_grant")
            if credentials not in self.issued_tokens:
                message = "The access token provided is invalid."
                return _auth_error(401, message, "invalid_grant")
            return None
        return _auth_error(401, "API authorization denied.", "access_denied")

    @staticmethod
    def _body(request: httpx.Request) -> Any:
        try:
            return read_body(request)
        except BadBody as exc:
            raise Reject(400, f"Request body is not valid JSON: {exc}") from exc

    def _contact(self, contact_id: str | int, message: str = "Item was not found.") -> dict:
        contact = self.contacts.get(int(contact_id))
        if contact is None:
            raise Reject(404, message)
        return contact

    # --- contact state --------------------------------------------------------------------

    def _new_contact(self, date_added: str | None = None) -> dict:
        contact_id = next(self._ids)
        contact = {
            "id": contact_id,
            "fields": dict.fromkeys(sorted(self.fields)),
            "dnc": [],
            "dateAdded": date_added or datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.contacts[contact_id] = contact
        return contact

    def _write(self, contact: dict, body: dict) -> None:
        """Apply a contact body the way `contacts/new` does."""
        dnc_changes = self._dnc_changes(body)  # may reject: before anything changes
        for alias, value in body.items():
            if alias == "doNotContact" or alias not in self.fields:
                continue  # unknown aliases are dropped without a word
            if value in ("", None):
                continue
            if self.fields[alias] == "boolean":
                # Set before the blank check (RequestTrait): `false` does overwrite `true`.
                contact["fields"][alias] = _boolean(value)
                continue
            if _is_zero(value):
                continue
            contact["fields"][alias] = value
        self._index(contact)
        for channel, reason, comments in dnc_changes:
            if reason == 0:  # inline, reason 0 (contactable) lifts the entry
                self._remove_dnc(contact, channel)
            else:
                self._add_dnc(contact, channel, reason, comments)

    @staticmethod
    def _dnc_changes(body: dict) -> list[tuple[str, int, str]]:
        """Inline `doNotContact` entries as (channel, reason, comments)."""
        entries = body.get("doNotContact")
        changes = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            try:
                reason = int(entry.get("reason", 3))
            except (TypeError, ValueError) as exc:
                raise Reject(400, "Invalid reason code given") from exc
            changes.append(
                (str(entry.get("channel", "email")), reason, entry.get("comments") or "")
            )
        return changes

    @staticmethod
    def _add_dnc(contact: dict, channel: str, reason: int, comments: str) -> None:
        """One entry per channel. A different reason rewrites its reason, comment and date,
        unless the entry is an unsubscribe (1), which nothing overwrites (DoNotContact.php)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for entry in contact["dnc"]:
            if entry["channel"] == channel:
                if entry["reason"] != reason and entry["reason"] != DNC_UNSUBSCRIBED:
                    entry.update(reason=reason, comments=comments, dateAdded=now)
                return
        contact["dnc"].append(
            {"channel": channel, "reason": reason, "comments": comments, "dateAdded": now}
        )

    @staticmethod
    def _remove_dnc(contact: dict, channel: str) -> bool:
        before = len(contact["dnc"])
        contact["dnc"] = [e for e in contact["dnc"] if e["channel"] != channel]
        return len(contact["dnc"]) < before

    def _upsert(self, body: Any) -> tuple[dict, bool]:
        if not isinstance(body, dict):
            raise Reject(400, "Request body must be an object of contact fields")
        unmodelled = sorted(UNMODELLED_KEYS & set(body))
        if unmodelled:
            raise Reject(400, f"FakeMautic does not model {unmodelled[0]!r}")
        self._dnc_changes(body)  # a bad reason rejects before a contact is created
        email = body.get("email")
        if isinstance(email, str) and email.strip().lower() in self.refused:
            raise Reject(422, self.refused[email.strip().lower()])
        existing = self.contact_by_email(email) if isinstance(email, str) and email else None
        contact = existing or self._new_contact()
        self._write(contact, body)
        return contact, existing is None

    def _serialise(self, contact: dict) -> dict:
        values = {alias: contact["fields"].get(alias) for alias in sorted(self.fields)}
        dnc = []
        for entry in contact["dnc"]:
            key = (contact["id"], entry["channel"])
            dnc_id = self._dnc_ids.setdefault(key, len(self._dnc_ids) + 1)
            dnc.append({"id": dnc_id, **entry, "channelId": None})
        return {
            "id": contact["id"],
            "dateAdded": contact["dateAdded"],
            "points": 0,
            "tags": [],
            "doNotContact": dnc,
            "fields": {
                "core": {
                    alias: {"alias": alias, "group": "core", "type": "text", "value": value}
                    for alias, value in values.items()
                },
                "social": {},
                "personal": {},
                "professional": {},
                "all": {"id": contact["id"], **values},
            },
        }

    # --- routes: auth ---------------------------------------------------------------------

    def issue_token(self, request: httpx.Request) -> httpx.Response:
        """OAuth2 client credentials: form fields (or query string) in, bearer token out."""
        body = self._body(request)
        form = {**dict(request.url.params), **(body if isinstance(body, dict) else {})}
        if form.get("grant_type") != "client_credentials":
            return json_response(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Invalid grant_type parameter or parameter missing",
                },
            )
        client_id = str(form.get("client_id", ""))
        if client_id not in self.oauth_clients or self.oauth_clients[client_id] != form.get(
            "client_secret"
        ):
            return json_response(
                400,
                {
                    "error": "invalid_client",
                    "error_description": "The client credentials are invalid",
                },
            )
        token = f"mautic-token-{next(self._token_ids)}"
        self.issued_tokens[token] = client_id
        return json_response(
            200, {"access_token": token, "expires_in": 3600, "token_type": "bearer"}
        )

    # --- routes: contacts -----------------------------------------------------------------

    def create_contact(self, request: httpx.Request) -> httpx.Response:
        """POST /api/contacts/new: update the email's contact (200) or create one (201).
        Needs Contacts: Create either way (CommonApiController::newEntityAction)."""
        self._require_create()
        contact, created = self._upsert(self._body(request))
        if not created:
            return json_response(200, {"contact": self._serialise(contact)})
        location = f"{self.base_url}/api/contacts/{contact['id']}"
        return json_response(
            201, {"contact": self._serialise(contact)}, headers={"Location": location}
        )

    def list_contacts(self, request: httpx.Request) -> httpx.Response:
        """GET /api/contacts: `where` on email with `eq` or `in` (a comma-separated string of
        values, quoted or not: CommonRepository::buildWhereClauseFromArray runs str_getcsv on
        it, and an array there is a PHP error, answered 500); 30 a page unless `limit`, and
        `limit=0` is no limit."""
        params = request.url.params
        if "search" in params:
            raise Reject(400, "FakeMautic does not implement search=; use where[...]")
        clauses: dict[str, dict[str, str]] = {}
        for key, value in params.multi_items():
            match = re.fullmatch(r"where\[(\d+)\]\[(col|expr|val)\](\[\])?", key)
            if match and match[3]:
                raise Reject(500, "html_entity_decode(): Argument #1 ($string) must be a string")
            if match:
                clauses.setdefault(match[1], {})[match[2]] = value
        contacts = sorted(self.contacts.values(), key=lambda c: c["id"])
        for clause in clauses.values():
            col, expr = clause.get("col"), clause.get("expr")
            if col != "email" or expr not in {"eq", "in"}:
                raise Reject(400, f"FakeMautic only implements where email eq/in, got {clause}")
            raw = clause.get("val", "")
            values = next(csv.reader([raw])) if expr == "in" else [raw]
            wanted = {v.strip().lower() for v in values}
            contacts = [
                c for c in contacts if str(c["fields"].get("email") or "").lower() in wanted
            ]
        limit = int(params.get("limit", PAGE))
        page = contacts if limit == 0 else contacts[:limit]
        return json_response(
            200,
            {
                "total": str(len(contacts)),
                "contacts": {str(c["id"]): self._serialise(c) for c in page},
            },
        )

    def create_contacts(self, request: httpx.Request) -> httpx.Response:
        """POST /api/contacts/batch/new: items one after another (a second item with the same
        email updates the first one's contact); 201 overall, `statusCodes` and `errors` by
        index; more than 200 items is a 500 (ApiBundle validateBatchPayload)."""
        self._require_create()  # once, for the whole call (newEntitiesAction)
        items = self._body(request)
        if not isinstance(items, list):
            raise Reject(400, "Request body must be an array of contacts")
        if len(items) > MAX_BATCH:
            raise Reject(500, f"A max of {MAX_BATCH} entities are supported at a time.")
        contacts: dict[int, Any] = {}
        codes: list[int] = []
        errors: dict[int, Any] = {}
        for index, item in enumerate(items):
            try:
                # An item that matches a contact needs edit access to it.
                existing = self.contact_by_email(item["email"]) if _has_email(item) else None
                if existing is not None and not self.granted("lead:leads:editother"):
                    raise Reject(403, DEFAULT_MESSAGES[403])
                contact, created = self._upsert(item)
            except Reject as rejected:
                codes.append(rejected.status)
                errors[index] = {"message": rejected.message, "code": rejected.status,
                                 "type": "api"}  # fmt: skip
                continue
            contacts[index] = self._serialise(contact)
            codes.append(201 if created else 200)
        reply: dict[str, Any] = {"contacts": php_array(contacts), "statusCodes": codes}
        if errors:
            reply["errors"] = php_array(errors)
        return json_response(201, reply)

    def _require_create(self) -> None:
        if not self.granted("lead:leads:create"):
            raise Reject(403, DEFAULT_MESSAGES[403])

    def contact_segments(self, request: httpx.Request, contact_id: str) -> httpx.Response:
        contact = self._contact(contact_id)
        lists = {
            str(sid): {"id": sid, "name": self._segment_name(sid), "alias": self._alias(sid)}
            for sid, members in sorted(self.segment_members.items())
            if contact["id"] in members and sid in self.segments
        }
        return json_response(200, {"total": len(lists), "lists": lists})

    def add_dnc(self, request: httpx.Request, contact_id: str, channel: str) -> httpx.Response:
        """Reason defaults to 3 (manual); 0 means contactable and is refused here."""
        contact = self._contact(contact_id)
        body = self._body(request)
        try:
            reason = int(body.get("reason", 3))
        except (TypeError, ValueError):
            reason = -1
        if reason not in DNC_REASONS:
            raise Reject(400, "Invalid reason code given")
        self._add_dnc(contact, channel, reason, str(body.get("comments") or ""))
        return json_response(200, {"contact": self._serialise(contact)})

    def remove_dnc(self, request: httpx.Request, contact_id: str, channel: str) -> httpx.Response:
        contact = self._contact(contact_id)
        found = self._remove_dnc(contact, channel)
        return json_response(200, {"recordFound": found, "contact": self._serialise(contact)})

    # --- routes: segments and campaigns ---------------------------------------------------

    def _alias(self, segment_id: int) -> str:
        return self.segments[segment_id]["alias"]

    def _segment_name(self, segment_id: int) -> str:
        return self._alias(segment_id).replace("-", " ").title()

    def _may_use_segment(self, segment_id: int) -> bool:
        """LeadListRepository::getLists: published ones with view-other; without it, the
        published global ones or the API user's own (published or not)."""
        segment = self.segments[segment_id]
        published = segment.get("published", True)
        if self.granted("lead:lists:viewother"):
            return published
        own = segment.get("owner") == self.username
        return (published and segment.get("global", True)) or own

    def _may_view_campaign(self, campaign_id: int) -> bool:
        own = self.campaigns[campaign_id].get("owner") == self.username
        return own or self.granted("campaign:campaigns:viewother")

    def _user_id(self, username: str | None) -> int:
        return 2 if username == self.username else USER_IDS.get(username or "", 1)

    def _segment_item(self, sid: int) -> dict:
        segment = self.segments[sid]
        return {
            "id": sid,
            "name": segment.get("name") or self._segment_name(sid),
            "alias": self._alias(sid),
            "isPublished": segment.get("published", True),
            "isGlobal": segment.get("global", True),
            "createdBy": self._user_id(segment.get("owner")),
            "filters": [],
        }

    @staticmethod
    def _page(request: httpx.Request, items: list) -> list:
        start = int(request.url.params.get("start", 0))
        return items[start : start + int(request.url.params.get("limit", 30))]

    def list_segments(self, request: httpx.Request) -> httpx.Response:
        """GET /api/segments: without view-other only the user's own; `search` is a partial
        match on name and alias; 30 a page unless `limit` says otherwise."""
        text = request.url.params.get("search", "").lower()
        everyone = self.granted("lead:lists:viewother")
        visible = [
            sid
            for sid in sorted(self.segments)
            if everyone or self.segments[sid].get("owner") == self.username
        ]
        found = [
            self._segment_item(sid)
            for sid in visible
            if text in self._alias(sid).lower() or text in self._segment_name(sid).lower()
        ]
        lists = {str(item["id"]): item for item in self._page(request, found)}
        return json_response(200, {"total": str(len(found)), "lists": lists or []})

    def get_segment(self, request: httpx.Request, segment_id: str) -> httpx.Response:
        """Any segment is readable with view-own (ListApiController::checkEntityAccess)."""
        if int(segment_id) not in self.segments:
            raise Reject(404, "Item was not found.")
        return json_response(200, {"list": self._segment_item(int(segment_id))})

    def create_segment(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        if not isinstance(body, dict) or not body.get("name"):
            raise Reject(400, "name: A name is required.")
        # FormModel::cleanAlias(alias, '', 0, '-'): spaces to -, then only [a-z0-9-] kept.
        alias = str(body.get("alias") or body["name"]).strip().replace(" ", "-")
        alias = re.sub(r"[^0-9a-z-]+", "", alias, flags=re.IGNORECASE).lower() or "abcde"
        taken = {self._alias(sid) for sid in self.segments}
        base, n = alias, 1 if alias in taken else 0
        while alias in taken:  # ListModel::saveEntity appends a number: planpro1, planpro2
            alias, n = f"{base}{n}", n + 1
        sid = next(self._segment_ids)
        self.segments[sid] = {
            "alias": alias,
            "name": body["name"],
            "published": bool(body.get("isPublished", True)),
            "global": bool(body.get("isGlobal", True)),
            "owner": self.username,
        }
        self.segment_members[sid] = set()
        return json_response(201, {"list": self._segment_item(sid)})

    def get_campaign(self, request: httpx.Request, campaign_id: str) -> httpx.Response:
        cid = int(campaign_id)
        if cid not in self.campaigns:
            raise Reject(404, "Item was not found.")
        if not self._may_view_campaign(cid):
            raise Reject(403, DEFAULT_MESSAGES[403])
        campaign = self.campaigns[cid]
        return json_response(
            200,
            {
                "campaign": {
                    "id": cid,
                    "name": campaign["name"],
                    "isPublished": campaign.get("published", True),
                    "allowRestart": bool(campaign.get("allow_restart")),
                    "createdBy": self._user_id(campaign.get("owner")),
                }
            },
        )

    def list_fields(self, request: httpx.Request) -> httpx.Response:
        if not self.granted("lead:fields:view"):
            raise Reject(403, DEFAULT_MESSAGES[403])
        known = {**self.fields, **self.pending_fields}
        items = [
            {
                "id": index,
                "label": alias.replace("_", " ").capitalize(),
                "alias": alias,
                "type": kind,
                "group": "core",
                "object": "lead",
                "isPublished": alias in self.fields,
            }
            for index, (alias, kind) in enumerate(sorted(known.items()), start=1)
        ]
        fields = {str(item["id"]): item for item in self._page(request, items)}
        return json_response(200, {"total": len(items), "fields": fields or []})

    def create_field(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        if not isinstance(body, dict) or not body.get("label"):
            raise Reject(400, "label: A label is required.")
        alias, kind = str(body.get("alias") or ""), str(body.get("type") or "text")
        if alias in self.fields or alias in self.pending_fields:
            raise Reject(400, "alias: Another field is already using this alias.")
        if kind not in FIELD_TYPES:
            raise Reject(400, f"type: {kind} is not a field type.")
        properties = body.get("properties") or {}
        if kind == "boolean" and not (properties.get("yes") and properties.get("no")):
            raise Reject(400, "properties: A 'positive' label is required.")
        field = {"alias": alias, "label": body["label"], "type": kind, "object": "lead"}
        if self.fields_in_background:
            self.pending_fields[alias] = kind
            return json_response(202, {"field": {**field, "isPublished": False}})
        self.fields[alias] = kind
        return json_response(201, {"field": {**field, "isPublished": True}})

    def get_self(self, request: httpx.Request) -> httpx.Response:
        role = {"id": 2, "name": "API", "isAdmin": self.admin}
        return json_response(200, {"id": 2, "username": self.username, "role": role})

    def check_permissions(self, request: httpx.Request, user_id: str) -> httpx.Response:
        if int(user_id) != 2:
            raise Reject(404, "Item was not found.")
        wanted = (self._body(request) or {}).get("permissions") or []
        if not wanted:
            raise Reject(400, "At least one permission must be submitted.")
        return json_response(200, {p: self.granted(p) for p in wanted})

    def segment_membership(
        self, request: httpx.Request, segment_id: str, contact_id: str, action: str
    ) -> httpx.Response:
        """Add/remove one contact; idempotent. Never enrols in segment-sourced campaigns.
        Unknown segment 404, unknown contact 404, then 403 for a segment the user may not use."""
        sid = int(segment_id)
        if sid not in self.segments:
            raise Reject(404, "Item was not found.")
        contact = self._contact(contact_id, "Contact not found.")
        if not self._may_use_segment(sid):
            raise Reject(403, DEFAULT_MESSAGES[403])
        members = self.segment_members.setdefault(sid, set())
        if action == "add":
            members.add(contact["id"])
        else:
            members.discard(contact["id"])
        return json_response(200, {"success": 1})

    def segment_bulk_add(self, request: httpx.Request, segment_id: str) -> httpx.Response:
        """POST /api/segments/{id}/contacts/add {"ids": [...]}: per id success, false for an
        unknown contact; the same 403 rule as a single add; no ids is a 400."""
        sid = int(segment_id)
        if sid not in self.segments:
            raise Reject(404, "Item was not found.")
        if not self._may_use_segment(sid):
            raise Reject(403, DEFAULT_MESSAGES[403])
        body = self._body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not ids:
            raise Reject(400, "ids: a list of contact ids is required")
        details = {}
        for raw in ids:
            contact = self.contacts.get(int(raw))
            if contact is not None:
                self.segment_members.setdefault(sid, set()).add(contact["id"])
            details[str(raw)] = {"success": contact is not None}
        return json_response(200, {"success": 1, "details": details})

    def campaign_membership(
        self, request: httpx.Request, campaign_id: str, contact_id: str, action: str
    ) -> httpx.Response:
        """Always `{"success": 1}`, with no campaign permission or published check. Re-adding
        a member starts a new rotation only if the campaign allows restarts; a manually
        removed contact added again comes back. Removing keeps the row, marked removed."""
        cid = int(campaign_id)
        campaign = self.campaigns.get(cid)
        if campaign is None:
            raise Reject(404, "Item was not found.")
        contact = self._contact(contact_id)
        members = self.campaign_members.setdefault(cid, set())
        key = (cid, contact["id"])
        if action == "remove":
            if contact["id"] in members:
                members.discard(contact["id"])
                self.campaign_removed.add(key)
        elif contact["id"] not in members:
            members.add(contact["id"])
            self.campaign_removed.discard(key)
            self.campaign_rotations[key] = self.campaign_rotations.get(key, 0) + 1
        elif campaign.get("allow_restart"):
            self.campaign_rotations[key] = self.campaign_rotations.get(key, 1) + 1
        return json_response(200, {"success": 1})

    def _campaign_leads(self) -> list[dict[str, Any]]:
        """The campaign_leads table: a row per member, and per manual removal (kept, marked)."""
        keys = {(cid, lid) for cid, members in self.campaign_members.items() for lid in members}
        keys |= self.campaign_removed
        return [
            {
                "campaign_id": str(cid),
                "lead_id": str(contact_id),
                "date_added": "2026-11-26 10:00:00",
                "manually_removed": "1" if (cid, contact_id) in self.campaign_removed else "0",
                "manually_added": "1",
                "date_last_exited": None,
                "rotation": str(self.campaign_rotations.get((cid, contact_id), 1)),
            }
            for cid, contact_id in sorted(keys)
        ]

    @staticmethod
    def _where(request: httpx.Request) -> list[dict[str, str]]:
        clauses: dict[str, dict[str, str]] = {}
        for key, value in request.url.params.multi_items():
            match = re.fullmatch(r"where\[(\d+)\]\[(col|expr|val)\]", key)
            if match:
                clauses.setdefault(match[1], {})[match[2]] = value
        return list(clauses.values())

    @staticmethod
    def _stats_listing(
        request: httpx.Request,
        rows: list[dict],
        clauses: list[dict[str, str]],
        alias: str,
        items: str,
    ) -> httpx.Response:
        """Rows of campaign_leads by `where` eq on its columns, 100 a page, as the stats list
        answers (StatsApiController::listAction): an unknown column is a database error, which
        it answers as HTTP 200 with `errors`."""
        for clause in clauses:
            column = clause.get("col", "").removeprefix(f"{alias}.")
            if column not in CAMPAIGN_LEAD_COLUMNS:
                message = f"Unknown column '{alias}.{column}' in 'where clause'"
                return json_response(200, {"errors": [{"message": message, "code": 0}]})
            if clause.get("expr") != "eq":
                raise Reject(400, f"FakeMautic only implements where eq, got {clause}")
            rows = [r for r in rows if r[column] == clause.get("val")]
        params = request.url.params
        start, limit = int(params.get("start", 0)), int(params.get("limit", 100))
        return json_response(200, {"total": str(len(rows)), items: rows[start : start + limit]})

    def campaign_contacts(self, request: httpx.Request, campaign_id: str) -> httpx.Response:
        """GET /api/campaigns/{id}/contacts: members in any publish state, manual removals
        left out; 403 without view access. Mautic 6 answers any `where` with 400: the
        controller still reads it with `$request->query->get()` (CampaignApiController::
        getContactsAction), which Symfony 6.4's InputBag refuses for an array."""
        cid = int(campaign_id)
        if cid not in self.campaigns:
            raise Reject(404, "Item was not found.")
        if not self._may_view_campaign(cid):
            raise Reject(403, DEFAULT_MESSAGES[403])
        clauses = self._where(request)
        if clauses and self.mautic6:
            raise Reject(400, 'Input value "where" contains a non-scalar value.')
        rows = [
            r
            for r in self._campaign_leads()
            if r["campaign_id"] == str(cid) and r["manually_removed"] == "0"
        ]
        return self._stats_listing(request, rows, clauses, "e", "contacts")

    def list_stats(self, request: httpx.Request, table: str) -> httpx.Response:
        """GET /api/stats/{table} (StatsApiController::listAction, the same on 5 and 6), for
        campaign_leads only: `{"total", "stats": [rows]}`, 100 a page. Contact-restricted
        (CampaignBundle StatsSubscriber): any contact view permission sees every row, none is
        an error. Failures answer HTTP 200: `errors`, or for an unknown table the tables."""
        if table != "campaign_leads":
            tables = {"campaign_leads": sorted(CAMPAIGN_LEAD_COLUMNS)}
            return json_response(200, {"availableTables": list(tables), "tableColumns": tables})
        if not self.granted("lead:leads:viewown"):
            message = "You do not have the view permission to load data from the lead table"
            return json_response(200, {"errors": [{"message": message, "code": 403}]})
        rows = self._campaign_leads()
        return self._stats_listing(request, rows, self._where(request), "cl", "stats")
