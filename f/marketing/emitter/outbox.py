"""The outbox from Python: the event is written in the transaction that changes the user, and
sent after the commit; what is never marked sent, f/marketing/outbox_sweep sends.

    from f.marketing import emitter
    from f.marketing.emitter import events, outbox

    body = events.user_registered("jane@acme.com", name=None, plan="pro", source="ads",
                                  marketing_consent=True)
    with conn.transaction():  # psycopg 3; psycopg2 and other DB-API drivers alike
        create_user(conn, ...)
        event_id = outbox.add(conn.cursor(), body)
    if event_id:
        emitter.send_outboxed(event_id, body, on_sent=mark_sent_with_a_pooled_connection)

The table is f/marketing/emitter/outbox.sql; the statements are f/marketing/lib/outbox.py's.
"""

import json
import logging
import uuid
from typing import Any

from f.marketing.lib.contract import parse_event
from f.marketing.lib.errors import MarketingError
from f.marketing.lib.outbox import ADD, MARK_SENT_UNLESS_CLAIMED

log = logging.getLogger("f.marketing.emitter")


def add(cursor: Any, body: dict[str, Any]) -> str | None:
    """Insert the event with `cursor`, in its connection's open transaction; the row's id.

    An event that breaks the contract is logged (naming the field) and not written, and the
    caller's transaction goes on: a bad event never stops a registration. A failed insert
    (no marketing_outbox table) raises, as any statement of the transaction would: that is
    what makes the event exist exactly when the user does."""
    try:
        event = parse_event(body)
    except MarketingError as exc:
        log.error("event not written to the outbox: %s", exc)
        return None
    event_id = str(uuid.uuid4())
    cursor.execute(ADD, {"id": event_id, "event": json.dumps(event.body())})
    return event_id


def mark_sent(cursor: Any, event_id: str) -> None:
    """Mark the row sent, unless the sweep holds it (it marks it itself): never waits on it."""
    cursor.execute(MARK_SENT_UNLESS_CLAIMED, {"id": event_id})
