"""A stateful stand-in for the part of Stripe the product uses: customers, prices and
subscriptions that change, the events those changes make, their signed webhook deliveries,
and the reads f/marketing/stripe_client makes.

It answers as Stripe does (docs.stripe.com/api, docs.stripe.com/webhooks; stripe/stripe-python
_webhook.py, _subscription.py, _customer.py): Bearer auth, 401 for a bad key with the key
masked, 403 when a restricted key lacks the permission (the message names it), 404
`resource_missing` ("No such subscription: 'sub_x'"), 400 for an unknown parameter; a deleted
customer reads as `{"id", "object", "deleted": true}`; the subscription list leaves out
canceled ones. Deliveries are signed `t=...,v1=...` with one v1 per active secret, plus a
fake v0 on test-mode events, over the exact body Stripe sends (JSON, two-space indent).
"""

import copy
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx

from tests.fakes.faults import Body, FakeService, Reject, json_response

API_VERSION = "2025-12-15.clover"
PERMISSIONS = frozenset({"rak_customer_read", "rak_subscription_read", "rak_event_read"})
ENDED = {"canceled", "incomplete_expired"}


class FakeStripe(FakeService):
    """State: `prices`, `customers`, `subscriptions` and `events`, by id, as Stripe shows them.
    Changes go through the helpers (`subscribe`, `change_price`, `cancel`...), which make the
    event Stripe would and return it; `delivery` signs one for the webhook."""

    DEFAULT_HEADERS: ClassVar[dict[str, str]] = {"Request-Id": "req_fake"}
    routes = (
        ("GET", r"/v1/events", "list_events"),
        ("GET", r"/v1/events/(?P<event_id>[^/]+)", "get_event"),
        ("GET", r"/v1/subscriptions", "list_subscriptions"),
        ("GET", r"/v1/subscriptions/(?P<subscription_id>[^/]+)", "get_subscription"),
        ("GET", r"/v1/customers", "list_customers"),
        ("GET", r"/v1/customers/(?P<customer_id>[^/]+)", "get_customer"),
    )

    def __init__(
        self,
        base_url: str = "https://api.stripe.test",
        *,
        api_key: str = "rk_test_51MarketingReadOnlyKey0001",
        signing_secrets: tuple[str, ...] = ("whsec_test_endpoint_secret",),
        clock: Callable[[], float] | None = None,
        livemode: bool = False,
    ) -> None:
        super().__init__(base_url)
        self.api_key = api_key
        self.permissions = set(PERMISSIONS)
        self.signing_secrets = list(signing_secrets)
        self.livemode = livemode
        self.clock = clock or time.time  # event times and signatures: real time by default
        self.prices: dict[str, dict] = {}
        self.customers: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.events: dict[str, dict] = {}
        self._ids = itertools.count(1)

    # --- helpers for tests: state that changes, and the events it makes ---------------------

    def add_price(self, price_id: str, lookup_key: str | None = None) -> dict:
        product = f"prod_{price_id.removeprefix('price_')}"
        price = {"id": price_id, "object": "price", "active": True, "lookup_key": lookup_key,
                 "product": product, "currency": "usd"}  # fmt: skip
        self.prices[price_id] = price
        return price

    def add_customer(self, email: str | None, metadata: dict[str, str] | None = None) -> str:
        customer_id = self._id("cus")
        self.customers[customer_id] = {
            "id": customer_id,
            "object": "customer",
            "email": email,
            "metadata": dict(metadata or {}),
            "deleted": False,
        }
        return customer_id

    def delete_customer(self, customer_id: str) -> None:
        self.customers[customer_id]["deleted"] = True

    def subscribe(
        self, customer_id: str, *price_ids: str, metadata: dict[str, str] | None = None
    ) -> dict:
        """A new subscription; returns its `customer.subscription.created` event."""
        subscription_id = self._id("sub")
        self.subscriptions[subscription_id] = {
            "id": subscription_id,
            "object": "subscription",
            "customer": customer_id,
            "status": "active",
            "metadata": dict(metadata or {}),
            "items": self._items(subscription_id, price_ids),
            "created": int(self.clock()),
            "canceled_at": None,
            "ended_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        }
        return self._event("customer.subscription.created", self.subscriptions[subscription_id])

    def change_price(self, subscription_id: str, *price_ids: str) -> dict:
        """Swap the subscription's prices; the event carries the old items in full."""
        subscription = self.subscriptions[subscription_id]
        before = copy.deepcopy(subscription["items"]["data"])
        subscription["items"] = self._items(subscription_id, price_ids)
        previous = {"items": {"data": before}}
        return self._event("customer.subscription.updated", subscription, previous)

    def set_status(self, subscription_id: str, status: str) -> dict:
        subscription = self.subscriptions[subscription_id]
        previous = {"status": subscription["status"]}
        subscription["status"] = status
        return self._event("customer.subscription.updated", subscription, previous)

    def cancel(self, subscription_id: str, feedback: str | None = None) -> dict:
        """The subscription ends now; returns `customer.subscription.deleted`."""
        subscription = self.subscriptions[subscription_id]
        now = int(self.clock())
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        subscription["cancellation_details"] = {
            "comment": None, "feedback": feedback, "reason": "cancellation_requested"
        }  # fmt: skip
        return self._event("customer.subscription.deleted", subscription)

    def other_event(self, kind: str, obj: dict) -> dict:
        return self._event(kind, obj)

    def delivery(
        self,
        event: dict,
        *,
        secrets: list[str] | None = None,
        at: float | None = None,
    ) -> tuple[str, dict[str, str]]:
        """What Stripe POSTs for an event: the exact body and its headers, signed at `at`
        (now by default) with each of `secrets` (the endpoint's active ones by default)."""
        body = json.dumps(event, indent=2)
        t = int(self.clock() if at is None else at)
        signed = f"{t}.{body}".encode()
        parts = [f"t={t}"]
        for secret in self.signing_secrets if secrets is None else secrets:
            parts.append("v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest())
        if not event["livemode"]:
            parts.append("v0=" + hashlib.sha256(signed).hexdigest())  # Stripe's fake test scheme
        headers = {
            "content-type": "application/json; charset=utf-8",
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "stripe-signature": ",".join(parts),
        }
        return body, headers

    # --- plumbing -------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None = None) -> Body:
        error: dict[str, Any] = {
            "message": message or httpx.codes.get_reason_phrase(status),
            "type": "api_error" if status >= 500 else "invalid_request_error",
        }
        if status == 404:
            docs = "https://stripe.com/docs/error-codes/resource-missing"
            error.update(code="resource_missing", doc_url=docs)
        if status == 429:
            error.update(code="rate_limit", message=message or "Request rate limit exceeded.")
        return {"error": error}

    def check_access(self, request: httpx.Request) -> httpx.Response | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            return self.error(401, self.error_body(401, "You did not provide an API key."))
        if key != self.api_key:
            masked = f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}"
            return self.error(401, self.error_body(401, f"Invalid API Key provided: {masked}"))
        return None

    def not_found(self, request: httpx.Request) -> httpx.Response:
        message = f"Unrecognized request URL ({request.method}: {request.url.path})."
        return self.error(404, {"error": {"message": message, "type": "invalid_request_error"}})

    def _need(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Reject(
                403,
                f"The provided key '{self.api_key[:8]}***{self.api_key[-4:]}' does not have the "
                f"required permissions for this endpoint on account 'acct_fake'. Having the "
                f"'{permission}' permission would allow this request to continue.",
            )

    @staticmethod
    def _only(request: httpx.Request, allowed: set[str]) -> None:
        for name in request.url.params:
            if name not in allowed:
                raise Reject(400, f"Received unknown parameter: {name}")

    def _id(self, prefix: str) -> str:
        return f"{prefix}_Fake{next(self._ids):06d}"

    def _items(self, subscription_id: str, price_ids: tuple[str, ...]) -> dict:
        data = [
            {"id": self._id("si"), "object": "subscription_item", "quantity": 1,
             "price": copy.deepcopy(self.prices[price_id]), "subscription": subscription_id}
            for price_id in price_ids
        ]  # fmt: skip
        return {"object": "list", "data": data, "has_more": False, "total_count": len(data),
                "url": f"/v1/subscription_items?subscription={subscription_id}"}  # fmt: skip

    def _event(self, kind: str, obj: dict, previous: dict | None = None) -> dict:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        event: dict[str, Any] = {
            "id": self._id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.clock()),
            "data": data,
            "livemode": self.livemode,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        self.events[event["id"]] = event
        return copy.deepcopy(event)

    # --- routes ---------------------------------------------------------------------------

    def list_events(self, request: httpx.Request) -> httpx.Response:
        """Newest first; only `limit` is modelled (f/marketing/setup asks for one)."""
        self._need("rak_event_read")
        return self._list(request, list(reversed(self.events.values())), "/v1/events")

    def list_customers(self, request: httpx.Request) -> httpx.Response:
        self._need("rak_customer_read")
        live = [
            {k: v for k, v in c.items() if k != "deleted"}
            for c in reversed(self.customers.values())
            if not c["deleted"]
        ]
        return self._list(request, live, "/v1/customers")

    def _list(self, request: httpx.Request, items: list[dict], url: str) -> httpx.Response:
        self._only(request, {"limit"})
        limit = int(request.url.params.get("limit", 10))
        if not 1 <= limit <= 100:
            raise Reject(400, "Invalid integer: limit must be between 1 and 100")
        page = copy.deepcopy(items[:limit])
        body = {"object": "list", "data": page, "has_more": len(items) > limit, "url": url}
        return json_response(200, body)

    def get_event(self, request: httpx.Request, event_id: str) -> httpx.Response:
        self._need("rak_event_read")
        self._only(request, {"expand[]"})
        if event_id not in self.events:
            raise Reject(404, f"No such event: '{event_id}'")
        return json_response(200, copy.deepcopy(self.events[event_id]))

    def get_subscription(self, request: httpx.Request, subscription_id: str) -> httpx.Response:
        self._need("rak_subscription_read")
        self._only(request, {"expand[]"})
        if subscription_id not in self.subscriptions:
            raise Reject(404, f"No such subscription: '{subscription_id}'")
        return json_response(200, copy.deepcopy(self.subscriptions[subscription_id]))

    def list_subscriptions(self, request: httpx.Request) -> httpx.Response:
        """Not canceled ones unless `status` says otherwise; newest first."""
        self._need("rak_subscription_read")
        self._only(request, {"customer", "limit", "status", "starting_after"})
        params = request.url.params
        if "starting_after" in params:
            raise Reject(400, "FakeStripe does not page: ask for fewer")
        customer, status = params.get("customer"), params.get("status")
        if customer is not None and customer not in self.customers:
            raise Reject(404, f"No such customer: '{customer}'")
        found = [
            copy.deepcopy(s)
            for s in reversed(self.subscriptions.values())
            if (customer is None or s["customer"] == customer)
            and (s["status"] == status if status not in (None, "all") else
                 status == "all" or s["status"] not in ENDED)
        ]  # fmt: skip
        limit = int(params.get("limit", 10))
        if not 1 <= limit <= 100:
            raise Reject(400, "Invalid integer: limit must be between 1 and 100")
        body = {"object": "list", "data": found[:limit], "has_more": len(found) > limit,
                "url": "/v1/subscriptions"}  # fmt: skip
        return json_response(200, body)

    def get_customer(self, request: httpx.Request, customer_id: str) -> httpx.Response:
        self._need("rak_customer_read")
        self._only(request, {"expand[]"})
        customer = self.customers.get(customer_id)
        if customer is None:
            raise Reject(404, f"No such customer: '{customer_id}'")
        if customer["deleted"]:
            return json_response(200, {"id": customer_id, "object": "customer", "deleted": True})
        return json_response(200, {k: v for k, v in customer.items() if k != "deleted"})
