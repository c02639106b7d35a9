"""Stateful stand-ins for Slack: an incoming webhook and the Web API's chat.postMessage.

They follow Slack's documentation: "Sending messages using incoming webhooks" (its error
table: https://api.slack.com/messaging/webhooks#handling_errors), the chat.postMessage method
(https://api.slack.com/methods/chat.postMessage, its errors and rate limit) and the Block Kit
limits (https://api.slack.com/reference/block-kit/blocks). The two fail in opposite ways,
which is the point of faking both: the webhook answers plain text with a real HTTP status
(success is the text `ok`, not JSON), while chat.postMessage answers its errors as HTTP 200
`{"ok": false, "error": ...}`.
"""

import itertools
import json
import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.fakes.faults import BadBody, Body, FakeService, json_response, read_body, text_response

WEBHOOK_URL = "https://hooks.slack.com/services/T000TEST/B000TEST/s3cr3tW3bh00kT0k3n"
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_TEXT = 40000
WEBHOOK_ERRORS = {
    400: "invalid_payload",
    403: "action_prohibited",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
    500: "rollup_error",
}


def _text_of(obj: Any) -> str | None:
    """The string inside a text object, or None when it is not one."""
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return obj["text"]
    return None


def blocks_are_valid(blocks: Any) -> bool:
    """The Block Kit limits Slack enforces with `invalid_blocks` (for the block types we use)."""
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return False
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return False
        if block["type"] == "header":
            text = _text_of(block.get("text"))
            if text is None or block["text"].get("type") != "plain_text":
                return False
            if len(text) > MAX_HEADER_TEXT:
                return False
        elif block["type"] == "section":
            if "text" not in block and "fields" not in block:
                return False
            if "text" in block:
                text = _text_of(block["text"])
                if text is None or len(text) > MAX_SECTION_TEXT:
                    return False
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    return False
                for field in fields:
                    text = _text_of(field)
                    if text is None or len(text) > MAX_FIELD_TEXT:
                        return False
    return True


def payload_error(payload: dict) -> str | None:
    """Slack's error code for a message payload, or None when it would be posted."""
    blocks = payload.get("blocks")
    if not payload.get("text") and not blocks and not payload.get("attachments"):
        return "no_text"
    if blocks is not None and not blocks_are_valid(blocks):
        return "invalid_blocks"
    text = payload.get("text")
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return "msg_too_long"
    return None


