// The TypeScript emitter against a Windmill stand-in on 127.0.0.1: what Windmill's
// `POST /api/w/{ws}/jobs/run/p/{path}` does with a caller-chosen job_id (a second push of an id
// it has → 400 "Job with id … already exists"; windmill-queue jobs.rs `push`), its Bearer auth,
// and faults injected per request. Errors are plain text, their kind first, as windmill-common
// error.rs writes them; a refusal echoes what it was sent (the email, the token), as a real
// one may, so that the tests prove the emitter keeps them out of its reasons and logs.
// Assertions are on the jobs the stand-in queued.

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";

import {
  deliveryJobId,
  sendUserEvent,
  userChurned,
  userRegistered,
  userUpgraded,
} from "../../f/marketing/emitter/ts/emitter.js";

const TOKEN = "wm-secret-token";
const SCRIPT = "f/marketing/handle_user_event";
const PATH = `/api/w/acme/jobs/run/p/${SCRIPT}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Fault =
  | "408" | "500" | "501" | "502" | "503" | "504" | "429" | "hang" | "reset" | "lose-answer"
  | "401" | "403" | "400" | "sql" | "race" | "login-page" | "redirect";

interface Job {
  id: string;
  body: string;
  query: URLSearchParams;
}

class WindmillStandIn {
  jobs = new Map<string, Job>();
  requests = 0;
  faults: Fault[] = [];
  retryAfter = "0";
  private server: Server = createServer((req, res) => this.handle(req, res));

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}${PATH}?token_hint=kept`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      this.requests++;
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const body = Buffer.concat(chunks).toString("utf8");
      const echo = `${req.headers.authorization ?? ""} ${body}`; // what a refusal may quote
      const fault = this.faults.shift();
      if (fault === "hang") return; // never answers: the caller's timeout ends it
      if (fault === "reset") return void req.socket.destroy();
      if (fault && /^\d+$/.test(fault) && Number(fault) >= 500) {
        return this.answer(res, Number(fault), `Internal: ${echo}`);
      }
      if (fault === "408") return this.answer(res, 408, "Request Timeout");
      if (fault === "429") {
        res.setHeader("Retry-After", this.retryAfter);
        return this.answer(res, 429, "Too Many Requests");
      }
      if (fault === "400") return this.answer(res, 400, `Bad request: invalid args ${echo}\nat line 1`);
      if (fault === "sql") return this.answer(res, 400, "SqlErr: error returned from database: pool timed out");
      if (fault === "401") return this.answer(res, 401, "Not authorized: Unauthorized");
      if (fault === "403") return this.answer(res, 403, "Permission denied: Access denied. Required scope: jobs:run");
      if (fault === "login-page") return this.answer(res, 200, "<html>Sign in</html>");
      if (fault === "redirect") {
        res.setHeader("Location", `http://127.0.0.1:1${PATH}`);
        return this.answer(res, 302, "");
      }
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        return this.answer(res, 401, "Not authorized: Unauthorized");
      }
      if (url.pathname !== PATH || req.method !== "POST") return this.answer(res, 404, "Not found");
      const id = url.searchParams.get("job_id") ?? crypto.randomUUID();
      if (!UUID.test(id)) return this.answer(res, 400, "Bad request: job_id is not a uuid");
      if (this.jobs.has(id)) return this.answer(res, 400, `Bad request: Job with id ${id} already exists`);
      this.jobs.set(id, { id, body, query: url.searchParams });
      if (fault === "lose-answer") return void req.socket.destroy(); // queued, answer lost
      if (fault === "race") {
        // Two pushes of one id at once: the loser hits the table's key.
        return this.answer(res, 400, 'SqlErr: error returned from database: duplicate key value violates unique constraint "v2_job_pkey"');
      }
      this.answer(res, 201, id);
    });
  }

  private answer(res: ServerResponse, status: number, text: string): void {
    res.writeHead(status, { "Content-Type": "text/plain" });
    res.end(text);
  }
}

const jobOf = (eventId: string) => deliveryJobId("acme", SCRIPT, eventId);

const windmill = new WindmillStandIn();
let url = "";
let logs: string[] = [];
const options = () => ({ url, token: TOKEN, log: (line: string) => logs.push(line), timeoutMs: 300 });
const signup = () =>
  userRegistered({ email: "jane@acme.com", name: "Jane Doe", plan: "pro", source: "ads", marketingConsent: true });

before(async () => {
  url = await windmill.start();
});
after(() => windmill.stop());
beforeEach(() => {
  windmill.jobs.clear();
  windmill.faults = [];
  windmill.requests = 0;
  windmill.retryAfter = "0";
  logs = [];
});

