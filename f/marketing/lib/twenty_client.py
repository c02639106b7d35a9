"""Thin client for the Twenty CRM REST API: one upsert of a person by email.

Facts relied on (twentyhq/twenty; README, "API facts relied on"):
- `POST /rest/people?upsert=true` matches on id or the unique `emails.primaryEmail` (soft-deleted
  rows included, which it restores) and answers 201 `data.createPerson` whether it created or
  updated; created vs updated is told apart by `createdAt == updatedAt`.
- A sub-field left out of a composite keeps its stored value; `""` clears it.
- Errors are `{"statusCode", "error", "messages": [...]}`; an unknown field is a 400.
- Older servers answer 429 bare; newer ones add `Retry-After` and `X-RateLimit-*`
  (usage-limit-to-rest-api-exception-handler.util.ts), which the shared retry policy honours.
"""

from dataclasses import dataclass
from typing import Any

import httpx

from f.marketing.lib.contract import split_name
from f.marketing.lib.errors import ServiceError
from f.marketing.lib.service_http import (
    DEFAULT_POLICY,
    RetryPolicy,
    ServiceClient,
    json_body,
)
from f.marketing.lib.service_settings import TwentySettings

UPSERT_REQUEST = "POST /rest/people?upsert=true"
# Records per batch call: the docs' figure and the smallest QUERY_MAX_RECORDS seen (60, later
# 200); one batch call costs one rate-limit token, like one single upsert. Also a page of
# metadata objects.
BATCH = 60
MAX_PAGES = 50  # of metadata objects: far more than any workspace has


@dataclass(frozen=True)
class PersonOutcome:
    id: str
    created: bool