class _PerSecond:
    """At most `rate` posts per second per key, from an injectable monotonic clock."""

    def __init__(self, rate: float | None, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.clock = clock
        self._last: dict[str, float] = {}

    def wait(self, key: str) -> float:
        """Seconds until `key` may post again; 0 when it may post now."""
        if not self.rate or key not in self._last:
            return 0.0
        return max(0.0, self._last[key] + 1.0 / self.rate - self.clock())

    def posted(self, key: str) -> None:
        self._last[key] = self.clock()


class FakeSlackWebhook(FakeService):
    """One incoming webhook. `messages` holds every accepted payload.

    Any other path on hooks.slack.com is a revoked or mistyped webhook: 404 `no_service`.
    """

    def __init__(
        self,
        url: str = WEBHOOK_URL,
        *,
        archived: bool = False,
        revoked: bool = False,
        rate_limit_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parsed = httpx.URL(url)
        super().__init__(f"{parsed.scheme}://{parsed.host}")
        self.url = url
        self.path = parsed.path
        self.archived = archived
        self.revoked = revoked
        self.messages: list[dict] = []
        self._limit = _PerSecond(rate_limit_per_second, clock)

    @property
    def rate_limit_per_second(self) -> float | None:
        return self._limit.rate

    @rate_limit_per_second.setter
    def rate_limit_per_second(self, rate: float | None) -> None:
        self._limit.rate = rate

    def error_body(self, status: int, message: str | None = None) -> Body:
        default = httpx.codes.get_reason_phrase(status).lower().replace(" ", "_")
        return message or WEBHOOK_ERRORS.get(status, default)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Plain-text answers with real statuses; success is 200 `ok`."""
        if request.url.path != self.path or self.revoked:
            return self.error(404)
        if request.method != "POST":
            return self.error(400)
        if self.archived:
            return self.error(410)
        wait = self._limit.wait(self.path)
        if wait > 0:
            return self.error(429, headers={"Retry-After": str(max(1, math.ceil(wait)))})
        payload = self._payload(request)
        if payload is None:
            return self.error(400, "invalid_payload")
        error = payload_error(payload)
        if error:
            return self.error(400, error)
        self.messages.append(payload)
        self._limit.posted(self.path)
        return text_response(200, "ok")

    @staticmethod
    def _payload(request: httpx.Request) -> dict | None:
        """A JSON object, or the legacy form field `payload=<json>`; None when neither."""
        if not request.content.strip():
            return None
        try:
            body = read_body(request)
            if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
                body = json.loads(body.get("payload", ""))
        except (BadBody, ValueError):
            return None
        return body if isinstance(body, dict) else None


class FakeSlackApi(FakeService):
    """The Web API's chat.postMessage with a bot token. `messages` holds accepted payloads.

    `channels` maps a channel id to {"member": bool, "archived": bool}; an id not in it is
    `channel_not_found`.
    """

    routes = (("POST", r"/chat\.postMessage", "post_message"),)

    def __init__(
        self,
        base_url: str = "https://slack.com/api",
        token: str = "xoxb-test-token",
        *,
        channels: dict[str, dict] | None = None,
        rate_limit_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(base_url)
        self.token = token
        default_channels = {"C0123TEST": {"member": True}, "C0456PRIV": {"member": False}}
        self.channels = {k: dict(v) for k, v in (channels or default_channels).items()}
        self.messages: list[dict] = []
        self._limit = _PerSecond(rate_limit_per_second, clock)
        self._ts = itertools.count(100)

    @property
    def rate_limit_per_second(self) -> float | None:
        return self._limit.rate

    @rate_limit_per_second.setter
    def rate_limit_per_second(self, rate: float | None) -> None:
        self._limit.rate = rate

    def error_body(self, status: int, message: str | None = None) -> Body:
        default = "ratelimited" if status == 429 else "internal_error"
        return {"ok": False, "error": message or default}

    def not_found(self, request: httpx.Request) -> httpx.Response:
        method = (self.relative_path(request) or request.url.path).lstrip("/")
        return json_response(404, {"ok": False, "error": "unknown_method", "req_method": method})

    @staticmethod
    def _failed(error: str) -> httpx.Response:
        """Web API errors are HTTP 200: only `ok` tells them apart."""
        return json_response(200, {"ok": False, "error": error})

    def post_message(self, request: httpx.Request) -> httpx.Response:
        try:
            payload = read_body(request)
        except BadBody:
            return self._failed("invalid_json")
        if not isinstance(payload, dict):
            return self._failed("invalid_arguments")
        if isinstance(payload.get("blocks"), str):  # a form sends blocks as a JSON string
            try:
                payload["blocks"] = json.loads(payload["blocks"])
            except ValueError:
                return self._failed("invalid_blocks")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token if scheme.lower() == "bearer" else payload.pop("token", "")
        if not token:
            return self._failed("not_authed")
        if token != self.token:
            return self._failed("invalid_auth")
        channel_id = str(payload.get("channel") or "")
        channel = self.channels.get(channel_id)
        if channel is None:
            return self._failed("channel_not_found")
        if channel.get("archived"):
            return self._failed("is_archived")
        if not channel.get("member"):
            return self._failed("not_in_channel")
        wait = self._limit.wait(channel_id)
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait)))
            return self.error(429, headers={"Retry-After": retry_after})
        error = payload_error(payload)
        if error:
            return self._failed(error)
        self.messages.append(payload)
        self._limit.posted(channel_id)
        ts = f"1712345678.{next(self._ts):06d}"
        message = {"type": "message", "text": payload.get("text", ""), "bot_id": "B0TEST", "ts": ts}
        if payload.get("blocks"):
            message["blocks"] = payload["blocks"]
        return json_response(200, {"ok": True, "channel": channel_id, "ts": ts, "message": message})
