"""Mautic's Webhook-Signature, checked as Mautic computes it: base64 of the raw HMAC-SHA256 of
the body as sent (WebhookBundle/Http/Client.php), with a body as PHP's json_encode writes it."""

import base64
import hashlib
import hmac
import json

import pytest

from f.marketing.lib.errors import SignatureRefused
from f.marketing.lib.mautic_signature import signature, verify

SECRET = "mautic-webhook-secret"
# json_encode escapes "/" and non-ASCII by default: the bytes signed are these, not Python's.
BODY = (
    '{"mautic.lead_channel_subscription_changed":[{"channel":"email","new_status":"unsubs'
    'cribed","timestamp":"2026-12-04T10:00:00+00:00","contact":{"id":7,"fields":{"core":{'
    '"email":{"value":"jane@acme.com"}}},"url":"https:\\/\\/m.example\\/s\\/contacts\\/vi'
    'ew\\/7","name":"Jos\\u00e9"}}]}'
)


# What PHP's base64_encode(hash_hmac('sha256', BODY, SECRET, true)) gives, computed apart:
# `openssl dgst -sha256 -hmac mautic-webhook-secret -binary body.json | base64`.
SIGNED_BY_MAUTIC = "/ioEJwQeSRkTZLbn+39ksUV/UvW6sIQAD/Dm0XfQmaQ="


def mautic_signs(body: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_a_body_signed_by_mautic_verifies():
    assert json.loads(BODY)["mautic.lead_channel_subscription_changed"][0]["contact"]["id"] == 7
    assert signature(BODY, SECRET) == SIGNED_BY_MAUTIC
    verify(BODY, SIGNED_BY_MAUTIC, [SECRET])


def test_the_previous_secret_still_verifies_while_it_is_changed():
    verify(BODY, mautic_signs(BODY, "old-secret"), [SECRET, "old-secret"])


@pytest.mark.parametrize(
    ("body", "header", "why"),
    [
        (BODY, None, "no Webhook-Signature header"),
        (BODY, "  ", "no Webhook-Signature header"),
        (BODY, mautic_signs(BODY, "another"), "does not match the body"),
        # Re-encoded on the way (a proxy that parsed and re-serialized the JSON).
        (json.dumps(json.loads(BODY)), mautic_signs(BODY, SECRET), "does not match the body"),
    ],
    ids=["missing", "blank", "other secret", "re-encoded body"],
)
def test_a_forged_or_changed_delivery_is_refused_without_saying_the_secret(body, header, why):
    with pytest.raises(SignatureRefused) as refused:
        verify(body, header, [SECRET, ""])
    assert why in str(refused.value)
    assert SECRET not in str(refused.value) and signature(BODY, SECRET) not in str(refused.value)


def test_an_empty_secret_never_verifies_anything():
    with pytest.raises(SignatureRefused):
        verify(BODY, mautic_signs(BODY, ""), [""])
