"""A stateful stand-in for the part of Twenty CRM's REST API the product calls: the people
upsert (one, or a batch of up to 60), reads of people (by email too), the person object's
field metadata and the OpenAPI document.

It answers as Twenty does (twentyhq/twenty; the README's "API facts relied on"): Bearer auth,
emails stored lowercased, upsert that matches soft-deleted people and restores them, 400 for
unknown fields and SELECT values, reserved custom-field names refused, and a per-minute token
bucket answering 429 as older servers do (bare) or as newer ones do (Retry-After,
X-RateLimit-*).
"""

import copy
import math
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from f.marketing.lib.routing import TWENTY_RESERVED_NAMES
from tests.fakes.faults import BadBody, Body, FakeService, Reject, json_response, read_body

DEFAULT_CUSTOM_FIELDS = {
    "subscriptionPlan": "TEXT",
    "signupSource": "TEXT",
    "marketingConsent": "BOOLEAN",
    "churnReason": "TEXT",
    "churnedAt": "DATE_TIME",
    "lifecycleStage": "TEXT",
}

# Composite fields and the value a new person gets for each sub-field.
COMPOSITES: dict[str, dict[str, Any]] = {
    "name": {"firstName": "", "lastName": ""},
    "emails": {"primaryEmail": "", "additionalEmails": None},
    "phones": {
        "primaryPhoneNumber": "",
        "primaryPhoneCountryCode": "",
        "primaryPhoneCallingCode": "",
        "additionalPhones": None,
    },
    "linkedinLink": {"primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": None},
    "xLink": {"primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": None},
}
SCALARS: dict[str, Any] = {"jobTitle": "", "avatarUrl": "", "position": None, "companyId": None}
STANDARD_FIELDS = {*COMPOSITES, *SCALARS}

PERSON_OBJECT_ID = "20202020-0000-4000-8000-000000000001"
STANDARD_FIELD_TYPES = {
    "name": "FULL_NAME",
    "emails": "EMAILS",
    "phones": "PHONES",
    "linkedinLink": "LINKS",
    "xLink": "LINKS",
    "jobTitle": "TEXT",
    "avatarUrl": "TEXT",
    "position": "POSITION",
}
# The other objects of a workspace, listed before the person object (ids sort first): more than
# one page of them, as a workspace with custom objects has.
_OTHER_NAMES = [
    "company", "opportunity", "note", "noteTarget", "task", "taskTarget", "attachment",
    "workspaceMember", "timelineActivity", "favorite", "favoriteFolder", "messageThread",
    "message", "messageChannel", "calendarEvent", "calendarChannel", "connectedAccount",
    "blocklist", "workflow", "workflowRun", "workflowVersion", "dashboard",
    *(f"customObject{i}" for i in range(1, 49)),
]  # fmt: skip
OTHER_OBJECTS = [
    {"id": f"10000000-0000-4000-8000-{i:012d}", "nameSingular": name,
     "namePlural": f"{name}s", "isCustom": name.startswith("custom"), "isActive": True,
     "fields": []}
    for i, name in enumerate(_OTHER_NAMES, start=1)
]  # fmt: skip
OPTION_COLORS = {
    "red", "ruby", "crimson", "tomato", "orange", "amber", "yellow", "lime", "grass", "green",
    "jade", "mint", "turquoise", "cyan", "sky", "blue", "iris", "violet", "purple", "plum",
    "pink", "bronze", "gold", "brown", "gray",
}  # fmt: skip
MAX_RECORDS = 60  # QUERY_MAX_RECORDS: the batch cap, and the cap on `limit` (200 since 2025)
EMAIL_FILTER = re.compile(r"emails\.primaryEmail\[(?P<op>eq|in)\]:(?P<value>.*)", re.DOTALL)
KNOWN_OBJECTS = {"people", "companies", "notes", "noteTargets", "batch", "metadata", "open-api"}
ERROR_CLASSES = {
    400: "BadRequestException",
    401: "UnauthorizedException",
    403: "ForbiddenException",
    404: "NotFoundException",
    500: "InternalServerErrorException",
}


