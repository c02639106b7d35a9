"""Stripe's webhook signature, checked the way Stripe's own libraries check it.

The `Stripe-Signature` header is `t=<unix time>,v1=<hex>[,v1=<hex>...][,v0=...]`; each `v1` is
HMAC-SHA256 of `"{t}.{raw body}"` keyed with an endpoint's signing secret (`whsec_...`).
While a secret is being rolled, Stripe signs with both and sends one `v1` per secret, so any
`v1` matching any of our secrets is enough; other schemes (`v0` on test events) are ignored.
A request signed longer ago than the tolerance (300 s by default) is refused as a replay.
Sources: docs.stripe.com/webhooks ("Verify webhook signatures manually", "Roll endpoint
secrets"); stripe/stripe-python stripe/_webhook.py, WebhookSignature.verify_header.

Windmill's Stripe preset for HTTP routes checks neither the age nor more than one `v1`
(windmill-trigger-http http_trigger_auth.rs), hence this module.
"""

import hashlib
import hmac
import time
from collections.abc import Sequence

from f.marketing.lib.errors import SignatureRefused

DEFAULT_TOLERANCE = 300
SCHEME = "v1"


def signature(payload: str, secret: str, timestamp: int) -> str:
    """The `v1` value Stripe computes for this body, time and secret."""
    signed = f"{timestamp}.{payload}".encode()
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    payload: str,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check the header against the raw body; return its timestamp, or raise SignatureRefused
    saying why. Nothing about the secrets or the expected value is ever said."""
    if not header or not header.strip():
        raise SignatureRefused("no Stripe-Signature header: the request did not come from Stripe")
    timestamp, candidates = _parse(header)
    expected = [signature(payload, secret, timestamp) for secret in secrets]
    if not any(hmac.compare_digest(e, c) for e in expected for c in candidates):
        raise SignatureRefused(
            "the Stripe-Signature does not match the body: it was changed on the way, or "
            "signed with a secret that f/marketing/stripe does not hold (signing_secret, "
            "previous_signing_secret)"
        )
    age = (time.time() if now is None else now) - timestamp
    if age > tolerance:
        raise SignatureRefused(
            f"the request was signed {age:.0f} s ago, more than the {tolerance} s allowed: "
            f"a replayed or long-delayed request (Stripe signs each delivery anew)"
        )
    return timestamp


def _parse(header: str) -> tuple[int, list[str]]:
    pairs = [item.split("=", 1) for item in header.split(",")]
    values = [(pair[0].strip(), pair[1].strip()) for pair in pairs if len(pair) == 2]
    times = [value for key, value in values if key == "t"]
    if not times or not times[0].isdigit():
        raise SignatureRefused("the Stripe-Signature header has no timestamp (t=...)")
    candidates = [value for key, value in values if key == SCHEME]
    if not candidates:
        raise SignatureRefused(f"the Stripe-Signature header has no {SCHEME} signature")
    return int(times[0]), candidates
