"""A stateful stand-in for the part of Windmill's API a job uses: its workspace's resources
and jobs.

It answers as windmill-labs/windmill does (backend/windmill-api/src/resources.rs and
windmill-common error.rs): plain-text errors; 404 "Not found: Resource … not found" for a
missing path; 401 "Not authorized: …" for one the caller may not see; create answers 201, or
400 "Resource … already exists", or 400 from row-level security when the caller may not write
in the folder; update_value and delete answer 200 even when nothing changed. Jobs
(windmill-api jobs.rs): `jobs/run/p/{path}` answers 201 with the bare id and refuses an id
it has with 400 "… already exists"; `jobs/completed/list` filters by script, success (a
`success=false` list holds canceled jobs too) and creation time (both bounds inclusive), oldest
first with `order_desc=false`, and lists a job without its `result` and, unless
`include_args=true`, without its `args` (windmill-api-jobs types.rs `ListableCompletedJob`);
`jobs_u/get/{id}` has both, args over the size limit as `{"reason": "WINDMILL_TOO_BIG"}`, to
be read from `jobs_u/get_args/{id}`.

It also holds what a worker does to a job's arguments before any code runs (`rewrite_args`,
windmill-worker common.rs `transform_json`): `$var:`/`$res:` strings become the variable's or
resource's value, and in the same argument a string that is `$` and a reserved variable's name
(`$WM_TOKEN`) becomes its value; an unknown path fails the job.
"""

import copy
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.fakes.faults import Body, FakeService, Reject, json_response, read_body, text_response

Handler = Callable[..., httpx.Response]


