"""Thin client for the few Windmill API calls a job makes about its own workspace: resources,
and jobs (a later attempt of an event, the history of failed ones).

`wmill.get_resource(..., none_if_undefined=True)` and `wmill.get_state` answer None for every
failure, so a 401 or a 5xx looks like "no such resource" and a ledger read that failed looks
empty. This client tells them apart (windmill-labs/windmill: backend/windmill-api/src/
resources.rs, backend/windmill-common/src/error.rs):
- a missing resource is 404; one the job's user may not see is 401; errors are plain text;
- create answers 201, or 400 "Resource … already exists"; a create the user may not make in the
  folder fails on row-level security (400);
- update_value and delete answer 200 even when nothing changed (no row matched or allowed).
- `POST /jobs/run/p/{path}` takes a caller-chosen `job_id` and refuses one that exists with
  400; `scheduled_in_secs` delays the job without holding a worker. Without `parent_job` the
  job is a root job, whose failure reaches the workspace error handler (windmill-api jobs.rs,
  windmill-queue jobs.rs `push_error_handler`).
- `POST /job_metrics/set_progress/{id}` `{"percent"}` moves the job's progress bar;
  `GET /job_helpers/download_s3_file?file_key=` streams a file of the workspace's object
  storage (what wmill's set_progress and load_s3_file_reader call: python-client wmill
  client.py, s3_reader.py).
Nothing here needs the `wmill` package, which a Windmill worker does not install unless a
script imports it at top level (windmill-parser-py-imports): these are plain HTTP calls.
Local runs with WM_MOCKED_API_FILE are served from that file, in wmill's format.
"""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import httpx

from f.marketing.lib.delivery_job import ALREADY_QUEUED
from f.marketing.lib.errors import ConfigError, ServiceError
from f.marketing.lib.job_log import log
from f.marketing.lib.service_http import DEFAULT_POLICY, ServiceClient, ServiceHttp, plain_error

_job_id: ContextVar[str | None] = ContextVar("job_id", default=None)


def current_job_id() -> str:
    """This job's id (WM_JOB_ID), or the one a local runner set for the job it runs."""
    return _job_id.get() or os.environ.get("WM_JOB_ID", "")


