// The SaaS side in TypeScript: send one lifecycle event to f/marketing/handle_user_event.
//
// `sendUserEvent` never throws and never waits on the caller's response: call it inside
// Next.js's `after()` or Vercel's `waitUntil()`, which keep the function alive until the
// promise settles (an un-awaited `fetch` may be frozen with the function once it responds).
// Each event gets one id, and every attempt sends the same Windmill `job_id` derived from it, so
// a retry after a lost answer names the job that already exists and Windmill refuses it (400
// "Job with id … already exists"; windmill-queue jobs.rs `push`): an event is queued once however
// often it is sent. Job ids are unique across the Windmill instance, so the job id is a UUIDv5
// of "<workspace>/<script path>/<event id>" (f/marketing/lib/delivery_job.py derives the same):
// another workspace, or a staging copy of the same outbox, never collides with this one.
// `raw=true` is added because the handler reads the body's exact text and refuses a delivery
// without it. Windmill's answers (windmill-common error.rs, plain text, its kind first) are read
// as f/marketing/lib/webhook_delivery.py reads them: only a 201 naming the job is a delivery; 400
// "already exists" / "duplicate key" means an earlier attempt landed; a 400 "SqlErr"/"Sql
// error" is the database failing and is retried; a 401 is retried once (a token lookup whose
// database read failed looks like a bad token); 408, 429 and 5xx other than 501 are retried.

import type { UserChurned, UserLifecycleEvent, UserRegistered, UserUpgraded } from "./user_events.js";

export type { UserChurned, UserLifecycleEvent, UserRegistered, UserUpgraded };

export interface EmitOptions {
  /** The webhook URL (default: WINDMILL_WEBHOOK_URL), `.../jobs/run/p/f/marketing/handle_user_event`. */
  url?: string;
  /** A token that may run the script (default: WINDMILL_API_TOKEN), sent as a Bearer token. */
  token?: string;
  /**
   * The event's id, a random (v4) or time-ordered (v7) UUID, one per event: never a user's id,
   * which two events share (default: a new one). An outbox passes its row's id.
   */
  eventId?: string;
  /** Per attempt, connection and answer together (default 5000 ms). */
  timeoutMs?: number;
  /** Attempts in all (default 4). */
  attempts?: number;
  /** The whole delivery, waits and Retry-After included (default 20000 ms). */
  budgetMs?: number;
  /** Where failures are reported (default console.warn). Never given a token, URL or email. */
  log?: (message: string) => void;
  /** For tests and other runtimes (default the global fetch). */
  fetch?: typeof fetch;
}

export interface Delivery {
  eventId: string;
  delivered: boolean;
  /** Windmill's job id, derived from the event id (see `deliveryJobId`). */
  jobId?: string;
  /** Windmill had the job already: an earlier attempt landed, or the outbox's other sender. */
  alreadyQueued?: boolean;
  /** Why it was not delivered (status and Windmill's message, without secrets). */
  reason?: string;
}

const ALREADY_QUEUED = /duplicate key|already exists/i;
const DATABASE_ERROR = /^sql ?err(or)?\b/i;
// Random (v4) or time-ordered (v7), RFC 4122 variant: the nil UUID and made-up ids are refused.
const EVENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[47][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const WEBHOOK_PATH = /^\/api\/w\/(?<workspace>[\w-]+)\/jobs\/run\/p\/(?<script>[\w/.-]+?)\/?$/;
// Fixed, as in f/marketing/lib/delivery_job.py: every sender derives the same job ids.
const DELIVERIES = "9d2c4e71-5b8a-4f03-a6e2-7c41d0b9f358";
const FIRST_WAIT_MS = 250;
const MAX_WAIT_MS = 4000;
let warnedUnconfigured = false;

type Body<E extends UserLifecycleEvent> = Omit<E, "event" | "timestamp"> & { timestamp?: string };

/** The `user.registered` body, timestamped now unless given. */
export function userRegistered(fields: Body<UserRegistered>): UserRegistered {
  return { event: "user.registered", ...fields, timestamp: fields.timestamp ?? now() };
}

/** The `user.upgraded` body (a downgrade too), timestamped now unless given. */
export function userUpgraded(fields: Body<UserUpgraded>): UserUpgraded {
  return { event: "user.upgraded", ...fields, timestamp: fields.timestamp ?? now() };
}

/** The `user.churned` body, timestamped now unless given. */
export function userChurned(fields: Body<UserChurned>): UserChurned {
  return { event: "user.churned", ...fields, timestamp: fields.timestamp ?? now() };
}

/** Deliver one event, retrying transient failures; resolves with how it fared, never rejects. */
export async function sendUserEvent(
  event: UserLifecycleEvent,
  options: EmitOptions = {},
): Promise<Delivery> {
  const eventId = options.eventId ?? crypto.randomUUID();
  const log = options.log ?? ((message: string) => console.warn(message));
  const url = options.url ?? process.env.WINDMILL_WEBHOOK_URL;
  const token = options.token ?? process.env.WINDMILL_API_TOKEN;
  if (!url || !token) {
    if (!warnedUnconfigured) {
      warnedUnconfigured = true;
      log("lifecycle events are not sent: WINDMILL_WEBHOOK_URL or WINDMILL_API_TOKEN is not set");
    }
    return { eventId, delivered: false, reason: "not configured" };
  }
  const fail = (reason: string): Delivery => {
    const safe = redact(reason, [token, url, event.email]);
    log(`lifecycle event ${eventId} (${event.event}) not delivered: ${safe}`);
    return { eventId, delivered: false, reason: safe };
  };
  if (!EVENT_ID.test(eventId)) return fail("eventId must be a random (v4) or time-ordered (v7) UUID");
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return fail("WINDMILL_WEBHOOK_URL is not a URL");
  }
  const webhook = WEBHOOK_PATH.exec(target.pathname)?.groups;
  if (!webhook?.workspace || !webhook.script) {
    return fail("WINDMILL_WEBHOOK_URL is not a webhook URL (…/api/w/<workspace>/jobs/run/p/<script>)");
  }
  const jobId = await deliveryJobId(webhook.workspace, webhook.script, eventId.toLowerCase());
  target.searchParams.set("raw", "true");
  target.searchParams.set("job_id", jobId);
  return deliver(target, token, eventId, jobId, JSON.stringify(event), options, fail);
}

