"""Thin client for the Twenty CRM REST API: one upsert of a person by email.

Facts relied on (twentyhq/twenty, see ../shared/reference/twenty.md):
- `POST /rest/people?upsert=true` matches on id or the unique `emails.primaryEmail` (soft-deleted
  rows included, which it restores) and answers 201 `data.createPerson` whether it created or
  updated; created vs updated is told apart by `createdAt == updatedAt`.
- Errors are `{"statusCode", "error", "messages": [...]}`; an unknown field is a 400.
- 429 carries no Retry-After, so the shared backoff applies.
"""

from dataclasses import dataclass
from typing import Any

import httpx

from f.marketing.config import TwentySettings
from f.marketing.contract import split_name
from f.marketing.http_client import DEFAULT_POLICY, RetryPolicy, ServiceHttp, json_body


@dataclass(frozen=True)
class PersonOutcome:
    id: str
    created: bool


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


class TwentyClient:
    def __init__(self, http: ServiceHttp) -> None:
        self.http = http

    @classmethod
    def from_settings(
        cls, settings: TwentySettings, policy: RetryPolicy = DEFAULT_POLICY, **http_options: Any
    ) -> "TwentyClient":
        http = ServiceHttp(
            "Twenty",
            settings.base_url,
            headers={"Authorization": f"Bearer {settings.api_key}"},
            error_reader=read_error,
            policy=policy,
            **http_options,
        )
        return cls(http)

    def upsert_person(
        self, email: str, *, name: str | None = None, fields: dict[str, Any] | None = None
    ) -> PersonOutcome:
        """Create or update the person whose primary email is `email`, in one call.

        Only the primary email is sent, not the whole `emails` composite, so additional emails
        someone added in the CRM are not overwritten. The name is sent only when known, so an
        event without one never blanks a name already in the CRM.
        """
        body: dict[str, Any] = {"emails": {"primaryEmail": email}, **(fields or {})}
        if name:
            first, last = split_name(name)
            body["name"] = {"firstName": first, "lastName": last}
        response = self.http.request(
            "POST", "/rest/people", params={"upsert": "true"}, json=body, action="upsert person"
        )
        person = (json_body(response) or {}).get("data", {}).get("createPerson") or {}
        return PersonOutcome(
            id=str(person.get("id")),
            created=bool(person.get("createdAt"))
            and person.get("createdAt") == person.get("updatedAt"),
        )
