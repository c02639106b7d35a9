"""The Windmill API calls scripts/deploy makes itself, besides the CLI's: who the token is,
the queue and script versions (for retired scripts), and archiving.

Windmill (windmill-labs/windmill), as read for this:
- windmill-api users.rs `whoami` (`GET /w/{id}/users/whoami`): the token's user in that
  workspace; the workspaced routes refuse a token whose user is not in it;
- windmill-api workspaces.rs `exists_workspace` (`POST /workspaces/exists {"id"}`): a bool,
  read through the caller's row-level security.
"""

from dataclasses import dataclass
from typing import Any, Self

from f.marketing.lib.service_http import DEFAULT_POLICY, ServiceClient, ServiceHttp, plain_error

# One page of the queue; Windmill's default, which it does not cap (paginate_without_limits).
PAGE = 10000


@dataclass(frozen=True)
class Target:
    """Where the API calls go, with whose token."""

    base_url: str
    workspace: str
    token: str


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

    def whoami(self) -> dict[str, Any]:
        """The token's user in this workspace: the first call, so that a wrong workspace or
        token stops the deploy before anything is pushed."""
        return self.http.request(
            "GET",
            f"{self._workspace}/users/whoami",
            action="check the token",
            read=lambda response: dict(response.json()),
        )

    def workspace_exists(self) -> bool:
        """Whether the workspace id exists, as far as the token's user may see."""
        return self.http.request(
            "POST",
            "/workspaces/exists",
            action="look the workspace up",
            json={"id": self._workspace.removeprefix("/w/")},
            read=lambda response: response.json() is True,
        )

    def queued_jobs(self, path_start: str) -> list[dict[str, Any]]:
        """Script jobs queued, scheduled for later or running, under `path_start`: one page,
        newest first. Not paged on: a job leaving the queue between two pages would shift an
        older one past the next page's offset, and the oldest are the ones that matter."""
        return self.http.request(
            "GET",
            f"{self._workspace}/jobs/queue/list",
            action="list queued jobs",
            params={"script_path_start": path_start, "job_kinds": "script", "per_page": PAGE},
            read=lambda response: list(response.json()),
        )

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

    def version(self, script_hash: str) -> dict[str, Any] | None:
        """One version of a script, by its hash (`path`, `content`, ...); None if deleted."""
        return self.http.request(
            "GET",
            f"{self._workspace}/scripts/get/h/{script_hash}",
            action="read a script version",
            ok_statuses=(404,),
            read=lambda response: None if response.status_code == 404 else dict(response.json()),
        )

    def archive(self, path: str) -> None:
        """Archive every version at `path` (it must have one)."""
        self.http.request(
            "POST", f"{self._workspace}/scripts/archive/p/{path}", action=f"archive {path}"
        )