class FakeWindmill(FakeService):
    """`resources` maps a path to {"value", "resource_type", "edited_at"}; `unreadable` and
    `read_only` hold paths the job's user may not read or not write; `folder_writable` says
    whether it may create resources in the folder."""

    def __init__(
        self,
        base_url: str = "https://windmill.test",
        workspace: str = "test",
        token: str = "wm-job-token",
    ) -> None:
        super().__init__(base_url)
        self.workspace = workspace
        self.token = token
        self.resources: dict[str, dict[str, Any]] = {}
        self.unreadable: set[str] = set()
        self.read_only: set[str] = set()
        self.folder_writable = True
        self.variables: dict[str, str] = {}  # path -> value (secret or not)
        # "all": newer servers hand a preprocessor every header and query parameter;
        # "include_header": older ones only the headers named in ?include_header=, renamed
        # lowercase with - as _ (windmill-api args.rs @005fbdf, build_headers).
        self.header_mode = "all"
        self.strict_time_bounds = False
        self.username = "deployer"
        self.is_admin = False
        prefix = rf"/api/w/{re.escape(workspace)}/resources"
        resources: list[tuple[str, str, Handler]] = [
            ("GET", "/get_value_interpolated/(?P<path>.+)", self.get_value),
            ("POST", "/create", self.create),
            ("POST", "/update_value/(?P<path>.+)", self.update_value),
            ("DELETE", "/delete/(?P<path>.+)", self.delete),
            ("GET", "/list", self.list_resources),
        ]
        self._routes = [
            ({method}, re.compile(prefix + pattern), handler)
            for method, pattern, handler in resources
        ]
        self.jobs: dict[str, dict[str, Any]] = {}  # every job created, by id
        # Scripts not deployed (run answers 404), and jobs whose rows the caller may not see:
        # `push` looks for an existing id under the caller's row level security, so a second
        # push of one of those fails on the table's key instead (jobs.rs `push`).
        self.missing_scripts: set[str] = set()
        self.invisible_jobs: set[str] = set()
        self.completed: list[dict[str, Any]] = []  # finished jobs, with args and result
        self.progress: dict[str, list[int]] = {}
        self.s3: dict[str, bytes] = {}  # the workspace's object storage, by file key
        self.clock = lambda: datetime.now(UTC)
        ws = rf"/api/w/{re.escape(workspace)}"
        jobs: list[tuple[str, str, Handler]] = [
            ("GET", "/users/whoami", self.whoami),
            ("POST", "/jobs/run/p/(?P<path>.+)", self.run_script),
            ("GET", "/jobs/completed/list", self.list_completed),
            ("GET", "/jobs_u/get/(?P<job_id>[^/]+)", self.get_job),
            ("GET", "/jobs_u/get_args/(?P<job_id>[^/]+)", self.get_args),
            ("POST", "/job_metrics/set_progress/(?P<job_id>[^/]+)", self.set_progress),
            ("GET", "/job_helpers/download_s3_file", self.download_s3_file),
        ]
        self._routes += [
            ({method}, re.compile(ws + pattern), handler) for method, pattern, handler in jobs
        ]

    # --- helpers for tests ----------------------------------------------------------------

    def value(self, path: str) -> Any:
        entry = self.resources.get(path)
        return None if entry is None else entry["value"]

    def put(self, path: str, value: Any, resource_type: str = "object") -> None:
        self.resources[path] = {
            "value": copy.deepcopy(value),
            "resource_type": resource_type,
            "edited_at": _now(),
        }

    def rewrite_args(self, args: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
        """The job's arguments as its code receives them (transform_json): only top-level
        arguments whose JSON text holds `$var:`, `$res:` or `$encrypted:` anywhere are walked,
        objects at every depth, arrays to depth 2; a string that starts with `$var:`/`$res:`
        becomes the value, another string starting with `$` the reserved variable of that
        name if there is one. A string is never looked inside (JSON text stays as it is)."""
        reserved = {
            "WM_TOKEN": self.token,
            "WM_WORKSPACE": self.workspace,
            "WM_JOB_ID": job["id"],
            "WM_EMAIL": f"{self.username}@example.test",
            "WM_USERNAME": self.username,
        }

        def walk(value: Any, name: str, depth: int) -> Any:
            if isinstance(value, str):
                if value.startswith("$var:"):
                    path = value.removeprefix("$var:")
                    if path not in self.variables:
                        raise ArgumentRewriteFailed(f"Variable {path} not found for `{name}`")
                    return self.variables[path]
                if value.startswith("$res:"):
                    path = value.removeprefix("$res:")
                    if path not in self.resources:
                        raise ArgumentRewriteFailed(f"Resource {path} not found for `{name}`")
                    return copy.deepcopy(self.resources[path]["value"])
                if value.startswith("$"):
                    return reserved.get(value[1:], value)
                return value
            if isinstance(value, dict):
                return {key: walk(item, key, depth + 1) for key, item in value.items()}
            if isinstance(value, list) and depth <= 2 and len(value) <= 1000:
                return [walk(item, name, depth + 1) for item in value]
            return value

        return {
            name: walk(value, name, 0) if REFERENCE.search(json.dumps(value)) else value
            for name, value in args.items()
        }

    def trigger_headers(self, headers: dict[str, str], query: dict[str, str]) -> dict[str, str]:
        """The headers a preprocessor's `event` holds, as this server version passes them."""
        lowered = {k.lower(): v for k, v in headers.items()}
        if self.header_mode == "all":
            return lowered
        named = [h.strip().lower() for h in query.get("include_header", "").split(",") if h]
        return {h.replace("-", "_"): lowered[h] for h in named if h in lowered}

    # --- plumbing -------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None = None) -> Body:
        kinds = {400: "Bad request", 401: "Not authorized", 404: "Not found"}
        message = message or httpx.codes.get_reason_phrase(status)
        if message.startswith("SqlErr: "):  # a database error is a kind of its own (a 400)
            return message
        return f"{kinds.get(status, 'Internal')}: {message}"

    def check_access(self, request: httpx.Request) -> httpx.Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self.error(401, self.error_body(401, "token not found"))
        return None

    # --- routes ---------------------------------------------------------------------------

    def get_value(self, request: httpx.Request, path: str) -> httpx.Response:
        if path not in self.resources:
            raise Reject(404, f"Resource {path} not found")
        if path in self.unreadable:
            raise Reject(401, "Resource exists but you don't have access to it")
        return json_response(200, copy.deepcopy(self.resources[path]["value"]))

    def create(self, request: httpx.Request) -> httpx.Response:
        """With `update_if_exists` an existing resource is overwritten, by `INSERT … ON
        CONFLICT DO UPDATE`: a user who may not write it gets the policy's error, where
        update_value would answer 200 having changed nothing."""
        body = read_body(request)
        path = body["path"]
        upsert = request.url.params.get("update_if_exists") == "true"
        if path in self.resources and not upsert:
            raise Reject(400, f"Resource {path} already exists")
        if not self.folder_writable or path in self.read_only:
            raise Reject(400, 'new row violates row-level security policy for table "resource"')
        self.put(path, body["value"], body.get("resource_type", "object"))
        return text_response(201, f"resource {path} created")

    def update_value(self, request: httpx.Request, path: str) -> httpx.Response:
        if path in self.resources and self.folder_writable and path not in self.read_only:
            self.resources[path]["value"] = copy.deepcopy(read_body(request)["value"])
            self.resources[path]["edited_at"] = _now()
        return text_response(200, f"value of resource {path} updated")

    def delete(self, request: httpx.Request, path: str) -> httpx.Response:
        if self.folder_writable and path not in self.read_only:
            self.resources.pop(path, None)
        return text_response(200, f"resource {path} deleted")

    def run_script(self, request: httpx.Request, path: str) -> httpx.Response:
        params = request.url.params
        job_id = params.get("job_id") or str(uuid.uuid4())
        try:
            uuid.UUID(job_id)  # RunJobQuery.job_id: Option<Uuid>
        except ValueError:
            raise Reject(400, f"Failed to deserialize query string: job_id: {job_id}") from None
        if path in self.missing_scripts:
            raise Reject(404, f"script not found at name {path} (lib.rs:2239)")
        if job_id in self.invisible_jobs:
            raise Reject(400, 'SqlErr: error returned from database: duplicate key value violates'
                              ' unique constraint "v2_job_pkey"')  # fmt: skip
        if job_id in self.jobs:
            raise Reject(400, f"Job with id {job_id} already exists")
        query = dict(params)
        self.jobs[job_id] = {
            "id": job_id,
            "script_path": path,
            "args": read_body(request),
            # For a script with a preprocessor: what its `event` is made of (args.rs).
            "trigger": {
                "raw": request.content.decode() if params.get("raw") == "true" else None,
                "headers": self.trigger_headers(dict(request.headers), query),
                "query": query if self.header_mode == "all" else {},
            },
            "scheduled_in_secs": int(params.get("scheduled_in_secs") or 0),
            "parent_job": params.get("parent_job"),
            "skip_preprocessor": params.get("skip_preprocessor") == "true",
            "created_at": self.clock().isoformat(),
            "state": "queued",
        }
        return text_response(201, job_id)

    def list_completed(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        wanted = params.get("success")
        jobs = [
            job
            for job in self.completed
            if job["script_path"] == params.get("script_path_exact", job["script_path"])
            # success=false: status failure OR canceled (query.rs, filter_list_completed_query)
            and (wanted is None or (wanted == "true") == (job["success"] and not job["canceled"]))
            and self._in_bounds(job["created_at"], params)
        ]
        jobs.sort(key=lambda job: job["created_at"], reverse=params.get("order_desc") != "false")
        page, per_page = int(params.get("page", 1)), int(params.get("per_page", 30))
        with_args = params.get("include_args") == "true"
        listed = [
            {
                **{k: v for k, v in job.items() if k not in {"result", "args"}},
                **({"args": job["args"]} if with_args else {}),
            }
            for job in jobs[(page - 1) * per_page : page * per_page]
        ]
        return json_response(200, listed)

    def _in_bounds(self, created: str, params: Any) -> bool:
        """Newer servers: both bounds inclusive. Older ones (`strict_time_bounds`): whole
        seconds, strictly after and before (completed_jobs.rs, to_timestamp)."""
        after, before = params.get("created_after"), params.get("created_before")
        if not self.strict_time_bounds:
            return (after is None or created >= after) and (before is None or created <= before)
        second = int(datetime.fromisoformat(created).timestamp())
        return (after is None or second > int(datetime.fromisoformat(after).timestamp())) and (
            before is None or second < int(datetime.fromisoformat(before).timestamp())
        )

    def get_job(self, request: httpx.Request, job_id: str) -> httpx.Response:
        """A queued job, or a finished one with its args and result (`type` tells which)."""
        done = next((j for j in self.completed if j["id"] == job_id), None)
        if done is not None:
            args = done["args"]
            if len(json.dumps(args)) >= TOO_BIG:
                args = {"reason": "WINDMILL_TOO_BIG"}
            return json_response(200, {**done, "args": args, "type": "CompletedJob"})
        job = self.jobs.get(job_id)
        if job is None:
            raise Reject(404, f"Job {job_id} not found")
        return json_response(200, {**job, "parent_job": job.get("parent_job"), "type": "QueuedJob"})

    def get_args(self, request: httpx.Request, job_id: str) -> httpx.Response:
        done = next((j for j in self.completed if j["id"] == job_id), None)
        if done is None:
            raise Reject(404, f"Job {job_id} not found")
        return json_response(200, done["args"])

    def set_progress(self, request: httpx.Request, job_id: str) -> httpx.Response:
        self.progress.setdefault(job_id, []).append(int(read_body(request)["percent"]))
        return text_response(200, "progress set")

    def download_s3_file(self, request: httpx.Request) -> httpx.Response:
        """job_helpers/download_s3_file: the object's bytes, streamed (wmill's S3 reader)."""
        key = request.url.params.get("file_key", "")
        if key not in self.s3:
            raise Reject(404, f"file {key} not found in the workspace storage")
        return httpx.Response(200, content=self.s3[key])

    def whoami(self, request: httpx.Request) -> httpx.Response:
        """UserInfo: `folders` holds the folders the user may write in."""
        me = {
            "username": self.username,
            "is_admin": self.is_admin,
            "groups": ["all"],
            "folders": ["marketing"] if self.folder_writable else [],
            "folders_read": ["marketing"],
        }
        return json_response(200, me)

    def list_resources(self, request: httpx.Request) -> httpx.Response:
        start = request.url.params.get("path_start", "")
        listed = [
            {
                "workspace_id": self.workspace,
                "path": path,
                "value": None,
                "resource_type": entry["resource_type"],
                "edited_at": entry["edited_at"],
            }
            for path, entry in sorted(self.resources.items())
            if path.startswith(start) and path not in self.unreadable
        ]
        return json_response(200, listed)


TOO_BIG = 90_000  # bytes of args a job read shows (jobs.rs: pg_column_size(args) < 90000)
REFERENCE = re.compile(r"\$(?:var|res|encrypted):")


class ArgumentRewriteFailed(Exception):
    """The worker could not resolve a `$var:`/`$res:` argument: the job fails before any code."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
