"""Which Slack rules an event matches, the message it gets, and the ledger that stops repeats.

The ledger is a small Windmill state resource of event fingerprints, so a duplicate webhook or
a re-run of the same event posts nothing new. Fingerprints are hashes: no email is stored.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from f.marketing.config import SlackRule
from f.marketing.contract import UserChurned, UserRegistered, UserUpgraded

LEDGER_PATH = "f/marketing/slack_notified"
LEDGER_DAYS = 30
LEDGER_MAX = 5000

Event = UserRegistered | UserUpgraded | UserChurned


@dataclass(frozen=True)
class Message:
    rules: tuple[str, ...]
    text: str
    blocks: list[dict[str, Any]]


def matching_rules(event: Event, rules: list[SlackRule]) -> list[SlackRule]:
    plan = getattr(event, "plan", None) or getattr(event, "newPlan", None)
    source = getattr(event, "source", None)
    return [
        rule
        for rule in rules
        if event.event in rule.events
        and (rule.plans is None or (plan is not None and plan in rule.plans))
        and (rule.sources is None or (source is not None and source in rule.sources))
    ]


def escape(text: str) -> str:
    """Slack's three escapes, so a name like <!channel> cannot ping anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_message(event: Event, rules: list[SlackRule]) -> Message:
    email = escape(event.email)
    if isinstance(event, UserRegistered):
        who = escape(event.name) if event.name else email
        title = "New signup"
        text = f"New signup: {who} on {escape(event.plan)}"
        facts = {"Email": email, "Plan": escape(event.plan), "Source": escape(event.source)}
        if event.name:
            facts = {"Name": who, **facts}
    elif isinstance(event, UserUpgraded):
        title = "Upgrade"
        text = f"Upgrade: {email} {escape(event.previousPlan)} → {escape(event.newPlan)}"
        facts = {"Email": email, "From": escape(event.previousPlan), "To": escape(event.newPlan)}
    else:
        title = "Churn"
        reason = escape(event.reason) if event.reason else "not given"
        text = f"Churn: {email} (reason: {reason[:200]})"
        facts = {"Email": email, "Reason": reason[:1900]}
    names = escape(", ".join(rule.name for rule in rules))
    context = f"{event.event} · {event.timestamp.isoformat()} · rule: {names}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts.items()],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": context}],
        },
    ]
    return Message(tuple(rule.name for rule in rules), text, blocks)


def fingerprint(event: Event) -> str:
    raw = f"{event.event}|{event.email}|{event.timestamp.isoformat()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class Ledger:
    """Fingerprints of events already posted, kept in a Windmill state resource."""

    def __init__(
        self,
        load: Callable[[], Any],
        save: Callable[[dict[str, str]], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._load = load
        self._save = save
        self._now = now

    @classmethod
    def in_windmill(cls, path: str = LEDGER_PATH) -> "Ledger":
        import wmill

        return cls(
            lambda: wmill.get_state(path=path), lambda value: wmill.set_state(value, path=path)
        )

    def seen(self, key: str) -> bool:
        entries = self._load()
        return isinstance(entries, dict) and key in entries

    def record(self, key: str) -> None:
        entries = self._load()
        entries = dict(entries) if isinstance(entries, dict) else {}
        entries[key] = self._now().isoformat()
        cutoff = (self._now() - timedelta(days=LEDGER_DAYS)).isoformat()
        kept = sorted(((t, k) for k, t in entries.items() if t >= cutoff), reverse=True)
        self._save({k: t for t, k in kept[:LEDGER_MAX]})
