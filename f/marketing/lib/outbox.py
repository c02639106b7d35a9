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

# For the sweep (not written yet), what Windmill's `postgresql` resource holds and how a Python
# job reaches the SaaS's database (looked up in windmill-labs/windmill and Supabase's docs):
# - Fields: host and dbname required; user, password, port, sslmode, root_certificate_pem
#   optional (windmill-common lib.rs `PgDatabase`). A Python main gets the stored dict as is:
#   Windmill's defaults (user postgres, port 5432, sslmode prefer) apply to its SQL scripts only.
# - `class postgresql(TypedDict)` before main gives the form `format: resource-postgresql`
#   (windmill-parser-py `parse_typ`; only the class name is read).
# - root_certificate_pem is the PEM text: libpq's sslrootcert wants a file path, so write it out.
# - A top-level `import psycopg` makes the worker install `psycopg[binary, pool]`
#   (windmill-parser-py-imports mapping.rs); pin it with `import psycopg  # pin: ...`.
# - Supabase's transaction pooler (port 6543) has no prepared statements: connect with
#   prepare_threshold=None; keep the select and its updates in one transaction (no SET).
