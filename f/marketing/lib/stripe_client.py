"""Thin client for the Stripe API: the reads f/marketing/stripe_events needs, nothing else.

Facts relied on (docs.stripe.com/api; stripe/stripe-python, README "API facts relied on"):
- Bearer auth; a restricted key (rk_...) reads only what its permissions allow: 403 with a
  message naming the permission missing (e.g. `rak_subscription_read`).
- Errors are `{"error": {"type", "code", "message", ...}}`; an unknown id is 404
  `resource_missing` ("No such subscription: 'sub_...'"); a bad key 401; 429 when rate limited
  (no Retry-After: the shared policy backs off).
- `GET /v1/subscriptions?customer=` lists the customer's subscriptions that are not canceled.
- A deleted customer still answers 200, as `{"id", "object": "customer", "deleted": true}`.
"""

import re
from typing import Any

import httpx

from f.marketing.lib.errors import InvalidEvent
from f.marketing.lib.service_http import (
    DEFAULT_POLICY,
    RetryPolicy,
    ServiceClient,
    json_body,
)
from f.marketing.lib.service_settings import StripeSettings

# Stripe names the key in some messages, masked but for its prefix and last characters.
_KEY = re.compile(r"\b([rs]k_(?:live|test)_)[A-Za-z0-9*]+")
_ID = re.compile(r"[a-z]+_[A-Za-z0-9]+")


def read_error(response: httpx.Response) -> str:
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return _KEY.sub(r"\1…", str(error["message"]))
    return response.text.strip()[:300] or response.reason_phrase


def _json(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("not an object")
    return body


class StripeClient(ServiceClient):
    SERVICE = "Stripe"
    read_error = staticmethod(read_error)

    @classmethod
    def from_settings(
        cls, settings: StripeSettings, policy: RetryPolicy = DEFAULT_POLICY, **http_options: Any
    ) -> "StripeClient":
        return cls(
            cls._connect(settings.api_base_url, policy, http_options, token=settings.api_key)
        )

    def event(self, event_id: str) -> dict[str, Any]:
        """The event as Stripe keeps it (for 30 days): the truth about a pasted or queued one."""
        return self._get(f"/v1/events/{event_id}", "read event")

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        return self._get(f"/v1/subscriptions/{subscription_id}", "read subscription")

    def live_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's subscriptions that have not ended (canceled ones are left out)."""
        page = self._get(
            "/v1/subscriptions",
            "list the customer's subscriptions",
            params={"customer": customer_id, "limit": 10},
        )
        return list(page["data"])

    def customer(self, customer_id: str) -> dict[str, Any]:
        return self._get(f"/v1/customers/{customer_id}", "read customer")

    def first(self, kind: str) -> list[dict[str, Any]]:
        """One item of a list (events, subscriptions, customers): whether the key may read it."""
        return list(self._get(f"/v1/{kind}", f"list {kind}", params={"limit": 1})["data"])

    def _get(self, path: str, action: str, **kwargs: Any) -> dict[str, Any]:
        return self.http.request("GET", path, action=action, read=_json, **kwargs)


def stripe_id(value: Any, what: str, prefix: str = "") -> str:
    """An id from an event, checked before it goes into a URL path (and, with its prefix,
    before a text a caller gave is sent anywhere: Windmill may have put a secret in it)."""
    if not isinstance(value, str) or not _ID.fullmatch(value) or not value.startswith(prefix):
        raise InvalidEvent(None, [f"{what}: not a Stripe id"])
    return value