def person_body(email: str, name: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The upsert body: only what the event knows, so nothing stored is blanked.

    Only the primary email is sent, not the whole `emails` composite, so additional emails
    someone added in the CRM stay. A one-word name sets the first name and keeps the last.
    """
    body: dict[str, Any] = {"emails": {"primaryEmail": email}}
    if name:
        first, last = split_name(name)
        body["name"] = {"firstName": first, **({"lastName": last} if last else {})}
    return body | fields


def read_error(response: httpx.Response) -> str:
    body = json_body(response)
    if isinstance(body, dict):
        messages = body.get("messages") or body.get("message")
        if isinstance(messages, list) and messages:
            text = "; ".join(str(m) for m in messages)
            if "doesn't have any" in text:  # a custom field that does not exist (yet)
                text += (
                    " (create the field in Twenty: Settings > Data model > People, or map it "
                    "to null in routing.fields.twenty)"
                )
            return text
        if isinstance(messages, str):
            return messages
        if body.get("error"):
            return str(body["error"])
    return response.text.strip()[:300] or response.reason_phrase


def _read_person(response: httpx.Response) -> PersonOutcome:
    return _outcome(response.json()["data"]["createPerson"])


def _outcome(person: dict[str, Any]) -> PersonOutcome:
    return PersonOutcome(
        id=str(person["id"]),
        created=bool(person.get("createdAt")) and person["createdAt"] == person.get("updatedAt"),
    )


class TwentyClient(ServiceClient):
    SERVICE = "Twenty"
    read_error = staticmethod(read_error)

    @classmethod
    def from_settings(
        cls, settings: TwentySettings, policy: RetryPolicy = DEFAULT_POLICY, **http_options: Any
    ) -> "TwentyClient":
        return cls(cls._connect(settings.base_url, policy, http_options, token=settings.api_key))

    def upsert_person(self, body: dict[str, Any]) -> PersonOutcome:
        """Create or update the person whose primary email the body names, in one call."""
        return self.http.request(
            "POST",
            "/rest/people",
            params={"upsert": "true"},
            json=body,
            action="upsert person",
            read=_read_person,
        )

    def upsert_people(self, bodies: list[dict[str, Any]]) -> dict[str, PersonOutcome]:
        """Upsert up to 60 people in one call. A record Twenty refuses (400, naming the problem,
        not the record) writes nothing of the batch, but a database error among the inserts
        comes after the matched people were updated: sending the same records again is
        harmless. The reply's order is unspecified, so outcomes come back by email
        (common-create-many-query-runner.service.ts)."""

        def read(response: httpx.Response) -> dict[str, PersonOutcome]:
            data = response.json()["data"]
            people = data.get("createPeople", data.get("people"))  # `people` on older servers
            return {str(p["emails"]["primaryEmail"]).lower(): _outcome(p) for p in people}

        return self.http.request(
            "POST",
            "/rest/batch/people",
            params={"upsert": "true"},
            json=bodies,
            action=f"upsert {len(bodies)} people",
            read=read,
        )

    def existing_emails(self, emails: list[str]) -> set[str]:
        """Which of these (up to 60) emails a person has, soft-deleted people left out."""
        quoted = ",".join(f'"{email}"' for email in emails)
        return self.http.request(
            "GET",
            "/rest/people",
            params={"filter": f"emails.primaryEmail[in]:[{quoted}]", "limit": BATCH},
            action="find people by email",
            read=lambda response: {
                str(p["emails"]["primaryEmail"]).lower() for p in response.json()["data"]["people"]
            },
        )

    # --- for f/marketing/setup ----------------------------------------------------------

    def check_key(self) -> None:
        """One cheap read: 401 when the key is wrong or revoked."""
        self.http.request(
            "GET",
            "/rest/people",
            params={"limit": 1},
            action="read people",
            read=lambda response: response.json()["data"]["people"],
        )

    def upsert_supported(self) -> bool | None:
        """Whether `POST /rest/people` takes `?upsert=true`, from the server's OpenAPI document
        (open-api/utils/parameters.utils.ts, computeUpsertParameters); None when it says
        nothing about people. Older REST layers ignore the parameter without a word."""

        def read(response: httpx.Response) -> bool | None:
            create = response.json().get("paths", {}).get("/people", {}).get("post")
            if create is None:
                return None
            return any(
                p.get("name") == "upsert" or str(p.get("$ref", "")).endswith("/upsert")
                for p in create.get("parameters") or []
            )

        return self.http.request(
            "GET", "/rest/open-api/core", action="read the OpenAPI document", read=read
        )

    def person_object(self) -> dict[str, Any]:
        """The People object's metadata, with its fields where the server embeds them.

        Objects come a page at a time: `limit` is capped (QUERY_MAX_RECORDS on the newest
        servers, parse-metadata-rest-pagination.util.ts), so the person object may be on any
        page; `pageInfo.endCursor` goes back as `starting_after`. The list is
        `{"data": [...]}` on servers with the direct metadata controllers, `{"data":
        {"objects": [...]}}` through the older GraphQL proxy.
        """
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": BATCH}
            if cursor:
                params["starting_after"] = cursor
            reply = self.http.request(
                "GET", "/rest/metadata/objects", params=params, action="read the data model",
                read=lambda response: dict(response.json()),
            )  # fmt: skip
            data = reply["data"]
            objects = data["objects"] if isinstance(data, dict) else data
            person = next((o for o in objects if o.get("nameSingular") == "person"), None)
            if person is not None:
                return person
            page = reply.get("pageInfo") or {}
            cursor = page.get("endCursor")
            if not objects or not page.get("hasNextPage") or not cursor:
                break
        raise ServiceError("Twenty", "read the data model", "no person object in the data model")

    def create_field(self, body: dict[str, Any]) -> dict[str, Any]:
        """The field created: bare on the newest servers (field-metadata controller), inside
        `data.createOneField` through the GraphQL proxy."""

        def read(response: httpx.Response) -> dict[str, Any]:
            reply = response.json()
            data = reply.get("data") if isinstance(reply, dict) else None
            field = data["createOneField"] if isinstance(data, dict) else reply
            if not isinstance(field, dict) or "id" not in field:
                raise ValueError("no field in the reply")
            return field

        return self.http.request(
            "POST",
            "/rest/metadata/fields",
            json=body,
            action=f"create field {body.get('name')}",
            replay_safe=False,  # a second create after a lost 201 is refused: name taken
            read=read,
        )

    def set_field_options(self, field_id: str, options: list[dict[str, Any]]) -> None:
        """Options are replaced as a whole: pass the existing ones (with their ids) too."""
        self.http.request(
            "PATCH",
            f"/rest/metadata/fields/{field_id}",
            json={"options": options},
            action="add plan options",
        )
