"""A stand-in Windmill API on 127.0.0.1 for windmill-cli 1.819: what `sync push`, `resource
push`, `resource-type push` and their `get` commands call, as they call it (found by running
the CLI against a logging server), with the state they change.

The workspace it serves starts empty: its tarball lists nothing, so a push creates everything.
"""

import io
import json
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

VERSION = "v1.819.0"


class WindmillServer:
    """`with WindmillServer() as wm:` serves on `wm.url`; `wm.requests` logs every call."""

    def __init__(self, workspace: str = "test", token: str = "deploy-token") -> None:
        self.workspace = workspace
        self.token = token
        self.folders: dict[str, dict] = {}
        self.scripts: dict[str, dict] = {}
        self.resource_types: dict[str, dict] = {}
        self.resources: dict[str, dict] = {}
        # What the workspace holds already, as its export lists it (path: file text), and the
        # scripts a push archived since.
        self.tree: dict[str, str] = {}
        self.archived: list[str] = []
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

    # --- routes ---------------------------------------------------------------------------

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/api/version":
            return 200, VERSION
        if method == "GET" and path == "/api/users/whoami":
            return 200, {"email": "deployer@example.test", "username": "deployer"}
        ws = re.fullmatch(rf"/api/w/{re.escape(self.workspace)}(?P<rest>/.*)", path)
        if ws is None:
            return 404, "Workspace not found"
        rest = ws["rest"]
        fixed: dict[tuple[str, str], Any] = {
            ("GET", "/workspaces/list_ws_specific"): [],
            ("GET", "/resources/file_resource_type_to_file_ext_map"): {},
            ("GET", "/workspaces/tarball"): _zip(self.tree),
            ("GET", "/jobs/queue/list"): [],
            ("GET", "/jobs/completed/list"): [],
        }
        if (method, rest) in fixed:
            return 200, fixed[(method, rest)]
        archive = re.fullmatch(r"/scripts/archive/p/(?P<path>.+)", rest)
        if method == "POST" and archive:
            self.archived.append(archive["path"])
            return 200, f"archived {archive['path']}"
        for pattern, store, key in (
            (r"/folders/(?P<op>get|create|update)(?:/(?P<id>.+))?", self.folders, "name"),
            (r"/scripts/(?P<op>get/p|create)(?:/(?P<id>.+))?", self.scripts, "path"),
            (r"/resources/type/(?P<op>get|create|update)(?:/(?P<id>.+))?", self.resource_types,
             "name"),
            (r"/resources/(?P<op>get|create|update)(?:/(?P<id>.+))?", self.resources, "path"),
        ):  # fmt: skip
            match = re.fullmatch(pattern, rest)
            if match:
                return _crud(store, key, match["op"], match["id"], body)
        return 404, None

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
                    public = path == "/api/version"  # the CLI asks without a token
                    if not public and self.headers.get("Authorization") != f"Bearer {server.token}":
                        status, payload = 401, "Unauthorized"
                    else:
                        status, payload = server.route(self.command, path, body)
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
