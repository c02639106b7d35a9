"""Thin client for posting one Slack message, by incoming webhook or by chat.postMessage.

Facts relied on (api.slack.com: 2016-05-17 webhook errors changelog, rate limits, methods):
- A webhook answers 200 with the text `ok`; its errors are plain text with a status
  (404 `no_service`, 410 `channel_is_archived`: the webhook is dead).
- chat.postMessage answers errors as HTTP 200 `{"ok": false, "error": ...}`.
- Both answer 429 with Retry-After. The webhook URL and the bot token are secrets: neither
  appears in any message this module produces.
- A post whose answer was lost (read timeout, dropped connection, a 5xx other than 503) may
  have been posted: it is not sent again, and the caller reports it as uncertain.
"""

from typing import Any
from urllib.parse import urlsplit

import httpx

from f.marketing.lib.errors import ServiceError
from f.marketing.lib.service_http import (
    DEFAULT_POLICY,
    RetryPolicy,
    ServiceClient,
    ServiceHttp,
    json_body,
    plain_error,
)
from f.marketing.lib.service_settings import SlackSettings

DEAD_WEBHOOK = {404, 410}


def read_error(response: httpx.Response) -> str:
    body = json_body(response)
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    text = plain_error(response)
    if response.status_code in DEAD_WEBHOOK:
        return f"{text}: the webhook is revoked or its channel archived; create a new webhook"
    return text


class SlackClient(ServiceClient):
    SERVICE = "Slack"
    read_error = staticmethod(read_error)

    def __init__(self, http: ServiceHttp, path: str, channel: str | None) -> None:
        super().__init__(http)
        self._path = path
        self._channel = channel

    @classmethod
    def from_settings(
        cls, settings: SlackSettings, policy: RetryPolicy = DEFAULT_POLICY, **http_options: Any
    ) -> "SlackClient":
        if settings.webhook_url:
            url = urlsplit(settings.webhook_url)
            http = cls._connect(f"{url.scheme}://{url.netloc}", policy, http_options)
            return cls(http, url.path, None)
        api = settings.api_base_url.rstrip("/")
        http = cls._connect(api, policy, http_options, token=settings.token or "")
        return cls(http, "/chat.postMessage", settings.channel)

    @property
    def destination(self) -> str:
        return f"channel {self._channel}" if self._channel else "incoming webhook"

    def post(self, text: str, blocks: list[dict[str, Any]]) -> None:
        """Post the message once. What surely did not arrive (no connection, 429, 503) is
        retried; a post that may have arrived raises ServiceError with `maybe_applied`."""
        body: dict[str, Any] = {"text": text, "blocks": blocks}
        if self._channel:
            body["channel"] = self._channel
        response: httpx.Response = self.http.request(
            "POST", self._path, action="post message", json=body, replay_safe=False
        )
        if self._channel:
            reply = json_body(response)
            if not isinstance(reply, dict):  # a 200 that is not Slack's JSON: it may be posted
                raise ServiceError(
                    "Slack",
                    "post message",
                    "unreadable reply from Slack",
                    status=response.status_code,
                    transient=True,
                    maybe_applied=True,
                )
            if not reply.get("ok"):
                raise ServiceError(
                    "Slack", "post message", str(reply.get("error")), status=response.status_code
                )
