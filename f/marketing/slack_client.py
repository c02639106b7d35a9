"""Thin client for posting one Slack message, by incoming webhook or by chat.postMessage.

Facts relied on (see ../shared/reference/slack.md):
- A webhook answers 200 with the text `ok`; its errors are plain text with a status
  (404 `no_service`, 410 `channel_is_archived`: the webhook is dead).
- chat.postMessage answers errors as HTTP 200 `{"ok": false, "error": ...}`.
- Both answer 429 with Retry-After. The webhook URL and the bot token are secrets: neither
  appears in any message this module produces.
"""

from typing import Any
from urllib.parse import urlsplit

import httpx

from f.marketing.config import SlackSettings
from f.marketing.errors import ServiceError
from f.marketing.http_client import (
    DEFAULT_POLICY,
    RetryPolicy,
    ServiceHttp,
    json_body,
    plain_error,
)

API_BASE = "https://slack.com/api"
DEAD_WEBHOOK = {404, 410}


def read_error(response: httpx.Response) -> str:
    body = json_body(response)
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    text = plain_error(response)
    if response.status_code in DEAD_WEBHOOK:
        return f"{text}: the webhook is revoked or its channel archived; create a new webhook"
    return text


class SlackClient:
    def __init__(self, http: ServiceHttp, path: str, channel: str | None) -> None:
        self.http = http
        self._path = path
        self._channel = channel

    @classmethod
    def from_settings(
        cls, settings: SlackSettings, policy: RetryPolicy = DEFAULT_POLICY, **http_options: Any
    ) -> "SlackClient":
        if settings.webhook_url:
            url = urlsplit(settings.webhook_url)
            http = ServiceHttp(
                "Slack",
                f"{url.scheme}://{url.netloc}",
                error_reader=read_error,
                policy=policy,
                **http_options,
            )
            return cls(http, url.path, None)
        http = ServiceHttp(
            "Slack",
            API_BASE,
            headers={"Authorization": f"Bearer {settings.token}"},
            error_reader=read_error,
            policy=policy,
            **http_options,
        )
        return cls(http, "/chat.postMessage", settings.channel)

    @property
    def destination(self) -> str:
        return f"channel {self._channel}" if self._channel else "incoming webhook"

    def post(self, text: str, blocks: list[dict[str, Any]]) -> None:
        """Post the message. Timeouts and 5xx are retried, as Slack advises: a rare duplicate
        message is cheaper than a lost alert."""
        body: dict[str, Any] = {"text": text, "blocks": blocks}
        if self._channel:
            body["channel"] = self._channel
        response = self.http.request("POST", self._path, action="post message", json=body)
        if self._channel:
            reply = json_body(response)
            if not isinstance(reply, dict) or not reply.get("ok"):
                error = reply.get("error") if isinstance(reply, dict) else "unreadable reply"
                raise ServiceError("Slack", "post message", str(error), status=response.status_code)