def _timestamp(value: str | datetime) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _unquote(value: str) -> str:
    """Strip one pair of "..." or '...', as Twenty's filter parser does."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


class FakeTwenty(FakeService):
    """State is `people` (id -> stored record, soft-deleted ones included). Custom fields and
    SELECT options are plain attributes, so a test can remove a field to see how the client
    copes with Twenty's 400. A route the product does not call answers 404, never a silent 200.
    """

    routes = (
        ("GET", r"/rest/people", "list_people"),
        ("POST", r"/rest/people", "create_person"),
        ("POST", r"/rest/batch/people", "create_people"),
        ("GET", r"/rest/metadata/objects", "list_objects"),
        ("POST", r"/rest/metadata/fields", "create_field"),
        ("PATCH", r"/rest/metadata/fields/(?P<field_id>[^/]+)", "update_field"),
        ("GET", r"/rest/open-api/core", "open_api"),
    )

    def __init__(
        self,
        base_url: str = "https://twenty.test",
        api_key: str = "twenty-test-key",
        *,
        custom_fields: dict[str, str] | None = None,
        select_options: dict[str, set[str]] | None = None,
        rate_limit: int | None = None,
        rate_limit_headers: bool = False,
        supports_upsert: bool = True,
        data_model_access: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], str | datetime] | None = None,
        batch_key: str = "createPeople",
        metadata_format: str = "direct",
    ) -> None:
        super().__init__(base_url)
        self.api_key = api_key
        self.custom_fields = dict(DEFAULT_CUSTOM_FIELDS if custom_fields is None else custom_fields)
        reserved = sorted(set(self.custom_fields) & TWENTY_RESERVED_NAMES)
        if reserved:
            # The metadata API refuses these names, so no workspace can have such a field.
            raise ValueError(f"Twenty cannot have a custom field named {reserved[0]!r}")
        self.select_options = {k: set(v) for k, v in (select_options or {}).items()}
        self.rate_limit = rate_limit  # requests per minute, refilled continuously
        self.rate_limit_headers = rate_limit_headers  # newer servers: Retry-After and counts
        self.monotonic = monotonic
        # Older REST layers ignore ?upsert=true: a second write for a known email is a create.
        self.supports_upsert = supports_upsert
        # The API key's role may edit the data model (Settings > Roles > Data model).
        self.data_model_access = data_model_access
        self.clock = clock or self._utc_now
        self.batch_key = batch_key  # "people" mimics servers before createPeople
        # "direct": the newest metadata controllers (objects as {"data": [...]}, a created
        # field bare); "proxy": the older GraphQL proxy ({"data": {"objects"}}, createOneField).
        assert metadata_format in {"direct", "proxy"}
        self.metadata_format = metadata_format
        self.people: dict[str, dict] = {}
        self._by_email: dict[str, list[str]] = {}  # the unique index on primaryEmail
        self._tokens = float(rate_limit or 0)
        self.refused = 0  # requests answered 429
        self._refilled_at = monotonic()
        self._last_now: datetime | None = None

    # --- helpers for tests ----------------------------------------------------------------

    def person_by_email(self, email: str) -> dict | None:
        """The stored person with this primary email (lowercased), soft-deleted included."""
        wanted = email.strip().lower()
        for person_id in self._by_email.get(wanted, ()):
            person = self.people.get(person_id)
            if person is not None and person["emails"]["primaryEmail"] == wanted:
                return person
        return None

    def add_person(self, email: str, **fields: Any) -> dict:
        """Seed a person directly (no validation, no request logged); returns the record."""
        body = {**fields, "emails": {"primaryEmail": email, **fields.get("emails", {})}}
        return self._insert(self._normalise_emails(body))

    def soft_delete(self, person_id: str) -> None:
        """Delete the way Twenty's UI and DELETE do: the row stays, with `deletedAt` set."""
        self.people[person_id]["deletedAt"] = self._now()

    def reset_rate_limit(self) -> None:
        """A full bucket again."""
        self._tokens = float(self.rate_limit or 0)
        self._refilled_at = self.monotonic()

    def exhaust_rate_limit(self) -> None:
        """An empty bucket, as after a burst of other calls."""
        self._refill()
        self._tokens = 0.0

    # --- plumbing -------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None = None) -> Body:
        if status == 429:
            message = message or f"Limit reached ({self.rate_limit} tokens per 60000 ms)"
        return {
            "statusCode": status,
            "error": ERROR_CLASSES.get(status, "HttpException"),
            "messages": [message or httpx.codes.get_reason_phrase(status)],
        }

    def check_access(self, request: httpx.Request) -> httpx.Response | None:
        """Bearer API key, then the per-workspace token bucket (which sends no Retry-After)."""
        path = self.relative_path(request) or ""
        if path.startswith("/rest/open-api/"):
            return None  # public: without a valid key it describes nothing
        if (
            path.startswith("/rest/metadata/")
            and not self.data_model_access
            and self._authed(request)
        ):
            message = "Entity performing the request does not have permission"
            return self.error(
                403, {"statusCode": 403, "error": "PermissionsException", "messages": [message]}
            )
        if not self._authed(request):
            return self.error(401, self.error_body(401, "Token invalid."))
        if self.rate_limit is not None:
            self._refill()
            if self._tokens < 1:
                return self._rate_limited()
            self._tokens -= 1
        return None

    def _refill(self) -> None:
        assert self.rate_limit is not None
        now = self.monotonic()
        per_second = self.rate_limit / 60
        self._tokens = min(self.rate_limit, self._tokens + (now - self._refilled_at) * per_second)
        self._refilled_at = now

    def _rate_limited(self) -> httpx.Response:
        """Older servers: a bare 429. Newer ones (usage-limit speed limiter): seconds until a
        token is back, rounded up, at least 1, and the limit in headers and body."""
        assert self.rate_limit is not None
        self.refused += 1
        if not self.rate_limit_headers:
            return self.error(429)
        wait = max(1, math.ceil((1 - self._tokens) * 60 / self.rate_limit))
        body = {
            "statusCode": 429,
            "error": "RATE_LIMITED",
            "messages": [f"Rate limit reached: {self.rate_limit} requests per minute"],
            "limitKind": "speed",
            "limit": self.rate_limit,
            "remaining": 0,
            "periodCount": 1,
            "periodUnit": "minute",
            "retryAfterSeconds": wait,
        }
        headers = {
            "Retry-After": str(wait),
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": "0",
        }
        return self.error(429, body, headers)

    def _authed(self, request: httpx.Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def not_found(self, request: httpx.Request) -> httpx.Response:
        """An unknown object name is a 400 from the REST controller; anything else a 404."""
        match = re.fullmatch(r"/rest/(?P<name>[^/]+)(/.*)?", self.relative_path(request) or "")
        if match and match["name"] not in KNOWN_OBJECTS:
            name = match["name"]
            hint = " Did you mean 'people'?" if name == "person" else ""
            return self.error(400, self.error_body(400, f"object '{name}' not found.{hint}"))
        message = f"Cannot {request.method} {request.url.path}"
        return self.error(404, self.error_body(404, message))

    def _utc_now(self) -> datetime:
        """Real time, but strictly increasing, so an update never shares its create's stamp."""
        now = datetime.now(UTC)
        if self._last_now is not None and now <= self._last_now:
            now = self._last_now + timedelta(microseconds=1)
        self._last_now = now
        return now

    def _now(self) -> str:
        return _timestamp(self.clock())

    @staticmethod
    def _body(request: httpx.Request) -> Any:
        try:
            return read_body(request)
        except BadBody as exc:
            raise Reject(400, f"Invalid JSON body: {exc}") from exc

    # --- validation -----------------------------------------------------------------------

    def _clean(self, body: Any) -> dict:
        """Reject what Twenty rejects (unknown field, bad SELECT value, wrong type)."""
        if not isinstance(body, dict):
            raise Reject(400, "Invalid request body: expected an object")
        if "id" in body:  # an upsert matching by id as well is not modelled
            raise Reject(400, "FakeTwenty does not model a person body with an id")
        for key, value in body.items():
            if key not in STANDARD_FIELDS and key not in self.custom_fields:
                raise Reject(400, f'Object person doesn\'t have any "{key}" field.')
            if key in COMPOSITES and value is not None:
                if not isinstance(value, dict):
                    raise Reject(400, f'Invalid value for composite field "{key}"')
                for sub in value:
                    if sub not in COMPOSITES[key]:
                        raise Reject(400, f'Composite field "{key}" has no "{sub}" sub-field')
            if key in self.custom_fields:
                self._check_custom(key, value)
        return self._normalise_emails(copy.deepcopy(body))

    def _check_custom(self, key: str, value: Any) -> None:
        if value is None:
            return
        kind = self.custom_fields[key]
        if kind == "SELECT":
            options = self.select_options.get(key, set())
            if value not in options:
                raise Reject(
                    400, f'Invalid value "{value}" for field "{key}": not one of {sorted(options)}'
                )
            return
        valid = {
            "TEXT": lambda v: isinstance(v, str),
            "BOOLEAN": lambda v: isinstance(v, bool),
            "NUMBER": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "DATE_TIME": lambda v: isinstance(v, str) and self._parse_datetime(v) is not None,
        }.get(kind, lambda v: True)
        if not valid(value):
            raise Reject(400, f'Invalid value "{value}" for field "{key}" of type {kind}')

    @staticmethod
    def _parse_datetime(value: str) -> datetime | None:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None

    @staticmethod
    def _normalise_emails(body: dict) -> dict:
        """Twenty canonicalises emails on write: trimmed and lowercased."""
        emails = body.get("emails")
        if isinstance(emails, dict):
            if isinstance(emails.get("primaryEmail"), str):
                emails["primaryEmail"] = emails["primaryEmail"].strip().lower()
            if isinstance(emails.get("additionalEmails"), list):
                emails["additionalEmails"] = [
                    e.strip().lower() if isinstance(e, str) else e
                    for e in emails["additionalEmails"]
                ]
        return body

    # --- state changes --------------------------------------------------------------------

    def _insert(self, body: dict) -> dict:
        now = self._now()
        person: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            **copy.deepcopy(COMPOSITES),
            **SCALARS,
            **dict.fromkeys(self.custom_fields),
            "createdAt": now,
            "updatedAt": now,
            "deletedAt": None,
            "createdBy": {"source": "API", "workspaceMemberId": None, "name": "API key"},
        }
        self._apply(person, body)
        self.people[person["id"]] = person
        self._by_email.setdefault(person["emails"]["primaryEmail"], []).append(person["id"])
        return person

    def _apply(self, person: dict, body: dict) -> None:
        """Write the given fields; fields not in the body are kept.

        A partial composite (e.g. only `emails.primaryEmail`) keeps the other sub-fields.
        The reference marks this [U]; the client relies on it, so the fake does it.
        """
        for key, value in body.items():
            if key in COMPOSITES and isinstance(value, dict):
                person[key] = {**person[key], **value}
            elif self.custom_fields.get(key) == "DATE_TIME" and isinstance(value, str):
                parsed = self._parse_datetime(value)  # stored and returned in UTC, like Twenty
                person[key] = _timestamp(parsed) if parsed else value
            else:
                person[key] = value

    def _email_owner(self, body: dict) -> dict | None:
        email = (body.get("emails") or {}).get("primaryEmail")
        return self.person_by_email(email) if email else None

    def _create(self, body: dict, upsert: bool) -> dict:
        """One record of POST /rest/people[?upsert=true]; raises Reject like Twenty."""
        existing = self._email_owner(body)
        if not upsert:
            if existing:
                raise Reject(400, "A duplicate entry was detected. Please check your data.")
            return self._insert(body)
        if existing is None:
            return self._insert(body)
        self._apply(existing, body)  # createdAt and createdBy are kept
        existing["deletedAt"] = None  # upsert restores a soft-deleted match
        existing["updatedAt"] = self._now()
        return existing

    # --- routes ---------------------------------------------------------------------------

    def list_people(self, request: httpx.Request) -> httpx.Response:
        """GET /rest/people: `limit` required (its default varies by version) and capped at
        60, no deleted rows. Of filters only `emails.primaryEmail[eq]:"x"` and
        `emails.primaryEmail[in]:["x","y"]`; another one fails rather than matching all.
        """
        params = request.url.params
        limit = params.get("limit")
        if limit is None:
            raise Reject(400, "FakeTwenty: pass limit (Twenty's default varies by version)")
        if not limit.isdigit():
            raise Reject(400, f"Invalid limit value: {limit}")
        for unsupported in ("starting_after", "ending_before"):
            if unsupported in params:
                raise Reject(400, f"FakeTwenty does not implement {unsupported}")
        people = [p for p in self.people.values() if p["deletedAt"] is None]
        if "filter" in params:
            wanted = self._email_filter(params["filter"])
            people = [p for p in people if p["emails"]["primaryEmail"] in wanted]
        page = people[: min(int(limit), MAX_RECORDS)]
        return json_response(
            200,
            {
                "data": {"people": copy.deepcopy(page)},
                "totalCount": len(people),
                "pageInfo": {"hasNextPage": len(people) > len(page), "hasPreviousPage": False},
            },
        )

    @staticmethod
    def _email_filter(text: str) -> set[str]:
        """parse-base-filter: `field[op]:value`; `in` takes `[a,b]`, split on commas, each
        value stripped of one pair of quotes (format-field-values.util.ts)."""
        match = EMAIL_FILTER.fullmatch(text.strip())
        if not match:
            raise Reject(400, f"FakeTwenty only implements emails.primaryEmail eq/in: got {text}")
        value = match["value"]
        if match["op"] == "in":
            if not (value.startswith("[") and value.endswith("]")):
                raise Reject(400, "array value expected eg: 'field[in]:[value_1,value_2]'")
            return {_unquote(v.strip()) for v in value[1:-1].split(",")}
        return {_unquote(value)}

    def create_people(self, request: httpx.Request) -> httpx.Response:
        """POST /rest/batch/people: at most 60 records. Validation (unknown fields, SELECT
        values) runs before any write, so a refused record writes nothing; with `?upsert=true`
        matched ones are then updated, then the new ones inserted in one INSERT, with no
        transaction around both (common-create-many-query-runner.service.ts): a unique
        violation among the inserts (two new records with one email) is a 400 after the
        updates were made. The reply is not in the order sent."""
        items = self._body(request)
        if not isinstance(items, list):
            raise Reject(400, "Batch body must be an array")
        if len(items) > MAX_RECORDS:
            raise Reject(400, f"Maximum number of records to upsert is {MAX_RECORDS}")
        upsert = self.supports_upsert and request.url.params.get("upsert") == "true"
        cleaned = [self._clean(item) for item in items]
        matched = [b for b in cleaned if upsert and self._email_owner(b)]
        fresh = [b for b in cleaned if not any(b is m for m in matched)]
        written = [self._create(body, upsert) for body in matched]  # updates first
        emails = [b["emails"]["primaryEmail"] for b in fresh if b.get("emails")]
        if len(emails) != len(set(emails)) or any(self._email_owner(b) for b in fresh):
            # One INSERT for all new records: it fails whole, the updates above stay.
            raise Reject(400, "A duplicate entry was detected. Please check your data.")
        written += [self._insert(body) for body in fresh]
        unique = list({id(p): p for p in written}.values())
        return json_response(201, {"data": {self.batch_key: copy.deepcopy(unique)}})

    def create_person(self, request: httpx.Request) -> httpx.Response:
        """POST /rest/people: 201 `createPerson`, also when `?upsert=true` updated a record."""
        body = self._clean(self._body(request))
        upsert = self.supports_upsert and request.url.params.get("upsert") == "true"
        person = self._create(body, upsert=upsert)
        return json_response(201, {"data": {"createPerson": copy.deepcopy(person)}})

    # --- metadata and the OpenAPI document ------------------------------------------------

    def field_id(self, name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.base_url}/person/{name}"))

    def _field(self, name: str, kind: str, custom: bool) -> dict:
        field: dict[str, Any] = {
            "id": self.field_id(name),
            "name": name,
            "label": re.sub(r"(?<!^)([A-Z])", r" \1", name).capitalize(),
            "type": kind,
            "isCustom": custom,
            "isActive": True,
            "isNullable": True,
            "options": None,
        }
        if kind == "SELECT":
            field["options"] = [
                {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, value)), "value": value,
                 "label": value.title(), "color": "blue", "position": i}
                for i, value in enumerate(sorted(self.select_options.get(name, set())))
            ]  # fmt: skip
        return field

    def list_objects(self, request: httpx.Request) -> httpx.Response:
        """Objects with their fields embedded, ordered by id, a page at a time: `limit` is
        capped at QUERY_MAX_RECORDS (60 when not given), `starting_after` an object's id
        (paginate-metadata-rest-items.util.ts). A workspace has dozens of objects, and the
        person object is not first."""
        fields = [self._field(name, kind, False) for name, kind in STANDARD_FIELD_TYPES.items()]
        fields += [self._field(n, k, True) for n, k in self.custom_fields.items()]
        person = {
            "id": PERSON_OBJECT_ID,
            "nameSingular": "person",
            "namePlural": "people",
            "isCustom": False,
            "isActive": True,
            "fields": fields,
        }
        objects = sorted([*OTHER_OBJECTS, person], key=lambda o: str(o["id"]))
        params = request.url.params
        limit = min(int(params.get("limit") or MAX_RECORDS), MAX_RECORDS)
        after = params.get("starting_after")
        ids = [o["id"] for o in objects]
        if after is not None and after not in ids:
            raise Reject(400, f"Invalid cursor: {after}")
        start = ids.index(after) + 1 if after else 0
        page = objects[start : start + limit]
        info = {
            "hasNextPage": start + limit < len(objects),
            "hasPreviousPage": start > 0,
            "startCursor": page[0]["id"] if page else None,
            "endCursor": page[-1]["id"] if page else None,
        }
        data: Any = page if self.metadata_format == "direct" else {"objects": page}
        return json_response(200, {"data": data, "pageInfo": info, "totalCount": len(objects)})

    @staticmethod
    def _invalid(message: str) -> httpx.Response:
        body = {"statusCode": 400, "error": "METADATA_VALIDATION_ERROR", "message": message}
        return json_response(400, body)

    def create_field(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        if not isinstance(body, dict) or body.get("objectMetadataId") != PERSON_OBJECT_ID:
            return self._invalid("Object metadata not found")
        name, kind = str(body.get("name") or ""), body.get("type")
        if name in TWENTY_RESERVED_NAMES:
            return self._invalid(f'Name "{name}" is reserved and cannot be used as a field name')
        if not re.fullmatch(r"[a-z][a-zA-Z0-9]*", name):
            return self._invalid(f'Name "{name}" must be in camelCase')
        if name in self.custom_fields or name in STANDARD_FIELD_TYPES:
            return self._invalid(
                f'Name "{name}" is not available as it is already used by another field'
            )
        if kind not in {"TEXT", "BOOLEAN", "DATE_TIME", "DATE", "NUMBER", "SELECT", "RICH_TEXT"}:
            return self._invalid(f'Field type "{kind}" is not supported')
        if kind == "SELECT":
            problem = self._option_problem(body.get("options"))
            if problem:
                return self._invalid(problem)
            self.select_options[name] = {o["value"] for o in body["options"]}
        self.custom_fields[name] = kind
        field = self._field(name, kind, True)
        if self.metadata_format == "direct":  # field-metadata-rest-api.controller.ts: bare
            return json_response(201, field)
        return json_response(201, {"data": {"createOneField": field}})

    def update_field(self, request: httpx.Request, field_id: str) -> httpx.Response:
        """Options are replaced as a whole: send the ones to keep with the new ones."""
        names = [n for n in self.custom_fields if self.field_id(n) == field_id]
        if not names:
            raise Reject(404, "Field metadata not found")
        name, body = names[0], self._body(request)
        if "options" in body:
            problem = self._option_problem(body["options"])
            if problem:
                return self._invalid(problem)
            self.select_options[name] = {o["value"] for o in body["options"]}
        field = self._field(name, self.custom_fields[name], True)
        return json_response(200, {"data": {"updateOneField": field}})

    @staticmethod
    def _option_problem(options: Any) -> str | None:
        if not isinstance(options, list) or not options:
            return "Options are required for enum fields"
        values = [o.get("value") for o in options if isinstance(o, dict)]
        if len(values) != len(options) or len(set(values)) != len(values):
            return "Options must have distinct values"
        for option in options:
            if not re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", str(option.get("value"))):
                return "Value must be in UPPER_CASE and follow snake_case"
            if option.get("color") not in OPTION_COLORS:
                return f"Color {option.get('color')} is not a valid color"
        return None

    def open_api(self, request: httpx.Request) -> httpx.Response:
        """The OpenAPI document; newer servers list the `upsert` parameter on creates."""
        if not self._authed(request):
            return json_response(200, {"openapi": "3.1.1", "info": {}, "paths": {}})
        parameters = [{"$ref": "#/components/parameters/upsert"}] if self.supports_upsert else []
        document = {
            "openapi": "3.1.1",
            "paths": {"/people": {"post": {"parameters": parameters}}},
            "components": {
                "parameters": {"upsert": {"name": "upsert", "in": "query"}}
                if self.supports_upsert
                else {}
            },
        }
        return json_response(200, document)
