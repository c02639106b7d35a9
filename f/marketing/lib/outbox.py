"""The marketing outbox's statements, in one place for the sweep and the emitters.

The table is f/marketing/emitter/outbox.sql. A row is claimed with `FOR UPDATE SKIP LOCKED`, so
two sweeps that overlap (a slow run and the next scheduled one) never send the same row at
once; a row both an emitter and the sweep send is still applied once, since both send the job
id derived from the row's id (f/marketing/lib/delivery_job.py) and Windmill refuses a second
job with an id it has. Parameters are DB-API `%(name)s`, as psycopg (2 and 3) takes them."""

# The SaaS, in the transaction that creates or changes the user: the row's id is the event's.
ADD = "insert into marketing_outbox (id, event) values (%(id)s, %(event)s::jsonb)"

# Unsent rows older than the grace period (seconds), at most `limit` a run: fewest failed sends
# first, then oldest, so that a row Windmill keeps failing on (the sweep stops at a transient
# failure) goes behind the others instead of holding them up. The partial index
# marketing_outbox_unsent serves it in that order whatever the number of sent rows.
UNSENT = """
select id, event from marketing_outbox
where sent_at is null and created_at < now() - make_interval(secs => %(grace)s)
order by attempts, created_at
limit %(limit)s
for update skip locked
"""

MARK_SENT = "update marketing_outbox set sent_at = now() where id = %(id)s and sent_at is null"

# An emitter marking its row after the response: a row the sweep holds is left to the sweep,
# which marks it itself, so the SaaS never waits on the sweep's lock.
MARK_SENT_UNLESS_CLAIMED = """
update marketing_outbox set sent_at = now()
where id = (
  select id from marketing_outbox where id = %(id)s and sent_at is null for update skip locked
)
"""

MARK_FAILED = """
update marketing_outbox set attempts = attempts + 1, last_error = left(%(error)s, 500)
where id = %(id)s and sent_at is null
"""

# How much is still waiting, and for how long the oldest has (seconds; 0 when none).
WAITING = """
select count(*), coalesce(extract(epoch from now() - min(created_at)), 0)::float8
from marketing_outbox where sent_at is null
"""

# Sent rows are kept a while for support ("did her signup reach Windmill?"), then deleted.
PRUNE = """
delete from marketing_outbox
where sent_at is not null and sent_at < now() - make_interval(days => %(days)s)
"""
