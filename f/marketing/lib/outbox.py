"""The marketing outbox's statements, in one place for the sweep and the emitters.

The table is f/marketing/emitter/outbox.sql. A row is claimed with `FOR UPDATE SKIP LOCKED`, so
two sweeps that overlap (a slow run and the next scheduled one) never send the same row at
once; a row both an emitter and the sweep send is still applied once, since both send the row's
id as Windmill's job_id and Windmill refuses a second job with an id it has."""

# Unsent rows older than the grace period (seconds), oldest first, at most `limit` a run: the
# partial index marketing_outbox_unsent serves it whatever the number of sent rows.
UNSENT = """
select id, event from marketing_outbox
where sent_at is null and created_at < now() - make_interval(secs => %(grace)s)
order by created_at
limit %(limit)s
for update skip locked
"""

MARK_SENT = "update marketing_outbox set sent_at = now() where id = %(id)s and sent_at is null"

MARK_FAILED = """
update marketing_outbox set attempts = attempts + 1, last_error = left(%(error)s, 500)
where id = %(id)s and sent_at is null
"""

# Sent rows are kept a while for support ("did her signup reach Windmill?"), then deleted.
PRUNE = """
delete from marketing_outbox
where sent_at is not null and sent_at < now() - make_interval(days => %(days)s)
"""
