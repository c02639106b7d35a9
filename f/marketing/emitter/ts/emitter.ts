// The SaaS side in TypeScript: send one lifecycle event to f/marketing/handle_user_event.
//
// `sendUserEvent` never throws and never waits on the caller's response: call it inside
// Next.js's `after()` or Vercel's `waitUntil()`, which keep the function alive until the
// promise settles (an un-awaited `fetch` may be frozen with the function once it responds).
// Each event gets one id, sent as Windmill's `job_id` on every attempt, so a retry after a lost
// answer names the job that already exists and Windmill refuses it (400 "Job with id …
// already exists"; windmill-queue jobs.rs `push`): an event is queued once however often it
// is sent. `raw=true` is added because the handler reads the body's exact text and refuses a
// delivery without it. Mirrors f/marketing/emitter/request.py and the Python RetryPolicy.

import type { UserChurned, UserLifecycleEvent, UserRegistered, UserUpgraded } from "./user_events.js";

export type { UserChurned, UserLifecycleEvent, UserRegistered, UserUpgraded };

export interface EmitOptions {
  /** The webhook URL (default: WINDMILL_WEBHOOK_URL), `.../jobs/run/p/f/marketing/handle_user_event`. */
  url?: string;
  /** A token that may run the script (default: WINDMILL_API_TOKEN), sent as a Bearer token. */
  token?: string;
  /** The event's id and Windmill job id, a UUID (default: a new one). An outbox passes its row's. */
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
  /** Windmill's job id: the event id, since it is sent as `job_id`. */
  jobId?: string;
  /** Why it was not delivered (status and Windmill's message, without secrets). */
  reason?: string;
}

const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const ALREADY_QUEUED = /duplicate key|already exists/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
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
  if (!UUID.test(eventId)) return fail("eventId must be a UUID (Windmill's job_id)");
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return fail("WINDMILL_WEBHOOK_URL is not a URL");
  }
  target.searchParams.set("raw", "true");
  target.searchParams.set("job_id", eventId);
  return deliver(target, token, eventId, JSON.stringify(event), options, fail);
}

async function deliver(
  target: URL,
  token: string,
  eventId: string,
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
        signal: AbortSignal.timeout(Math.max(1, Math.min(options.timeoutMs ?? 5000, deadline - Date.now()))),
      });
      const text = await response.text();
      if (response.ok) return { eventId, delivered: true, jobId: text.trim().replace(/^"|"$/g, "") || eventId };
      if (response.status === 400 && ALREADY_QUEUED.test(text)) {
        return { eventId, delivered: true, jobId: eventId }; // an earlier attempt landed
      }
      reason = `HTTP ${response.status}: ${text.trim().slice(0, 300) || response.statusText}`;
      if (!TRANSIENT_STATUS.has(response.status)) return fail(reason);
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
  for (const secret of secrets) if (secret) safe = safe.split(secret).join("***");
  return safe;
}

function now(): string {
  return new Date().toISOString();
}
