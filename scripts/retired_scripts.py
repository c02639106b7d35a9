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
  was queued with; windmill-worker loader.py: an import of `f.<folder>.<name>` fetches
  `scripts/raw/p/f/<folder>/<name>.py`, whose handler (windmill-api-scripts scripts.rs
  `raw_script_by_path`) serves the newest version that is not archived;
- windmill-api jobs.rs `list_queue_jobs` (query built in windmill-api-jobs query.rs):
  `jobs/queue/list` lists queued, scheduled and running jobs, newest first
  (`script_path_start` a prefix, `per_page` uncapped), each with `script_hash` as 16 hex
  digits; a webhook delivery through a preprocessor is kind `script`;
- windmill-api-scripts scripts.rs: `scripts/get/p` is the newest version, archived or not
  (`lock` absent until resolved), `scripts/get/h` one version, `scripts/archive/p` archives
  every version of a path (folder owners and admins only).
"""

import ast
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from deploy_api import PAGE, DeployApi

# A new version runs once its lock is resolved (seconds, usually), and Windmill caches which
# version a path runs for 60 s (DEPLOYED_SCRIPT_HASH_CACHE): one younger than this may not be
# the version new jobs get yet.
SETTLE = timedelta(minutes=10)


@dataclass(frozen=True)
class Waiting:
    """Who still imports a retired path: queued jobs (their version's code does, or they run
    a retired script), entry scripts whose running version does, entry scripts whose newest
    version may not be the one that runs yet (its lock resolves, or it is minutes old), and
    entry scripts whose newest version failed to lock (the one before it keeps running)."""

    queued: int = 0
    last_due: str | None = None
    running: int = 0
    settling: int = 0
    failed: tuple[str, ...] = ()
    unread: bool = False  # more queued jobs than one page: counted as importers, unread

    def __bool__(self) -> bool:
        return bool(self.queued or self.running or self.settling or self.failed)

    def describe(self) -> str:
        parts = []
        if self.queued:
            many = "at least " if self.unread else ""
            due = f", the last due {self.last_due}" if self.last_due else ""
            parts.append(f"{many}{self.queued} queued job(s) import them{due}")
        if self.running:
            parts.append(f"{self.running} script(s) run a version that imports them")
        if self.settling:
            parts.append(f"{self.settling} script(s) have a version too new to run for sure")
        if self.failed:
            parts.append(f"{len(self.failed)} script(s) run the version before a failed lock")
        return " and ".join(parts)


class Importers:
    """Which jobs and versions of a workspace import the `retired` paths."""

    def __init__(self, api: DeployApi, retired: Iterable[str]) -> None:
        self._api = api
        self._gone = set(retired)
        self._by_hash: dict[str, bool] = {}

    def of_entries(self, entries: Iterable[str], now: datetime | None = None) -> Waiting:
        """Read before a push: the versions found running are those webhooks keep running
        until the pushed ones have their locks."""
        now = now or datetime.now(UTC)
        running = settling = 0
        failed = []
        for path in entries:
            script = self._api.newest_version(path)
            if script is None:
                continue  # new here: nothing runs it yet
            if script.get("lock_error_logs"):
                failed.append(path)
            elif script.get("lock") is None or _age(script, now) < SETTLE:
                settling += 1
            elif self._imports(str(script["hash"])):
                running += 1
        return Waiting(running=running, settling=settling, failed=tuple(failed))

    def of_queue(self, path_start: str) -> Waiting:
        jobs = self._api.queued_jobs(path_start)
        needing = [
            job
            for job in jobs
            if len(jobs) >= PAGE
            or job.get("script_path") in self._gone
            or (job.get("script_hash") and self._imports(str(job["script_hash"])))
        ]
        due = [str(job["scheduled_for"]) for job in needing if job.get("scheduled_for")]
        return Waiting(len(needing), max(due) if due else None, unread=len(jobs) >= PAGE)

    def _imports(self, script_hash: str) -> bool:
        if script_hash not in self._by_hash:
            version = self._api.version(script_hash)
            paths = None
            if version is not None:
                paths = imported_paths(str(version["path"]), str(version["content"]))
            # A version Windmill no longer has, or cannot be read: it may import them.
            self._by_hash[script_hash] = paths is None or bool(paths & self._gone)
        return self._by_hash[script_hash]


def what_waits(
    api: DeployApi, path_start: str, retired: Iterable[str], entries: Iterable[str]
) -> tuple[Importers, Waiting]:
    """Everything that keeps the `retired` scripts, read before the push."""
    importers = Importers(api, retired)
    running = importers.of_entries(entries)
    queued = importers.of_queue(path_start)
    return importers, replace(
        queued, running=running.running, settling=running.settling, failed=running.failed
    )


def imported_paths(script_path: str, code: str) -> set[str] | None:
    """The workspace paths a script's code may import, anywhere in it: the worker's loader
    fetches any module `f.<folder>.<name>...` from f/<folder>/<name>... when it is imported
    (windmill-worker loader.py WindmillFinder), and a relative one from the script's folder.
    `from f.a import b` may import f/a/b, so both are listed. None for code that does not
    parse: what it imports is unknown."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    package = script_path.split("/")[:-1]
    paths = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            paths |= {alias.name.replace(".", "/") for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (node.module or "").split(".") if node.module else []
            if node.level:
                base = package[: len(package) - node.level + 1] + base
            paths.add("/".join(base))
            paths |= {"/".join([*base, alias.name]) for alias in node.names}
    return paths


def _age(script: dict[str, Any], now: datetime) -> timedelta:
    created = datetime.fromisoformat(str(script["created_at"]).replace("Z", "+00:00"))
    return now - created
