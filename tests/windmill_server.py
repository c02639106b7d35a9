"""A stand-in Windmill API on 127.0.0.1 for windmill-cli 1.819: what `sync push`, `resource
push`, `resource-type push` and their `get` commands call, as they call it (found by running
the CLI against a logging server), with the state they change.

The workspace it serves starts empty: its tarball lists nothing, so a push creates everything.
Scripts are versioned as Windmill versions them (windmill-api-scripts scripts.rs,
windmill-api-jobs query.rs, as read for scripts/retired_scripts.py): a create with an empty
lock makes a new version whose lock is absent until its `dependencies` job (in the queue)
resolves it; `get/p` answers the newest version; archiving archives every version of a path
and fails on a path with none.

Authentication is Windmill's (windmill-api lib.rs layers, windmill-api-auth auth.rs
`get_opt_job_authed`, windmill-common error.rs): no token is 401 `Unauthorized`; a token
that resolves to no user of the workspace in the URL (unknown, expired, scoped to another
workspace, or its user not a member, whether or not the workspace exists) is 401
`Not authorized: Unauthorized`; a global route refuses a workspace-scoped token alike.
`POST /workspaces/exists` answers for the whole instance (its table has no row security).
"""

import io
import itertools
import json
import re
import threading
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

VERSION = "v1.819.0"


@dataclass(frozen=True)
class Token:
    """Who holds a token: `role` in the served workspace (member, operator, reader: may read
    f/marketing but not write it, disabled, outsider: no user there, superadmin), the one
    workspace it is bound to (None: any), and its scopes (None: unscoped)."""

    role: str = "member"
    workspace: str | None = None
    scopes: tuple[str, ...] | None = None


# The scope a scoped token needs for the calls scripts/deploy makes itself
# (windmill-api-auth scopes.rs `check_route_access`: a write needs `<domain>:write`).
SCOPE_OF = {("GET", "/users/whoami"): "users:read", ("POST", "/workspaces/exists"):
            "workspaces:write"}  # fmt: skip


