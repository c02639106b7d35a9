// The TypeScript emitter against a Windmill stand-in on 127.0.0.1: what Windmill's
// `POST /api/w/{ws}/jobs/run/p/{path}` does with a caller-chosen job_id (a second push of an id
// it has → 400 "Job with id … already exists"; windmill-queue jobs.rs `push`), its Bearer auth
// (401), and faults injected per request. Assertions are on the jobs the stand-in queued.

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";

import { sendUserEvent, userChurned, userRegistered, userUpgraded } from "../../f/marketing/emitter/ts/emitter.js";

const TOKEN = "wm-secret-token";
const PATH = "/api/w/acme/jobs/run/p/f/marketing/handle_user_event";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Fault = "500" | "503" | "429" | "hang" | "reset" | "lose-answer" | "401" | "400";

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
      const fault = this.faults.shift();
      if (fault === "hang") return; // never answers: the caller's timeout ends it
      if (fault === "reset") return void req.socket.destroy();
      if (fault === "500" || fault === "503") return this.answer(res, Number(fault), "Internal error");
      if (fault === "429") {
        res.setHeader("Retry-After", this.retryAfter);
        return this.answer(res, 429, "Too Many Requests");
      }
      if (fault === "400") return this.answer(res, 400, "Bad request: invalid args");
      if (fault === "401" || req.headers.authorization !== `Bearer ${TOKEN}`) {
        return this.answer(res, 401, "Unauthorized");
      }
      if (url.pathname !== PATH || req.method !== "POST") return this.answer(res, 404, "Not found");
      const id = url.searchParams.get("job_id") ?? crypto.randomUUID();
      if (!UUID.test(id)) return this.answer(res, 400, "Bad request: job_id is not a uuid");
      if (this.jobs.has(id)) return this.answer(res, 400, `Bad request: Job with id ${id} already exists`);
      this.jobs.set(id, { id, body: Buffer.concat(chunks).toString("utf8"), query: url.searchParams });
      if (fault === "lose-answer") return void req.socket.destroy(); // queued, answer lost
      this.answer(res, 201, id);
    });
  }

  private answer(res: ServerResponse, status: number, text: string): void {
    res.writeHead(status, { "Content-Type": "text/plain" });
    res.end(text);
  }
}

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
    assert.equal(delivery.jobId, delivery.eventId);
    const job = windmill.jobs.get(delivery.eventId);
    assert.ok(job, "Windmill queued the job under the event's id");
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

  it("retries a 5xx, a reset and a timeout under the same job id, and queues once", async () => {
    windmill.faults = ["500", "reset", "hang"];
    const delivery = await sendUserEvent(signup(), options());
    assert.equal(delivery.delivered, true);
    assert.equal(windmill.requests, 4);
    assert.deepEqual([...windmill.jobs.keys()], [delivery.eventId]);
  });

  it("takes Windmill's 'already exists' after a lost answer as delivered, not as a second job", async () => {
    windmill.faults = ["lose-answer"];
    const delivery = await sendUserEvent(signup(), options());
    assert.equal(delivery.delivered, true);
    assert.equal(windmill.requests, 2);
    assert.equal(windmill.jobs.size, 1);
  });

  it("sends an outbox row's id as the job id, so a second sender queues nothing", async () => {
    const eventId = crypto.randomUUID();
    const first = await sendUserEvent(signup(), { ...options(), eventId });
    const again = await sendUserEvent(signup(), { ...options(), eventId });
    assert.deepEqual([first.delivered, again.delivered], [true, true]);
    assert.deepEqual([...windmill.jobs.keys()], [eventId]);
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

  it("does not retry a refusal and reports Windmill's own message", async () => {
    const delivery = await sendUserEvent(signup(), { ...options(), token: "wrong-token" });
    assert.equal(delivery.delivered, false);
    assert.equal(delivery.reason, "HTTP 401: Unauthorized");
    assert.equal(windmill.requests, 1);
    windmill.faults = ["400"];
    assert.equal((await sendUserEvent(signup(), options())).reason, "HTTP 400: Bad request: invalid args");
    assert.equal(windmill.requests, 2);
  });

  it("stops after its attempts and never throws when Windmill is down", async () => {
    const down = new WindmillStandIn();
    const downUrl = await down.start();
    await down.stop();
    const delivery = await sendUserEvent(signup(), { ...options(), url: downUrl, attempts: 3 });
    assert.equal(delivery.delivered, false);
    assert.match(delivery.reason ?? "", /connection failed \(ECONNREFUSED\) \(after 3 attempts\)/);
  });

  it("never logs the token, the URL or the email", async () => {
    windmill.faults = ["500", "500", "500", "500"];
    await sendUserEvent(signup(), options());
    await sendUserEvent(signup(), { ...options(), token: "wrong-token" });
    assert.equal(logs.length, 2);
    for (const line of logs) {
      for (const secret of [TOKEN, "wrong-token", "jane@acme.com", "127.0.0.1", "token_hint"]) {
        assert.ok(!line.includes(secret), `a log line holds ${secret}: ${line}`);
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

  it("refuses an event id Windmill would not take as a job id, before any call", async () => {
    const delivery = await sendUserEvent(signup(), { ...options(), eventId: "row-42" });
    assert.equal(delivery.delivered, false);
    assert.match(delivery.reason ?? "", /eventId must be a UUID/);
    assert.equal(windmill.requests, 0);
  });
});
