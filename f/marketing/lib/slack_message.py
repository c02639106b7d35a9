"""Which Slack rules an event matches, and the message it gets (every value escaped, so a name
such as <!channel> pings no one)."""

from dataclasses import dataclass
from typing import Any, assert_never

from f.marketing.lib.contract import Event, UserChurned, UserRegistered, UserUpgraded
from f.marketing.lib.routing import SlackRule


@dataclass(frozen=True)
class Message:
    rules: tuple[str, ...]
    text: str
    blocks: list[dict[str, Any]]


def matching_rules(event: Event, rules: list[SlackRule]) -> list[SlackRule]:
    """Rules naming the event, and its plan (the new one for upgrades) and source if they say."""
    plan: str | None
    source: str | None
    match event:
        case UserRegistered():
            plan, source = event.plan, event.source
        case UserUpgraded():
            plan, source = event.newPlan, None
        case UserChurned():
            plan, source = None, None
        case _:
            assert_never(event)
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
    match event:
        case UserRegistered():
            who = escape(event.name) if event.name else email
            title = "New signup"
            text = f"New signup: {who} on {escape(event.plan)}"
            facts = {"Email": email, "Plan": escape(event.plan), "Source": escape(event.source)}
            if event.name:
                facts = {"Name": who, **facts}
        case UserUpgraded():
            title = "Upgrade"
            text = f"Upgrade: {email} {escape(event.previousPlan)} → {escape(event.newPlan)}"
            facts = {
                "Email": email,
                "From": escape(event.previousPlan),
                "To": escape(event.newPlan),
            }
        case UserChurned():
            title = "Churn"
            reason = escape(event.reason) if event.reason else "not given"
            text = f"Churn: {email} (reason: {reason[:200]})"
            facts = {"Email": email, "Reason": reason[:1900]}
        case _:
            assert_never(event)
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