class WindmillServer:
    """`with WindmillServer() as wm:` serves on `wm.url`; `wm.requests` logs every call."""

    def __init__(self, workspace: str = "test", token: str = "deploy-token") -> None:
        self.workspace = workspace
        self.token = token
        # Every token the instance knows, and who holds it.
        self.tokens: dict[str, Token] = {token: Token()}
        self.folders: dict[str, dict] = {}
        self.scripts: dict[str, dict] = {}
        self.resource_types: dict[str, dict] = {}
        self.resources: dict[str, dict] = {}
        # What the workspace holds already, as its export lists it (path: file text), and the
        # scripts a push archived since.
        self.tree: dict[str, str] = {}
        self.archived: list[str] = []
        # Queued, scheduled and running jobs, as `jobs/queue/list` lists them.
        self.queue: list[dict[str, Any]] = []
        self.versions: dict[str, dict[str, Any]] = {}  # every version, by hash
        self._during_push: list[tuple[str, str]] = []
        self._hashes = itertools.count(0x1000)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "WindmillServer":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    def deployed(self, path: str, *, content: str = "", age: timedelta = timedelta(days=7)) -> str:
        """A script version already in the workspace, its lock resolved `age` ago; its hash."""
        return self._new_version(
            {"path": path, "content": content, "lock": "# resolved"}, datetime.now(UTC) - age
        )

    def resolve_locks(self) -> None:
        """Every `dependencies` job finishes: each pending version gets its lock."""
        for job in [j for j in self.queue if j["job_kind"] == "dependencies"]:
            self.queue.remove(job)
            self.versions[job["script_hash"]]["lock"] = "# resolved"

    def pass_time(self, delta: timedelta) -> None:
        """Every version and job was created `delta` earlier (the clock moves on)."""
        for item in [*self.versions.values(), *self.queue]:
            for key in ("created_at", "scheduled_for"):
                if key in item:
                    item[key] = _iso(_parse(item[key]) - delta)

    def queue_during_push(self, path: str, script_hash: str) -> None:
        """A webhook delivery that arrives while a push creates scripts (on the first create),
        on the version that runs until the new one has its lock."""
        self._during_push.append((path, script_hash))

    def queue_job(self, path: str, script_hash: str, *, due_in: timedelta = timedelta(0)) -> None:
        now = datetime.now(UTC)
        self.queue.append({
            "id": f"job-{len(self.queue)}", "job_kind": "script", "script_path": path,
            "script_hash": script_hash, "running": False, "created_at": _iso(now),
            "scheduled_for": _iso(now + due_in),
        })  # fmt: skip

    def _new_version(self, body: dict[str, Any], created: datetime) -> str:
        script_hash = f"{next(self._hashes):016x}"
        script = {
            "archived": False, "ws_error_handler_muted": False, **body, "hash": script_hash,
            "created_at": _iso(created), "lock_error_logs": None,
        }  # fmt: skip
        if not body.get("lock"):
            script.pop("lock", None)  # absent, not null, while it resolves
            self.queue.append({
                "id": f"dependencies-{script_hash}", "job_kind": "dependencies",
                "script_path": body["path"], "script_hash": script_hash, "running": False,
                "created_at": _iso(created), "scheduled_for": _iso(created),
            })  # fmt: skip
        parent = self.scripts.get(body["path"])
        if parent is not None:
            parent["archived"] = True  # the version it replaces (create_script_internal)
        self.scripts[body["path"]] = self.versions[script_hash] = script
        return script_hash

    # --- routes ---------------------------------------------------------------------------

    def _queue_list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """`script_path_start` is a prefix, `job_kinds` a comma list (none: every kind), the
        newest first; `per_page` is not capped (windmill-api-jobs query.rs)."""
        kinds = set(query["job_kinds"].split(",")) if "job_kinds" in query else None
        jobs = [
            job for job in sorted(self.queue, key=lambda j: j["created_at"], reverse=True)
            if str(job["script_path"]).startswith(query.get("script_path_start", ""))
            and (kinds is None or job["job_kind"] in kinds)
        ]  # fmt: skip
        per_page, page = int(query.get("per_page", 10000)), int(query.get("page", 1))
        return jobs[(page - 1) * per_page : page * per_page]

    def route(
        self, method: str, path: str, body: Any, query: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        query = query or {}
        if method == "GET" and path == "/api/version":
            return 200, VERSION
        if method == "GET" and path == "/api/users/whoami":
            return 200, {"email": "deployer@example.test", "username": "deployer"}
        if method == "POST" and path == "/api/workspaces/exists":  # `wmill workspace add`
            return 200, (body or {}).get("id") == self.workspace
        ws = re.fullmatch(rf"/api/w/{re.escape(self.workspace)}(?P<rest>/.*)", path)
        if ws is None:
            return 404, None
        rest = ws["rest"]
        fixed: dict[tuple[str, str], Any] = {
            ("GET", "/workspaces/list_ws_specific"): [],
            ("GET", "/resources/file_resource_type_to_file_ext_map"): {},
            ("GET", "/workspaces/tarball"): _zip(self.tree),
            ("GET", "/jobs/completed/list"): [],
        }
        if (method, rest) in fixed:
            return 200, fixed[(method, rest)]
        if method == "GET" and rest == "/jobs/queue/list":
            return 200, self._queue_list(query)
        archive = re.fullmatch(r"/scripts/archive/p/(?P<path>.+)", rest)
        if method == "POST" and archive:
            versions = [v for v in self.versions.values() if v["path"] == archive["path"]]
            if not versions:  # `UPDATE … RETURNING hash` with fetch_one
                return 500, f"Internal: archiving script in {self.workspace}: no rows returned"
            for version in versions:
                version["archived"] = True
            self.archived.append(archive["path"])
            return 200, ""
        by_hash = re.fullmatch(r"/scripts/get/h/(?P<hash>[0-9a-f]{16})", rest)
        if method == "GET" and by_hash:
            found = self.versions.get(by_hash["hash"])
            return (200, found) if found else (404, "Script not found")
        if method == "POST" and rest == "/scripts/create":
            while self._during_push:
                self.queue_job(*self._during_push.pop())
            return 201, self._new_version(body, datetime.now(UTC))
        for pattern, store, key in (
            (r"/folders/(?P<op>get|create|update)(?:/(?P<id>.+))?", self.folders, "name"),
            (r"/scripts/(?P<op>get/p)/(?P<id>.+)", self.scripts, "path"),
            (r"/resources/type/(?P<op>get|create|update)(?:/(?P<id>.+))?", self.resource_types,
             "name"),
            (r"/resources/(?P<op>get|create|update)(?:/(?P<id>.+))?", self.resources, "path"),
        ):  # fmt: skip
            match = re.fullmatch(pattern, rest)
            if match:
                return _crud(store, key, match["op"], match["id"], body)
        return 404, None

    def _refusal(self, method: str, path: str, authorization: str | None) -> tuple[int, str] | None:
        """How Windmill's auth layer refuses the request, or None."""
        if path == "/api/version":
            return None  # the CLI asks without a token
        if not authorization:
            return 401, "Unauthorized"
        token = self.tokens.get(authorization.removeprefix("Bearer "))
        unauthorized = 401, "Not authorized: Unauthorized"
        if token is None:
            return unauthorized
        workspaced = re.fullmatch(r"/api/w/(?P<ws>[^/]+)(?P<rest>/.*)", path)
        if workspaced is None:
            if token.workspace is not None:  # `workspace_id = NULL` matches no bound token
                return unauthorized
        elif token.workspace not in (None, workspaced["ws"]) or (
            token.role != "superadmin"
            and (workspaced["ws"] != self.workspace or token.role in {"outsider", "disabled"})
        ):
            return unauthorized
        if token.scopes is not None:
            route = (method, workspaced["rest"] if workspaced else path.removeprefix("/api"))
            needed = SCOPE_OF.get(route, "scripts:write")
            if needed not in token.scopes:
                return 403, f"Permission denied: Access denied. Required scope: {needed}"
        return None

    def whoami(self, token: Token, workspace: str) -> dict[str, Any]:
        """`UserInfo` as `users/whoami` answers it (windmill-api-users users.rs)."""
        member = token.role != "superadmin" or workspace == self.workspace
        folders = list(self.folders) if token.role in {"member", "superadmin"} else []
        readable = list(self.folders) if token.role != "operator" else []
        return {
            "workspace_id": workspace, "email": "deployer@example.test",
            "username": "deployer", "is_admin": token.role == "superadmin",
            "is_super_admin": token.role == "superadmin", "operator": token.role == "operator",
            "disabled": False, "role": "Developer" if member else "superadmin",
            "groups": ["marketing_ops"] if token.role == "member" else [],
            "folders_read": readable, "folders": folders, "folders_owners": [],
            "name": None, "is_service_account": False, "created_at": "2026-01-01T00:00:00Z",
            **({} if member else {"non_member": True}),
        }  # fmt: skip

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                path = unquote(url.path)
                with server._lock:
                    server.requests.append((self.command, path))
                    authorization = self.headers.get("Authorization")
                    refused = server._refusal(self.command, path, authorization)
                    whoami = re.fullmatch(r"/api/w/(?P<ws>[^/]+)/users/whoami", path)
                    payload: Any
                    if refused:
                        status, payload = refused
                    elif whoami and self.command == "GET":
                        token = server.tokens[(authorization or "").removeprefix("Bearer ")]
                        status, payload = 200, server.whoami(token, whoami["ws"])
                    else:
                        query = dict(parse_qsl(url.query))
                        status, payload = server.route(self.command, path, body, query)
                if isinstance(payload, bytes):
                    data, kind = payload, "application/octet-stream"
                elif isinstance(payload, str) or payload is None:
                    data, kind = (payload or "").encode(), "text/plain"
                else:
                    data, kind = json.dumps(payload).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

        return Handler


def _crud(store: dict, key: str, op: str, item: str | None, body: Any) -> tuple[int, Any]:
    if op in {"get", "get/p"}:
        return (200, store[item]) if item in store else (404, "Not found")
    if op == "create":
        # The CLI needs these on a script to call a later push "up to date".
        store[body[key]] = {"archived": False, "ws_error_handler_muted": False, **body}
        return 201, body[key]
    store.setdefault(item, {key: item}).update(body)
    return 200, f"updated {item}"


def _zip(files: dict[str, str]) -> bytes:
    """The workspace as `GET /workspaces/tarball` exports it: one file per item."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
