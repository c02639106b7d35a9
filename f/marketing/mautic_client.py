"""Thin client for the Mautic REST API: contact upsert, segments, campaigns, do-not-contact.

Facts relied on (mautic/mautic 5.1, see ../shared/reference/mautic.md):
- `POST /api/contacts/new` is an upsert on the unique-identifier fields (email by default):
  200 when it updated, 201 when it created. Unknown field aliases are silently ignored, so the
  reply's `fields.all` is checked for every alias we sent.
- Segment and campaign add/remove answer 200 `{"success": 1}`, even for a campaign member;
  re-adding a member of a campaign that allows restarts starts the sequence again, so callers
  check membership first.
- Errors are `{"errors": [{"code", "message", ...}]}`, and some 2xx replies carry them too.
- OAuth2 access tokens live 60 minutes; a 401 means fetch a new one, once.
"""

from dataclasses import dataclass, field
from typing import Any

import httpx

from f.marketing.config import MauticSettings
from f.marketing.errors import ServiceError
from f.marketing.http_client import DEFAULT_POLICY, RetryPolicy, ServiceHttp, json_body

# The comment marks a do-not-contact entry as ours, so that only ours is ever lifted.
NO_CONSENT_COMMENT = "No marketing consent given (set by f/marketing/handle_user_event)"
DNC_MANUAL = 3


@dataclass(frozen=True)
class Contact:
    id: int
    created: bool
    fields: dict[str, Any]
    email_dnc: list[dict[str, Any]] = field(default_factory=list)
    ignored_fields: tuple[str, ...] = ()

    def has_consent(self, consent_field: str | None) -> bool:
        """Consent is on record: no email do-not-contact, and the consent field (if any) set."""
        if self.email_dnc:
            return False
        if consent_field is None:
            return True
        return _truthy(self.fields.get(consent_field))

    def dnc_is_ours(self) -> bool:
        return bool(self.email_dnc) and all(
            int(entry.get("reason") or 0) == DNC_MANUAL
            and entry.get("comments") == NO_CONSENT_COMMENT
            for entry in self.email_dnc
        )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


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


class MauticClient:
    def __init__(self, http: ServiceHttp, oauth: tuple[str, str] | None = None) -> None:
        self.http = http
        self._oauth = oauth
        self._token: str | None = None

    @classmethod
    def from_settings(
        cls, settings: MauticSettings, policy: RetryPolicy = DEFAULT_POLICY, **http_options: Any
    ) -> "MauticClient":
        basic = (settings.username, settings.password) if settings.username else None
        http = ServiceHttp(
            "Mautic",
            settings.base_url,
            auth=basic,
            error_reader=read_error,
            policy=policy,
            **http_options,
        )
        oauth = None if basic else (settings.client_id or "", settings.client_secret or "")
        return cls(http, oauth)

    def upsert_contact(self, values: dict[str, Any], *, no_consent: bool = False) -> Contact:
        """Create or update the contact matched by `values["email"]`, in one call.

        With `no_consent`, the same call records an email do-not-contact, which every Mautic
        send honours: the contact exists but receives no marketing email.
        """
        body = dict(values)
        if no_consent:
            body["doNotContact"] = [
                {"channel": "email", "reason": DNC_MANUAL, "comments": NO_CONSENT_COMMENT}
            ]
        response = self._call("POST", "/api/contacts/new", action="upsert contact", json=body)
        contact = (json_body(response) or {}).get("contact") or {}
        all_fields = (contact.get("fields") or {}).get("all") or {}
        return Contact(
            id=int(contact["id"]),
            created=response.status_code == 201,
            fields=all_fields,
            email_dnc=[
                entry
                for entry in contact.get("doNotContact") or []
                if isinstance(entry, dict) and entry.get("channel", "email") == "email"
            ],
            ignored_fields=tuple(
                alias for alias in values if alias != "email" and alias not in all_fields
            ),
        )

    def segment_ids(self, contact_id: int) -> set[int]:
        response = self._call(
            "GET", f"/api/contacts/{contact_id}/segments", action="list contact segments"
        )
        return _ids((json_body(response) or {}).get("lists"))

    def campaign_ids(self, contact_id: int) -> set[int]:
        response = self._call(
            "GET", f"/api/contacts/{contact_id}/campaigns", action="list contact campaigns"
        )
        return _ids((json_body(response) or {}).get("campaigns"))

    def add_to_segment(self, segment_id: int, contact_id: int) -> None:
        self._call(
            "POST",
            f"/api/segments/{segment_id}/contact/{contact_id}/add",
            action=f"add to segment {segment_id}",
        )

    def remove_from_segment(self, segment_id: int, contact_id: int) -> None:
        self._call(
            "POST",
            f"/api/segments/{segment_id}/contact/{contact_id}/remove",
            action=f"remove from segment {segment_id}",
        )

    def add_to_campaign(self, campaign_id: int, contact_id: int) -> None:
        """Add once. A request that may have landed is not repeated blindly: a campaign that
        allows restarts would send its sequence again, so membership is checked first."""
        path = f"/api/campaigns/{campaign_id}/contact/{contact_id}/add"
        action = f"add to campaign {campaign_id}"
        try:
            self._call("POST", path, action=action, replay_safe=False)
        except ServiceError as exc:
            if not (exc.transient and exc.maybe_applied):
                raise
            if campaign_id in self.campaign_ids(contact_id):
                return
            self._call("POST", path, action=action, replay_safe=False)

    def add_do_not_contact(self, contact_id: int) -> None:
        self._call(
            "POST",
            f"/api/contacts/{contact_id}/dnc/email/add",
            action="add do-not-contact",
            json={"reason": DNC_MANUAL, "comments": NO_CONSENT_COMMENT},
        )

    def remove_do_not_contact(self, contact_id: int) -> None:
        self._call(
            "POST", f"/api/contacts/{contact_id}/dnc/email/remove", action="remove do-not-contact"
        )

    def _call(self, method: str, path: str, *, action: str, **kwargs: Any) -> httpx.Response:
        if self._oauth and self._token is None:
            self._fetch_token()
        try:
            response = self.http.request(
                method, path, action=action, headers=self._auth_headers(), **kwargs
            )
        except ServiceError as exc:
            if exc.status != 401 or not self._oauth:
                raise
            self._fetch_token()  # expired token: one fresh token, one more try
            response = self.http.request(
                method, path, action=action, headers=self._auth_headers(), **kwargs
            )
        body = json_body(response)
        if isinstance(body, dict) and body.get("errors"):
            raise ServiceError("Mautic", action, read_error(response), status=response.status_code)
        return response

    def _auth_headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self._token}"} if self._oauth else None

    def _fetch_token(self) -> None:
        client_id, client_secret = self._oauth or ("", "")
        response = self.http.request(
            "POST",
            "/oauth/v2/token",
            action="get OAuth2 token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
        )
        token = (json_body(response) or {}).get("access_token")
        if not token:
            raise ServiceError("Mautic", "get OAuth2 token", "no access_token in the reply")
        self._token = token


def _ids(listing: Any) -> set[int]:
    # Mautic lists are objects keyed by id, and an empty one may come back as [] or {}.
    if isinstance(listing, dict):
        return {int(key) for key in listing}
    if isinstance(listing, list):
        return {int(item["id"]) for item in listing if isinstance(item, dict) and "id" in item}
    return set()
