-- The marketing outbox, in the SaaS's own Postgres (Supabase): run once, in the SQL editor or a
-- migration. It is safe to run again.
--
-- The SaaS inserts the event in the transaction that creates or changes the user, so the event
-- exists exactly when the change does. The emitter then sends it after the response, with the
-- row's id as Windmill's job_id, and marks it sent. The sweep (f/marketing/outbox_sweep, on a
-- schedule) sends every row still unsent after a grace period, through the same webhook path.
-- Windmill refuses a second job with an id it has, so a row sent by both is applied once.

create table if not exists marketing_outbox (
  id uuid primary key default gen_random_uuid(), -- the event's id and its Windmill job id
  event jsonb not null check (jsonb_typeof(event) = 'object'), -- the body, as the handler takes it
  created_at timestamptz not null default now(),
  sent_at timestamptz, -- when Windmill queued its job; null until then
  attempts integer not null default 0, -- the sweep's sends that failed
  last_error text -- the last failure (status and Windmill's message; never a token)
);

-- The sweep reads only unsent rows, fewest failed sends first, then oldest: a partial index holds
-- just those, in that order, so the sweep stays cheap however many sent rows the table keeps.
create index if not exists marketing_outbox_unsent
  on marketing_outbox (attempts, created_at) where sent_at is null;

-- What an emitter calls after the response, once Windmill has the job (supabase-js:
-- `supabase.rpc("marketing_outbox_sent", { event_id })`): marks the row sent, unless the sweep
-- holds it right now (it marks it itself), so the SaaS never waits on the sweep's lock. It runs
-- with the caller's rights: under row level security, only the server's role reaches a row.
create or replace function marketing_outbox_sent(event_id uuid) returns boolean
language plpgsql as $$
begin
  update marketing_outbox set sent_at = now()
  where id = (
    select o.id from marketing_outbox o
    where o.id = event_id and o.sent_at is null
    for update skip locked
  );
  return found;
end
$$;

-- The rows hold emails. Supabase serves every table of the public schema to its anon and
-- authenticated roles unless row level security is on: on, with no policy, only the service
-- role (the SaaS's server) and the sweep's database user reach them.
alter table marketing_outbox enable row level security;
