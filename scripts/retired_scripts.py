"""Scripts a deploy no longer ships (a module renamed or moved), and when they may go.

A queued job runs the script version it was queued with, and imports modules by path, from
the workspace, when it starts; a webhook delivery runs the newest version whose lock is
resolved. So after a deploy, later attempts queued by an earlier version (up to ~45 h ahead),
and webhooks until the new versions have their locks, run code that imports the old paths.
`wmill sync push` archives what the repository lost before it creates the rest, and an
archived module cannot be imported. scripts/deploy therefore pushes with `--keep-deleted`,
and archives a retired path here once nothing can still import it.

Windmill (windmill-labs/windmill), as read for this:
- windmill-common lib.rs `get_latest_script_hash`: a path runs its newest version with
  `lock IS NOT NULL AND lock_error_logs IS NULL`, cached 60 s (DEPLOYED_SCRIPT_HASH_CACHE);
- windmill-queue jobs.rs `push`, windmill-worker: a job runs the version (`runnable_id`) it
  was queued with; windmill-api-scripts scripts.rs `raw_script_by_path`: an import gets the
  newest version that is not archived;
- windmill-api-jobs query.rs `list_queue_jobs`: `jobs/queue/list` lists queued, scheduled and
  running jobs (`script_path_start` a prefix, `per_page` uncapped), each with `script_hash`
  as 16 hex digits; `scripts/get/p` is the newest version (`lock` absent until resolved),
  `scripts/get/h` one version; `scripts/archive/p` archives every version of a path.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from f.marketing.lib.service_http import DEFAULT_POLICY, ServiceClient, ServiceHttp, plain_error

PAGE = 1000
# A new version runs once its lock is resolved (seconds, usually), and Windmill caches which
# version a path runs for 60 s (DEPLOYED_SCRIPT_HASH_CACHE): one younger than this may not be
# the version new jobs get yet.
SETTLE = timedelta(minutes=10)


@dataclass(frozen=True)
class Target:
    """Where the API calls go, with whose token."""

    base_url: str
    workspace: str
    token: str


class LockFailed(Exception):
    """A new version whose dependencies Windmill could not resolve: it never runs, and the
    version before it (which may import a retired path) keeps running instead."""


@dataclass(frozen=True)
class Waiting:
    """Who still imports a retired path: queued jobs (their version's code does, or they run
    a retired script), entry scripts whose running version does, and entry scripts whose
    newest version may not be the one that runs yet (its lock resolves, or it is minutes old)."""

    queued: int
    last_due: str | None
    running: int
    settling: int

    def __bool__(self) -> bool:
        return bool(self.queued or self.running or self.settling)

    def describe(self) -> str:
        parts = []
        if self.queued:
            due = f", the last due {self.last_due}" if self.last_due else ""
            parts.append(f"{self.queued} queued job(s) import them{due}")
        if self.running:
            parts.append(f"{self.running} script(s) run a version that imports them")
        if self.settling:
            parts.append(f"{self.settling} script(s) have a version too new to run for sure")
        return " and ".join(parts)


class DeployApi(ServiceClient):
    """The calls scripts/deploy makes besides the CLI's, as the deploying user."""

    SERVICE = "Windmill"
    read_error = staticmethod(lambda response: plain_error(response).splitlines()[0][:200])

    def __init__(self, http: ServiceHttp, workspace: str) -> None:
        super().__init__(http)
        self._workspace = f"/w/{workspace}"

    @classmethod
    def connect(cls, target: Target) -> Self:
        base = f"{target.base_url.rstrip('/')}/api"
        return cls(cls._connect(base, DEFAULT_POLICY, {}, token=target.token), target.workspace)

    def queued_jobs(self, path_start: str) -> list[dict[str, Any]]:
        """Script jobs queued, scheduled for later or running, under `path_start`."""
        jobs: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self.http.request(
                "GET",
                f"{self._workspace}/jobs/queue/list",
                action="list queued jobs",
                params={
                    "script_path_start": path_start,
                    "job_kinds": "script",
                    "page": page,
                    "per_page": PAGE,
                },
                read=lambda response: list(response.json()),
            )
            jobs += batch
            if len(batch) < PAGE:
                return jobs
            page += 1

    def newest_version(self, path: str) -> dict[str, Any] | None:
        """The newest version of the script at `path` (`lock` is absent until resolved);
        None when the path has none."""
        return self.http.request(
            "GET",
            f"{self._workspace}/scripts/get/p/{path}",
            action=f"read script {path}",
            ok_statuses=(404,),
            read=lambda response: None if response.status_code == 404 else dict(response.json()),
        )

    def version(self, script_hash: str) -> dict[str, Any]:
        """One version of a script, by its hash (`path`, `content`, ...)."""
        return self.http.request(
            "GET",
            f"{self._workspace}/scripts/get/h/{script_hash}",
            action="read a script version",
            read=lambda response: dict(response.json()),
        )

    def archive(self, path: str) -> None:
        """Archive every version at `path` (it must have one)."""
        self.http.request(
            "POST", f"{self._workspace}/scripts/archive/p/{path}", action=f"archive {path}"
        )


def what_waits(
    api: DeployApi,
    path_start: str,
    retired: Iterable[str],
    entries: Iterable[str],
    now: datetime | None = None,
) -> Waiting:
    """Why the `retired` scripts must stay. Read before a push: the versions it finds
    running are those webhooks keep running until the pushed ones have their locks."""
    now = now or datetime.now(UTC)
    gone = set(retired)
    importers: dict[str, bool] = {}

    def imports_retired(script_hash: str) -> bool:
        if script_hash not in importers:
            version = api.version(script_hash)
            importers[script_hash] = bool(
                imported_paths(str(version.get("path", "")), str(version.get("content", ""))) & gone
            )
        return importers[script_hash]

    running = settling = 0
    for path in entries:
        script = api.newest_version(path)
        if script is None:
            continue  # new here: nothing runs it yet
        if script.get("lock_error_logs"):
            raise LockFailed(
                f"Windmill could not resolve the dependencies of {path}'s newest version, so "
                "webhooks still run the one before; its lock job in Runs says why"
            )
        if script.get("lock") is None or _age(script, now) < SETTLE:
            settling += 1
        elif imports_retired(str(script["hash"])):
            running += 1
    needing = [
        job
        for job in api.queued_jobs(path_start)
        if job.get("script_path") in gone
        or (job.get("script_hash") and imports_retired(str(job["script_hash"])))
    ]
    due = [str(job["scheduled_for"]) for job in needing if job.get("scheduled_for")]
    return Waiting(len(needing), max(due) if due else None, running, settling)


IMPORT = re.compile(r"^\s*(?:from\s+(\.?[\w.]+)\s+import|import\s+([\w.]+))", re.MULTILINE)


def imported_paths(script_path: str, code: str) -> set[str]:
    """The workspace paths a script's code imports: `f.a.b` is f/a/b, `.b` is b next to the
    script (how the worker's loader maps them: windmill-parser-py-imports)."""
    folder = script_path.rsplit("/", 1)[0]
    paths = set()
    for absolute_or_relative, plain in IMPORT.findall(code):
        name = absolute_or_relative or plain
        if name.startswith("f."):
            paths.add(name.replace(".", "/"))
        elif name.startswith(".") and len(name) > 1:
            paths.add(f"{folder}/{name[1:].replace('.', '/')}")
    return paths


def _age(script: dict[str, Any], now: datetime) -> timedelta:
    created = datetime.fromisoformat(str(script["created_at"]).replace("Z", "+00:00"))
    return now - created
