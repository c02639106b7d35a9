"""Which Stripe events change a plan, and into which contract event.

- `customer.subscription.updated` whose items moved to another plan: `user.upgraded` (a
  downgrade is a plan change too). Other updates (status, quantity, a price of the same plan)
  change nothing here.
- `customer.subscription.deleted`: `user.upgraded` to routing.stripe.no_subscription_plan, or
  `user.churned` (routing.stripe.on_cancel); but if the customer still has a live subscription
  (switched by subscribing anew), its plan is the new one.
- `customer.subscription.created`: ignored unless routing.stripe.on_subscribe is plan_change.
- Anything else: acknowledged and ignored, with a note.

Stripe delivers at least once, in no particular order, and says not to order events by
`created` (docs.stripe.com/webhooks, "Event ordering"). So before a plan change is applied the
subscription is read back: an event whose plan is no longer the subscription's is stale, and
the later event that changed it carries what is true now. A repeated event maps to the same
contract event (same email and time), which the steps apply once.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from f.marketing.lib.contract import Event, parse_event
from f.marketing.lib.errors import ConfigError, InvalidEvent
from f.marketing.lib.routing import Routing
from f.marketing.lib.stripe_client import stripe_id

UPDATED = "customer.subscription.updated"
DELETED = "customer.subscription.deleted"
CREATED = "customer.subscription.created"
ENDED = {"canceled", "incomplete_expired"}


class StripeReader(Protocol):
    def subscription(self, subscription_id: str) -> dict[str, Any]: ...
    def live_subscriptions(self, customer_id: str) -> list[dict[str, Any]]: ...
    def customer(self, customer_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Skip:
    """Nothing to apply, and why; `label` tags the job (ignored, no-plan-change, stale)."""

    reason: str
    label: str


@dataclass(frozen=True)
class Apply:
    event: Event
    notes: list[str] = field(default_factory=list)


def describe(stripe_event: dict[str, Any]) -> str:
    """'customer.subscription.updated evt_...': how messages name a Stripe event."""
    return f"{stripe_event.get('type')} {stripe_event.get('id')}"


def map_event(
    stripe_event: dict[str, Any], routing: Routing, stripe: StripeReader, *, read_back: bool
) -> Apply | Skip:
    """The contract event a Stripe event stands for, or why there is none. `read_back` off
    (a dry run) trusts the event about what is current instead of reading Stripe."""
    kind = stripe_event.get("type")
    if kind not in {UPDATED, DELETED, CREATED}:
        return Skip(f"{kind} changes no plan: ignored", "ignored")
    if kind == CREATED and routing.stripe.on_subscribe == "ignore":
        return Skip(f"{CREATED} is ignored (routing.stripe.on_subscribe)", "ignored")
    mapping = _Mapping(stripe_event, routing, stripe, read_back)
    return mapping.deleted() if kind == DELETED else mapping.changed()


class _Mapping:
    def __init__(
        self, stripe_event: dict[str, Any], routing: Routing, stripe: StripeReader, read: bool
    ) -> None:
        self.name = describe(stripe_event)
        self.routing, self.stripe, self.read_back = routing, stripe, read
        data = stripe_event.get("data")
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        subscription = self.data.get("object")
        if not isinstance(subscription, dict) or subscription.get("object") != "subscription":
            raise InvalidEvent(self.name, ["data.object: not a subscription"])
        self.subscription: dict[str, Any] = subscription
        self.id = stripe_id(subscription.get("id"), "data.object.id")
        created = stripe_event.get("created")
        if not isinstance(created, int) or isinstance(created, bool):
            raise InvalidEvent(self.name, ["created: not a Unix time"])
        self.when = datetime.fromtimestamp(created, UTC).isoformat()
        self.notes: list[str] = []

    # --- the three kinds ------------------------------------------------------------------

    def changed(self) -> Apply | Skip:
        """updated (a plan change) or created (from the no-subscription plan)."""
        before = self.data.get("previous_attributes")
        if before is not None:
            if not isinstance(before, dict):
                raise InvalidEvent(self.name, ["data.previous_attributes: not an object"])
            items = {} if before.get("items") is None else before["items"]
            if not isinstance(items, dict):
                raise InvalidEvent(self.name, ["data.previous_attributes.items: not an object"])
            old_items = items.get("data")
            if old_items is None:
                changed = ", ".join(sorted(before)) or "nothing"
                return Skip(f"no price change ({changed} changed)", "no-plan-change")
            previous = self.plan_of(old_items, "previous_attributes.items")
        else:
            previous = self.routing.stripe.no_subscription_plan
        new = self.plan_of(_items(self.subscription), "data.object.items")
        if new == previous:
            return Skip(f"the plan stays {new}", "no-plan-change")
        stale = self.superseded(new)
        if stale:
            return Skip(stale, "stale")
        return self.upgraded(previous, new)

    def deleted(self) -> Apply | Skip:
        routing = self.routing.stripe
        other = self.other_live_subscription()
        if other is None and routing.on_cancel == "churn":
            details = self.subscription.get("cancellation_details") or {}
            body = {"event": "user.churned", "email": self.email(), "timestamp": self.when,
                    "reason": details.get("feedback")}  # fmt: skip
            return Apply(parse_event(body), self.notes)
        previous = self.plan_of(_items(self.subscription), "data.object.items")
        new = routing.no_subscription_plan
        if other is not None:
            new = self.plan_of(_items(other), f"subscription {other['id']}")
            self.notes.append(f"the customer is still subscribed, through {other['id']}")
        if new == previous:
            return Skip(f"the plan stays {new}", "no-plan-change")
        return self.upgraded(previous, new)

    # --- pieces ---------------------------------------------------------------------------

    def upgraded(self, previous: str, new: str) -> Apply:
        body = {"event": "user.upgraded", "email": self.email(), "previousPlan": previous,
                "newPlan": new, "timestamp": self.when}  # fmt: skip
        return Apply(parse_event(body), self.notes)

    def superseded(self, new: str) -> str | None:
        """Why the event is stale, if the subscription has moved on since."""
        if not self.read_back:
            self.notes.append("dry run: the subscription was not read back from Stripe")
            return None
        current = self.stripe.subscription(self.id)
        if current.get("status") in ENDED:
            return f"stale: subscription {self.id} has ended since (its deletion sets the plan)"
        try:
            now = self.plan_of(_items(current), "the subscription now")
        except ConfigError:
            now = "a price that maps to no plan"
        if now != new:
            return f"stale: subscription {self.id} is now on {now}, not {new} (a later event)"
        return None

    def other_live_subscription(self) -> dict[str, Any] | None:
        if not self.read_back:
            self.notes.append("dry run: the customer's other subscriptions were not read")
            return None
        customer = stripe_id(_customer_id(self.subscription), "data.object.customer")
        live = [
            s
            for s in self.stripe.live_subscriptions(customer)
            if s.get("id") != self.id and s.get("status") not in ENDED
        ]
        return live[0] if live else None

    def plan_of(self, items: Any, where: str) -> str:
        """The plan a subscription's items stand for: the one item whose price is a plan."""
        if not isinstance(items, list) or not items:
            raise InvalidEvent(self.name, [f"{where}: no subscription items"])
        prices = [item.get("price") or {} for item in items if isinstance(item, dict)]
        plans = {p.get("id"): self.price_plan(p) for p in prices}
        known = {plan for plan in plans.values() if plan}
        if len(known) == 1:
            return known.pop()
        if not known:
            price = prices[0]
            raise ConfigError(
                f"{self.name}: price {price.get('id')} (lookup key "
                f"{price.get('lookup_key') or 'none'}) is not a plan in f/marketing/routing: "
                f'add "{price.get("id")}": "<plan>" to stripe.prices'
            )
        raise ConfigError(
            f"{self.name}: the subscription's prices stand for several plans "
            f"({', '.join(sorted(known))}): list only the plan prices in routing.stripe.prices"
        )

    def price_plan(self, price: dict[str, Any]) -> str | None:
        prices, key = self.routing.stripe.prices, price.get("lookup_key")
        if price.get("id") in prices:
            return prices[price["id"]]
        if key in prices:
            return prices[key]
        known = self.routing.known_plans()
        if key and (not known or key in known):
            return str(key)
        return None

    def email(self) -> str:
        """The SaaS's email for the user: metadata first (the SaaS sets it), then the
        customer's own email, read from Stripe when the event does not carry it."""
        key = self.routing.stripe.email_metadata_key
        found = _text((self.subscription.get("metadata") or {}).get(key))
        customer = self.subscription.get("customer")
        if not found and not isinstance(customer, dict):
            customer = self.stripe.customer(stripe_id(customer, "data.object.customer"))
            self.notes.append("email read from the Stripe customer")
        if not found and isinstance(customer, dict):
            if customer.get("deleted"):
                raise InvalidEvent(self.name, ["customer: deleted in Stripe, no email to go by"])
            found = _text((customer.get("metadata") or {}).get(key)) or _text(customer.get("email"))
        if not found:
            raise InvalidEvent(
                self.name,
                [f"email: neither metadata.{key} (subscription or customer) nor the customer's "
                 f"email is set"],
            )  # fmt: skip
        return found


def _items(subscription: dict[str, Any]) -> Any:
    items = subscription.get("items")
    return items.get("data") if isinstance(items, dict) else None


def _customer_id(subscription: dict[str, Any]) -> Any:
    customer = subscription.get("customer")
    return customer.get("id") if isinstance(customer, dict) else customer


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
