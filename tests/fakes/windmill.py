"""A stateful stand-in for the part of Windmill's API a job uses: its workspace's resources.

It answers as windmill-labs/windmill does (backend/windmill-api/src/resources.rs and
windmill-common error.rs): plain-text errors; 404 "Not found: Resource … not found" for a
missing path; 401 "Not authorized: …" for one the caller may not see; create answers 201, or
400 "Resource … already exists", or 400 from row-level security when the caller may not write
in the folder; update_value and delete answer 200 even when nothing changed.
"""

import copy
import re
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.fakes.faults import Body, FakeService, Reject, json_response, read_body, text_response


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
        self.username = "deployer"
        self.is_admin = False
        prefix = rf"/api/w/{re.escape(workspace)}/resources"
        self._routes = [
            ({method}, re.compile(prefix + pattern), handler)
            for method, pattern, handler in [
                ("GET", "/get_value_interpolated/(?P<path>.+)", self.get_value),
                ("POST", "/create", self.create),
                ("POST", "/update_value/(?P<path>.+)", self.update_value),
                ("DELETE", "/delete/(?P<path>.+)", self.delete),
                ("GET", "/list", self.list_resources),
            ]
        ]
        self._routes.append(
            ({"GET"}, re.compile(rf"/api/w/{re.escape(workspace)}/users/whoami"), self.whoami)
        )

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

    # --- plumbing -------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None = None) -> Body:
        kinds = {400: "Bad request", 401: "Not authorized", 404: "Not found"}
        message = message or httpx.codes.get_reason_phrase(status)
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
        body = read_body(request)
        path = body["path"]
        if path in self.resources:
            raise Reject(400, f"Resource {path} already exists")
        if not self.folder_writable:
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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