@contextmanager
def running_job(job_id: str) -> Iterator[None]:
    """For a local runner that runs several jobs in one process (threads share os.environ)."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def read_error(response: httpx.Response) -> str:
    if response.status_code == 401:
        # The body lists the resource's and folder's permissions and the caller's identity.
        return "the job's user may not access it (Windmill: Not authorized)"
    return plain_error(response).splitlines()[0][:200]


class Workspace(Protocol):
    def get(self, path: str) -> Any | None: ...
    def create(self, path: str, value: Any, resource_type: str) -> bool: ...
    def update(self, path: str, value: Any) -> None: ...
    def upsert(self, path: str, value: Any, resource_type: str) -> None: ...
    def delete(self, path: str) -> None: ...
    def list_paths(self, path_start: str) -> list[dict[str, Any]]: ...
    def queue_job(
        self,
        path: str,
        args: dict[str, Any],
        *,
        delay: int,
        job_id: str,
        skip_preprocessor: bool = False,
    ) -> bool: ...
    def job_state(self, job_id: str) -> str | None: ...
    def show_progress(self, percent: int) -> None: ...
    def open_file(self, s3_object: dict[str, Any]) -> Any: ...
    def close(self) -> None: ...


class WindmillApi(ServiceClient):
    """Workspace of the job's workspace over Windmill's REST API, as the job's user."""

    SERVICE = "Windmill"
    read_error = staticmethod(read_error)

    def __init__(self, http: ServiceHttp, workspace: str) -> None:
        super().__init__(http)
        self._workspace = f"/w/{workspace}"
        self._prefix = f"{self._workspace}/resources"

    @classmethod
    def from_env(cls) -> "WindmillApi":
        base = os.environ.get("BASE_INTERNAL_URL") or os.environ.get("WM_BASE_URL") or ""
        token = os.environ.get("WM_TOKEN", "")
        http = cls._connect(f"{base.rstrip('/')}/api", DEFAULT_POLICY, {}, token=token)
        return cls(http, os.environ.get("WM_WORKSPACE", ""))

    def get(self, path: str) -> Any | None:
        """The value with `$var:`/`$res:` resolved; None when there is no resource there."""
        return self.http.request(
            "GET",
            f"{self._prefix}/get_value_interpolated/{path}",
            action=f"read resource {path}",
            ok_statuses=(404,),
            read=lambda response: None if response.status_code == 404 else response.json(),
        )

    def create(self, path: str, value: Any, resource_type: str) -> bool:
        """Create it; False when a resource is already there (nothing changed then)."""
        response: httpx.Response = self.http.request(
            "POST",
            f"{self._prefix}/create",
            action=f"create resource {path}",
            json={"path": path, "value": value, "resource_type": resource_type},
            ok_statuses=(400,),
        )
        if response.status_code == 400:
            if "already exists" in response.text:
                return False
            raise ServiceError(
                "Windmill",
                f"create resource {path}",
                read_error(response) + " (the job's user needs write access to the folder)",
                status=400,
            )
        return True

    def upsert(self, path: str, value: Any, resource_type: str) -> None:
        """Create or overwrite it in one call. Unlike update_value, which answers 200 having
        changed nothing for a user who may read but not write, a refusal is an error here:
        `INSERT … ON CONFLICT DO UPDATE` fails on the row-level security policy
        (windmill-api resources.rs create_resource, `update_if_exists`)."""
        response: httpx.Response = self.http.request(
            "POST",
            f"{self._prefix}/create",
            action=f"write resource {path}",
            params={"update_if_exists": "true"},
            json={"path": path, "value": value, "resource_type": resource_type},
            ok_statuses=(400,),
        )
        if response.status_code == 400:
            raise ServiceError(
                "Windmill",
                f"write resource {path}",
                read_error(response) + " (the job's user needs write access to the folder)",
                status=400,
            )

    def update(self, path: str, value: Any) -> None:
        self.http.request(
            "POST",
            f"{self._prefix}/update_value/{path}",
            action=f"update resource {path}",
            json={"value": value},
        )

    def delete(self, path: str) -> None:
        self.http.request("DELETE", f"{self._prefix}/delete/{path}", action=f"delete {path}")

    def list_paths(self, path_start: str) -> list[dict[str, Any]]:
        """Workspace whose path starts so (path, edited_at...; values are not listed)."""
        return self.http.request(
            "GET",
            f"{self._prefix}/list",
            action="list resources",
            params={"path_start": path_start, "per_page": 1000},
            read=lambda response: list(response.json()),
        )

    def may_write_folder(self, folder: str) -> tuple[str, bool]:
        """The job's user and whether it may write in the folder, read without writing
        (`whoami`: `folders` lists the folders its user may write in)."""

        def read(response: httpx.Response) -> tuple[str, bool]:
            me = response.json()
            return str(me["username"]), bool(me.get("is_admin")) or folder in (
                me.get("folders") or []
            )

        return self.http.request(
            "GET", f"{self._workspace}/users/whoami", action="read the job's user", read=read
        )

    def queue_job(
        self,
        path: str,
        args: dict[str, Any],
        *,
        delay: int,
        job_id: str,
        skip_preprocessor: bool = False,
    ) -> bool:
        """Queue a run of the script in `delay` seconds; False when a job with this id exists
        (queued earlier by this job or a re-run of it, whose answer may have been lost).

        A job made this way goes through the script's preprocessor, as a webhook call does,
        unless `skip_preprocessor` (windmill-api-jobs types.rs RunJobQuery)."""
        params: dict[str, Any] = {"job_id": job_id, "scheduled_in_secs": max(0, delay)}
        if skip_preprocessor:
            params["skip_preprocessor"] = "true"
        response: httpx.Response = self.http.request(
            "POST",
            f"{self._workspace}/jobs/run/p/{path}",
            action="queue the next attempt",
            params=params,
            json=args,
            ok_statuses=(400,),
        )
        if response.status_code == 400:
            if ALREADY_QUEUED.search(response.text):
                return False
            raise ServiceError(
                "Windmill", "queue the next attempt", read_error(response), status=400
            )
        return True

    def job_state(self, job_id: str) -> str | None:
        """ "queued" (or running), "completed", or None when Windmill has no job with this id
        (`jobs_u/get` answers a QueuedJob or a CompletedJob, 404 for none)."""

        def read(response: httpx.Response) -> str | None:
            if response.status_code == 404:
                return None
            job = response.json()
            done = job.get("type") == "CompletedJob" or "success" in job
            return "completed" if done else "queued"

        return self.http.request(
            "GET",
            f"{self._workspace}/jobs_u/get/{job_id}",
            action="look for a queued attempt",
            ok_statuses=(404,),
            read=read,
        )

    def failed_jobs(self, path: str, after: str, before: str) -> list[dict[str, Any]]:
        """Finished runs of the script created in [after, before] that did not succeed, oldest
        first: canceled ones too (`success=false` matches both). Listed jobs carry no result
        and no args (`include_args`, which Windmill Cloud refuses, is not asked for): read
        each with `read_job`. windmill-api-jobs types.rs ListableCompletedJob, query.rs."""
        jobs: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self.http.request(
                "GET",
                f"{self._workspace}/jobs/completed/list",
                action="list failed jobs",
                params={
                    "script_path_exact": path,
                    "success": "false",
                    "created_after": after,
                    "created_before": before,
                    "page": page,
                    "per_page": 100,
                    "order_desc": "false",
                },
                read=lambda response: list(response.json()),
            )
            jobs += batch
            if len(batch) < 100:
                return jobs
            page += 1

    def read_job(self, job_id: str) -> dict[str, Any]:
        """One job, queued, running or finished (`type` QueuedJob or CompletedJob), with its
        args as Windmill stores them (before any rewriting) and, once finished, its result
        (`jobs_u/get`); args too big to ship with the job (`{"reason": "WINDMILL_TOO_BIG"}`)
        are read on their own."""
        job = self.http.request(
            "GET",
            f"{self._workspace}/jobs_u/get/{job_id}",
            action="read a job",
            read=lambda response: dict(response.json()),
        )
        if job.get("args") == {"reason": "WINDMILL_TOO_BIG"}:
            job["args"] = self.http.request(
                "GET",
                f"{self._workspace}/jobs_u/get_args/{job_id}",
                action="read a job's arguments",
                read=lambda response: response.json(),
            )
        return job

    def show_progress(self, percent: int) -> None:
        """This job's progress bar (0-99): one call (wmill's set_progress makes two)."""
        self.http.request(
            "POST",
            f"{self._workspace}/job_metrics/set_progress/{current_job_id()}",
            action="show progress",
            json={"percent": percent},
        )

    @contextmanager
    def open_file(self, s3_object: dict[str, Any]) -> Iterator["_Chunks"]:
        """A file of the workspace's object storage, as a stream (`read(n)`)."""
        params = {"file_key": str(s3_object["s3"])}
        if s3_object.get("storage"):
            params["storage"] = str(s3_object["storage"])
        with self.http.stream(
            "GET",
            f"{self._workspace}/job_helpers/download_s3_file",
            action="read the file from the workspace's object storage",
            params=params,
        ) as response:
            yield _Chunks(response.iter_bytes())