/** Windmill's job id for this event sent to this workspace's script: a UUIDv5 (RFC 9562). */
export async function deliveryJobId(workspace: string, script: string, eventId: string): Promise<string> {
  const namespace = Uint8Array.from(DELIVERIES.replace(/-/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));
  const name = new TextEncoder().encode(`${workspace}/${script}/${eventId}`);
  const input = new Uint8Array(namespace.length + name.length);
  input.set(namespace);
  input.set(name, namespace.length);
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-1", input)).slice(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function deliver(
  target: URL,
  token: string,
  eventId: string,
  jobId: string,
  body: string,
  options: EmitOptions,
  fail: (reason: string) => Delivery,
): Promise<Delivery> {
  const post = options.fetch ?? fetch;
  const attempts = options.attempts ?? 4;
  const deadline = Date.now() + (options.budgetMs ?? 20_000);
  for (let attempt = 1; ; attempt++) {
    let reason: string;
    let retryAfterMs: number | undefined;
    try {
      const response = await post(target, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body,
        redirect: "manual", // a redirect (a login page, another host) is not Windmill queuing the job
        signal: AbortSignal.timeout(Math.max(1, Math.min(options.timeoutMs ?? 5000, deadline - Date.now()))),
      });
      const text = (await response.text()).trim();
      if (response.status === 201 && text.replace(/^"|"$/g, "") === jobId) {
        return { eventId, delivered: true, jobId };
      }
      if (response.status === 400 && ALREADY_QUEUED.test(text)) {
        return { eventId, delivered: true, jobId, alreadyQueued: true }; // an earlier attempt landed
      }
      // The first line only: Windmill's kind and reason, not whatever else it echoes back.
      const said = text.split("\n", 1)[0]!.slice(0, 200) || response.statusText;
      reason = response.ok ? `HTTP ${response.status} that is not a queued job` : `HTTP ${response.status}: ${said}`;
      if (!transient(response.status, text, attempt)) return fail(reason);
      retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
    } catch (error) {
      reason = error instanceof Error && error.name === "TimeoutError" ? "timed out" : errorName(error);
    }
    const wait = Math.max(retryAfterMs ?? 0, backoff(attempt));
    if (attempt >= attempts) return fail(`${reason} (after ${attempt} attempts)`);
    if (Date.now() + wait >= deadline) return fail(`${reason} (no time left to retry)`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

function transient(status: number, text: string, attempt: number): boolean {
  if (status === 400) return DATABASE_ERROR.test(text) && !ALREADY_QUEUED.test(text);
  if (status === 401) return attempt === 1;
  if (status >= 200 && status < 300) return true; // Windmill acted, or not: the job id makes it safe
  return status === 408 || status === 429 || (status >= 500 && status !== 501);
}

function backoff(attempt: number): number {
  const ceiling = Math.min(MAX_WAIT_MS, FIRST_WAIT_MS * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function errorName(error: unknown): string {
  // fetch wraps the socket error (ECONNREFUSED, ECONNRESET) in `cause`; its message may hold the URL.
  const cause = error instanceof Error ? (error.cause as { code?: string } | undefined) : undefined;
  if (cause?.code) return `connection failed (${cause.code})`;
  return error instanceof Error ? error.name : "unknown error";
}

function redact(text: string, secrets: (string | undefined)[]): string {
  let safe = text;
  for (const secret of secrets) {
    if (secret) safe = safe.replace(new RegExp(secret.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi"), "***");
  }
  return safe;
}

function now(): string {
  return new Date().toISOString();
}