describe("sendUserEvent", () => {
  it("queues one job named by the event's id, with raw=true and the exact body", async () => {
    const event = signup();
    const delivery = await sendUserEvent(event, options());
    assert.equal(delivery.delivered, true);
    assert.match(delivery.eventId, UUID);
    assert.equal(delivery.jobId, await jobOf(delivery.eventId));
    const job = windmill.jobs.get(delivery.jobId ?? "");
    assert.ok(job, "Windmill queued the job under the id derived from the event's");
    assert.equal(job.query.get("raw"), "true");
    assert.equal(job.query.get("token_hint"), "kept", "the URL's own query is kept");
    assert.deepEqual(JSON.parse(job.body), event);
    assert.deepEqual(logs, []);
  });

  it("builds each body with its event name and a timestamp with a time zone", () => {
    assert.equal(userUpgraded({ email: "a@b.co", previousPlan: "free", newPlan: "pro" }).event, "user.upgraded");
    const churn = userChurned({ email: "a@b.co", reason: null, timestamp: "2026-12-01T10:00:00Z" });
    assert.deepEqual(churn, { event: "user.churned", email: "a@b.co", reason: null, timestamp: "2026-12-01T10:00:00Z" });
    assert.match(signup().timestamp, /Z$/);
  });

  it("derives the job id as f/marketing/lib/delivery_job.py does", async () => {
    // The same example is pinned in tests/test_emitter.py: both emitters agree.
    const eventId = "0f8e4a52-7c1d-4b3e-9a61-2b8e51c0d7a4";
    assert.equal(await jobOf(eventId), "10c2ac3c-20c3-5b3a-bee5-caff66c12fb4");
    assert.notEqual(await deliveryJobId("staging", SCRIPT, eventId), await jobOf(eventId));
  });

  it("retries a transient failure under the same job id, and queues once", async () => {
    const transient: Fault[][] = [["500", "reset", "hang"], ["408", "502"], ["504", "503"], ["sql"], ["401"]];
    for (const faults of transient) {
      windmill.jobs.clear();
      windmill.requests = 0;
      windmill.faults = [...faults];
      const delivery = await sendUserEvent(signup(), options());
      assert.equal(delivery.delivered, true, faults.join(","));
      assert.equal(windmill.requests, faults.length + 1, faults.join(","));
      assert.deepEqual([...windmill.jobs.keys()], [await jobOf(delivery.eventId)]);
    }
  });

  it("takes 'already exists' or a raced duplicate key as delivered, not as a second job", async () => {
    for (const fault of ["lose-answer", "race"] as const) {
      windmill.jobs.clear();
      windmill.requests = 0;
      windmill.faults = [fault];
      const delivery = await sendUserEvent(signup(), options());
      assert.equal(delivery.delivered, true, fault);
      assert.equal(delivery.alreadyQueued, true, fault);
      assert.equal(windmill.requests, fault === "race" ? 1 : 2);
      assert.equal(windmill.jobs.size, 1);
    }
  });

  it("sends an outbox row's id as the event id, so a second sender queues nothing", async () => {
    const eventId = crypto.randomUUID();
    const first = await sendUserEvent(signup(), { ...options(), eventId });
    const again = await sendUserEvent(signup(), { ...options(), eventId });
    assert.deepEqual([first.delivered, again.delivered, again.alreadyQueued], [true, true, true]);
    assert.deepEqual([...windmill.jobs.keys()], [await jobOf(eventId)]);
  });

  it("counts only a 201 naming the job: a login page or a redirect is not a delivery", async () => {
    windmill.faults = ["login-page", "login-page", "login-page", "login-page"];
    const page = await sendUserEvent(signup(), options());
    assert.deepEqual([page.delivered, page.reason], [false, "HTTP 200 that is not a queued job (after 4 attempts)"]);
    windmill.requests = 0;
    windmill.faults = ["redirect"];
    const moved = await sendUserEvent(signup(), options());
    assert.deepEqual([moved.delivered, moved.reason], [false, "HTTP 302: Found"]);
    assert.equal(windmill.requests, 1, "the redirect was not followed");
    assert.equal(windmill.jobs.size, 0);
  });

  it("waits as long as Retry-After says on a 429", async () => {
    windmill.faults = ["429"];
    windmill.retryAfter = "1";
    const started = Date.now();
    const delivery = await sendUserEvent(signup(), options());
    assert.equal(delivery.delivered, true);
    assert.ok(Date.now() - started >= 950, "waited for Retry-After");
  });

  it("gives up when Retry-After goes past its budget, without waiting", async () => {
    windmill.faults = ["429"];
    windmill.retryAfter = "60";
    const started = Date.now();
    const delivery = await sendUserEvent(signup(), { ...options(), budgetMs: 2000 });
    assert.equal(delivery.delivered, false);
    assert.match(delivery.reason ?? "", /HTTP 429.*no time left/);
    assert.ok(Date.now() - started < 1000);
    assert.equal(windmill.jobs.size, 0);
  });

  it("does not retry a refusal (a 401 once) and reports the first line of Windmill's message", async () => {
    const delivery = await sendUserEvent(signup(), { ...options(), token: "wrong-token" });
    assert.equal(delivery.delivered, false);
    assert.equal(delivery.reason, "HTTP 401: Not authorized: Unauthorized");
    assert.equal(windmill.requests, 2, "a 401 is tried once more");
    const refusals: [Fault, string][] = [
      ["400", "HTTP 400: Bad request: invalid args Bearer *** {\"event\":\"user.registered\",\"email\":\"***\","],
      ["403", "HTTP 403: Permission denied: Access denied. Required scope: jobs:run"],
      ["501", "HTTP 501: Internal: Bearer *** {\"event\":\"user.registered\",\"email\":\"***\","],
    ];
    for (const [fault, reason] of refusals) {
      windmill.requests = 0;
      windmill.faults = [fault];
      const refused = await sendUserEvent(signup(), options());
      assert.ok(refused.reason?.startsWith(reason), `${fault}: ${refused.reason}`);
      assert.equal(windmill.requests, 1, fault);
    }
  });

  it("stops after its attempts and never throws when Windmill is down", async () => {
    const down = new WindmillStandIn();
    const downUrl = await down.start();
    await down.stop();
    const delivery = await sendUserEvent(signup(), { ...options(), url: downUrl, attempts: 3 });
    assert.equal(delivery.delivered, false);
    assert.match(delivery.reason ?? "", /connection failed \(ECONNREFUSED\) \(after 3 attempts\)/);
  });

  it("never logs the token, the URL or the email, whatever their case in Windmill's echo", async () => {
    windmill.faults = ["500", "500", "500", "500"];
    await sendUserEvent(signup(), options());
    await sendUserEvent(signup(), { ...options(), token: "wrong-token" });
    windmill.faults = ["400"];
    await sendUserEvent({ ...signup(), email: "Jane@Acme.com" }, { ...options(), token: TOKEN.toUpperCase() });
    assert.equal(logs.length, 3);
    for (const line of logs) {
      for (const secret of [TOKEN, "wrong-token", "jane@acme.com", "127.0.0.1", "token_hint"]) {
        assert.ok(!line.toLowerCase().includes(secret), `a log line holds ${secret}: ${line}`);
      }
    }
  });

  it("sends nothing and warns once when it is not configured", async () => {
    const saved = [process.env.WINDMILL_WEBHOOK_URL, process.env.WINDMILL_API_TOKEN];
    delete process.env.WINDMILL_WEBHOOK_URL;
    delete process.env.WINDMILL_API_TOKEN;
    try {
      const log = (line: string) => logs.push(line);
      const first = await sendUserEvent(signup(), { log });
      await sendUserEvent(signup(), { log });
      assert.deepEqual([first.delivered, first.reason], [false, "not configured"]);
      assert.equal(logs.length, 1);
      assert.equal(windmill.requests, 0);
    } finally {
      if (saved[0] !== undefined) process.env.WINDMILL_WEBHOOK_URL = saved[0];
      if (saved[1] !== undefined) process.env.WINDMILL_API_TOKEN = saved[1];
    }
  });

  it("refuses an event id that is not a random or time-ordered UUID, before any call", async () => {
    const ids = ["row-42", "00000000-0000-0000-0000-000000000000", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"];
    for (const eventId of ids) {
      const delivery = await sendUserEvent(signup(), { ...options(), eventId });
      assert.equal(delivery.delivered, false);
      assert.match(delivery.reason ?? "", /eventId must be a random \(v4\) or time-ordered \(v7\) UUID/);
    }
    const v7 = "0190e7f2-3c4d-7a1b-9c2d-3e4f5a6b7c8d";
    assert.equal((await sendUserEvent(signup(), { ...options(), eventId: v7 })).delivered, true);
    assert.equal(windmill.requests, 1);
  });

  it("refuses a URL that is not a script's webhook, before any call", async () => {
    const sync = url.replace("/jobs/run/p/", "/jobs/run_wait_result/p/");
    const delivery = await sendUserEvent(signup(), { ...options(), url: sync });
    assert.match(delivery.reason ?? "", /not a webhook URL/);
    assert.equal(windmill.requests, 0);
  });
});
