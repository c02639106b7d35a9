"""Mautic's webhook signature: `Webhook-Signature` is the base64 of the raw HMAC-SHA256 of the
JSON body exactly as sent, keyed with the webhook's secret (mautic/mautic
WebhookBundle/Http/Client.php `post`; ../shared/reference/mautic.md, "Webhooks").

Mautic signs no time, so a captured delivery verifies again later: the receiving job, not this
check, must make a repeat harmless (de-duplication). While a secret is being changed, the old
one is accepted as well, as for Stripe (f/marketing/lib/stripe_signature.py). For issue 19's
Mautic webhook script, which is not written yet.
"""

import base64
import hashlib
import hmac
from collections.abc import Sequence

from f.marketing.lib.errors import SignatureRefused

HEADER = "Webhook-Signature"


def signature(payload: str, secret: str) -> str:
    """The header's value Mautic computes for this body and secret."""
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(payload: str, header: str | None, secrets: Sequence[str]) -> None:
    """Check the header against the raw body, or raise SignatureRefused saying why. Nothing
    about the secrets or the expected value is ever said."""
    if not header or not header.strip():
        raise SignatureRefused(f"no {HEADER} header: the request did not come from Mautic")
    given = header.strip()
    if not any(hmac.compare_digest(signature(payload, s), given) for s in secrets if s):
        raise SignatureRefused(
            f"the {HEADER} does not match the body: it was changed on the way, or signed with "
            f"another secret than the webhook's configured here"
        )
