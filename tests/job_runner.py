"""A local Windmill worker for the tests and the delivery benchmark: it runs the jobs queued in
the Windmill stand-in as a worker would, on a clock that jumps to the next due job.

- A job runs when its `scheduled_in_secs` is due, each in its own job context (its WM_JOB_ID).
- Jobs made through `jobs/run/p` get the script's `preprocessor` unless `skip_preprocessor`:
  their arguments are then one `event` (the body, `raw_string` with `?raw=true`, headers,
  query), and only a job that succeeds stores what the preprocessor returned in its place
  (the worker reads args.json back after the process exits 0: python_executor.rs).
- Before any code runs, the arguments are rewritten as a worker does (`$var:`, `$res:`,
  `$WM_TOKEN`...: FakeWindmill.rewrite_args); an unknown path fails the job.
- A job that raises is a failed job; a failed root job (no `parent_job`) goes to the workspace
  error handler, when one is set, with the arguments Windmill gives it.
"""

import importlib
import json
import threading
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from f.marketing.lib.windmill_api import running_job
from tests.conftest import RAW, main_args
from tests.fakes import FakeWindmill


class JobRunner:
    def __init__(
        self,
        windmill: FakeWindmill,
        *,
        error_handler: str | None = None,
        start: datetime | None = None,
        on_job: Callable[[dict], None] | None = None,
        advance: Callable[[float], None] | None = None,
    ) -> None:
        self.windmill = windmill
        self.error_handler = error_handler
        self.now = start or datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
        self.on_job = on_job
        self.advance = advance  # moves the stand-ins' clocks with the queue's
        self.results: dict[str, dict[str, Any]] = {}  # job id -> {"success", "result"|"error"}
        self._lock = threading.Lock()
        windmill.clock = lambda: self.now

    def webhook(
        self,
        path: str,
        body: Any,
        job_id: str | None = None,
        *,
        raw: Any = RAW,
        headers: dict | None = None,
        query: dict | None = None,
    ) -> str:
        """What a webhook call does: a job for now, with the body as its arguments; for a
        preprocessor, the exact body (`raw`: the body's JSON, as `?raw=true` passes it; None
        for a URL without it), the headers and the query, the token among them."""
        job_id = job_id or str(uuid.uuid4())
        raw = json.dumps(body) if raw is RAW else raw
        query = {**(query or {}), "token": "webhook-token"} | ({"raw": "true"} if raw else {})
        headers = {"Content-Type": "application/json", **(headers or {})}
        self.windmill.jobs[job_id] = {
            "id": job_id,
            "script_path": path,
            "args": body,
            "trigger": {
                "raw": raw,
                "headers": self.windmill.trigger_headers(headers, query),
                "query": query if self.windmill.header_mode == "all" else {},
            },
            "scheduled_in_secs": 0,
            "parent_job": None,
            "skip_preprocessor": False,
            "created_at": self.now.isoformat(),
            "state": "queued",
        }
        return job_id

    def scheduled(self, path: str, args: dict[str, Any]) -> str:
        """What a schedule does when it is due: a root job with the schedule's arguments
        (`$res:` references are rewritten when it runs), no trigger, no preprocessor."""
        job_id = str(uuid.uuid4())
        self.windmill.jobs[job_id] = {
            "id": job_id, "script_path": path, "args": args, "trigger": None,
            "scheduled_in_secs": 0, "parent_job": None, "skip_preprocessor": True,
            "created_at": self.now.isoformat(), "state": "queued",
        }  # fmt: skip
        return job_id

    def outcome(self, job_id: str) -> dict[str, Any]:
        """How a job ended; for a delivery that recorded its failure in a job of its own
        (f/marketing/lib/delivery_failures.py), how that job ended."""
        outcome = self.results[job_id]
        result = outcome.get("result")
        if outcome["success"] and isinstance(result, dict) and result.get("failure_job"):
            return self.results[result["failure_job"]]
        return outcome

    def due(self, job: dict) -> datetime:
        created = datetime.fromisoformat(job["created_at"])
        return created + timedelta(seconds=job["scheduled_in_secs"])

    def take(self) -> dict | None:
        """The next job to run, moving the clock to when it is due (one job per caller)."""
        with self._lock, self.windmill._lock:
            queued = [j for j in self.windmill.jobs.values() if j["state"] == "queued"]
            if not queued:
                return None
            job = min(queued, key=self.due)
            if self.due(job) > self.now:
                if self.advance:
                    self.advance((self.due(job) - self.now).total_seconds())
                self.now = self.due(job)
            job["state"] = "running"
            return job

    def take_due(self, now: datetime) -> dict | None:
        """The earliest job due by `now`, if any: for workers that run on a real clock."""
        with self._lock, self.windmill._lock:
            due = [
                j
                for j in self.windmill.jobs.values()
                if j["state"] == "queued" and self.due(j) <= now
            ]
            if not due:
                return None
            job = min(due, key=self.due)
            job["state"] = "running"
            return job

    def unfinished(self) -> int:
        with self.windmill._lock:
            return sum(j["state"] != "completed" for j in self.windmill.jobs.values())

    def run_all(self, limit: int = 10_000) -> int:
        ran = 0
        while ran < limit and (job := self.take()) is not None:
            self.run(job)
            ran += 1
        return ran

    def run(self, job: dict) -> None:
        module = importlib.import_module(job["script_path"].replace("/", "."))
        preprocess = not job["skip_preprocessor"] and hasattr(module, "preprocessor")
        if preprocess and not job.get("preprocessed"):
            job["preprocessed"] = False  # its arguments are the trigger event until it succeeds
            trigger = job.get("trigger") or {}
            job["args"] = {
                "event": {
                    "kind": "webhook",
                    "body": job["args"],
                    "raw_string": trigger.get("raw"),
                    "headers": trigger.get("headers") or {},
                    "query": trigger.get("query") or {},
                }
            }
        try:
            with running_job(job["id"]):
                args = self.windmill.rewrite_args(job["args"], job)
                if preprocess:
                    args = module.preprocessor(**args)
                result = module.main(**main_args(module.main, args))
            if preprocess:  # stored only once the job succeeded
                job["args"], job["preprocessed"] = args, True
            outcome = {"success": True, "result": result}
        except Exception as exc:  # a failed job, as Windmill records it
            error = {"name": type(exc).__name__, "message": str(exc),
                     "stack": traceback.format_exc(limit=3)}  # fmt: skip
            outcome = {"success": False, "result": {"error": error}}
        job["state"] = "completed"
        self.results[job["id"]] = outcome
        self.windmill.completed.append(
            {
                "id": job["id"],
                "script_path": job["script_path"],
                "args": job["args"],
                "created_at": job["created_at"],
                "success": outcome["success"],
                "canceled": False,
                "result": outcome["result"],
                "parent_job": job["parent_job"],
            }
        )
        if self.on_job:
            self.on_job(job)
        if not outcome["success"] and not job["parent_job"] and self.error_handler:
            handler = importlib.import_module(self.error_handler.replace("/", "."))
            handler.main(
                path=job["script_path"],
                job_id=job["id"],
                error=outcome["result"]["error"],
                workspace_id=self.windmill.workspace,
                is_flow=False,
                started_at=job["created_at"],
            )