class _Chunks:
    """`read(n)` over an iterator of byte chunks (a streamed download)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


class LocalWorkspace:
    """WM_MOCKED_API_FILE's resources (`{"resources": {path: value}, "variables": {...}}`, the
    file wmill reads in a local run); writes stay in this process."""

    def __init__(self) -> None:
        with open(os.environ["WM_MOCKED_API_FILE"], encoding="utf-8") as mocked:
            self._values: dict[str, Any] = dict(json.load(mocked).get("resources") or {})

    def get(self, path: str) -> Any | None:
        return self._values.get(path)

    def create(self, path: str, value: Any, resource_type: str) -> bool:
        if path in self._values:
            return False
        self._values[path] = value
        return True

    def update(self, path: str, value: Any) -> None:
        if path in self._values:
            self._values[path] = value

    def upsert(self, path: str, value: Any, resource_type: str) -> None:
        self._values[path] = value

    def delete(self, path: str) -> None:
        self._values.pop(path, None)

    def list_paths(self, path_start: str) -> list[dict[str, Any]]:
        return [{"path": p} for p in self._values if p.startswith(path_start)]

    def job_state(self, job_id: str) -> str | None:
        return None

    def read_job(self, job_id: str) -> dict[str, Any]:
        return {}  # a local run keeps no job history

    def queue_job(
        self,
        path: str,
        args: dict[str, Any],
        *,
        delay: int,
        job_id: str,
        skip_preprocessor: bool = False,
    ) -> bool:
        raise ConfigError("a local run has no Windmill queue to put a later attempt in")

    def show_progress(self, percent: int) -> None:
        pass

    def open_file(self, s3_object: dict[str, Any]) -> Any:
        raise ConfigError("a local run has no workspace object storage: give the file instead")

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalWorkspace":
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def job_workspace() -> WindmillApi | LocalWorkspace:
    """The job's workspace, or the mocked file of a local run."""
    if os.environ.get("WM_MOCKED_API_FILE"):
        return LocalWorkspace()
    return WindmillApi.from_env()


class Progress:
    """The job's progress bar in Windmill, moved every `step` percent or so (a call each). A
    failure to show it never fails the job."""

    def __init__(self, workspace: Workspace, total: int, step: int = 5) -> None:
        self.workspace, self.total, self.step = workspace, total, step
        self._shown = -step

    def show(self, done: int) -> None:
        percent = min(99, done * 100 // self.total) if self.total else 99
        if percent < self._shown + self.step:
            return
        self._shown = percent
        try:
            self.workspace.show_progress(percent)
        except ServiceError as exc:
            log.warning("progress not shown: %s", exc)
