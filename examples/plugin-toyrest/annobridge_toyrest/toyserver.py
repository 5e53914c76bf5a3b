"""ToyREST: a tiny but real annotation server, for the example adapter's tests and the walkthrough.

Standard library only (``http.server`` in a thread). It behaves like a small web annotation tool:

* every request needs ``Authorization: Token <token>`` (else 401);
* ``POST /api/projects`` ``{"name", "task", "labels"}`` and ``GET /api/projects/<id>``;
* ``POST /api/projects/<id>/tasks/bulk`` with a list of ``{"text", "external_id", "meta", "predictions"}``
  returns ``{"ids": [...]}``; one task with empty text rejects the whole batch with a 400 that names it
  (``{"error", "index", "external_id"}``), as many real tools do;
* ``GET /api/projects/<id>/tasks?page=1&limit=50&updated_after=ISO`` pages through tasks (ordered by id),
  each with its ``annotations`` and ``predictions``;
* ``POST /api/tasks/<id>/annotations`` is what the web UI sends when an annotator submits: one annotation
  per annotator and task (a second submit updates it). Span offsets are **UTF-16 code units**, as a
  JavaScript front end counts them, and each result item carries the text it covers;
* ``POST /api/tasks/<id>/predictions`` attaches a model's pre-annotation.

Misbehaving on request, so the client's retries and redaction meet a real server: ``fail_first = N``
answers the next N requests (of ``fail_method``, if set) with 503 and ``Retry-After``;
``echo_headers = True`` puts the request's headers (the token included) into every error body, as careless
servers do.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def utf16_slice(text: str, start: int, end: int) -> str:
    """``text.slice(start, end)`` as JavaScript computes it (UTF-16 code units)."""
    raw = text.encode("utf-16-le")
    return raw[2 * start : 2 * end].decode("utf-16-le", errors="replace")


class ToyServer:
    """The server's state plus the HTTP server thread. ``ToyServer(token).start()``; ``url`` after."""

    def __init__(self, token: str, *, port: int = 0) -> None:
        self.token = token
        self.port = port
        self.projects: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.fail_first = 0
        #: fail only requests of this method ("POST": writes), or every request when None
        self.fail_method: str | None = None
        self.retry_after = "1"
        self.echo_headers = False
        #: every request as (method, path), for tests that count calls
        self.requests: list[tuple[str, str]] = []
        #: the error bodies sent, for tests that check the server really echoed what it was sent
        self.error_bodies: list[str] = []
        self._ids = 0
        self._lock = threading.RLock()
        self._http: ThreadingHTTPServer | None = None
        #: open client connections: a restart must cut kept-alive ones too, as a real process exit does
        self._connections: set[Any] = set()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> ToyServer:
        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.port = self._http.server_address[1]  # keep the port: a restart comes back on it
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._http = None

    def restart(self, down_for: float = 0.5) -> None:
        """Go away and come back on the same port ``down_for`` seconds later, data kept (a redeploy)."""
        self.stop()
        timer = threading.Timer(down_for, self.start)
        timer.daemon = True
        timer.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -- the API, as plain methods (the handler calls these) --------------------------------------------
    def create_project(self, name: str, task: str, labels: list[str]) -> dict[str, Any]:
        with self._lock:
            project: dict[str, Any] = {"id": self._next_id(), "name": name, "task": task, "labels": list(labels)}
            self.projects[project["id"]] = project
            return project

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        with self._lock:
            if parts == ["api", "projects"] and method == "POST":
                return 201, self.create_project(body["name"], body.get("task", "ner"), body.get("labels", []))
            if len(parts) >= 3 and parts[:2] == ["api", "projects"] and parts[2].isdigit():
                project = self.projects.get(int(parts[2]))
                if project is None:
                    return 404, {"error": f"project {parts[2]} not found"}
                if len(parts) == 3 and method == "GET":
                    return 200, project
                if parts[3:] == ["tasks", "bulk"] and method == "POST":
                    return self._bulk(project["id"], body)
                if parts[3:] == ["tasks"] and method == "GET":
                    return 200, self._list(project["id"], query)
            if len(parts) == 4 and parts[:2] == ["api", "tasks"] and parts[2].isdigit() and method == "POST":
                task = self.tasks.get(int(parts[2]))
                if task is None:
                    return 404, {"error": f"task {parts[2]} not found"}
                if parts[3] == "annotations":
                    return 201, self._annotate(task, body)
                if parts[3] == "predictions":
                    task["predictions"].append({**body, "id": self._next_id(), "created_at": now()})
                    task["updated_at"] = now()
                    return 201, {"id": task["predictions"][-1]["id"]}
            return 404, {"error": f"no route {method} {path}"}

    def _bulk(self, project_id: int, items: list[dict[str, Any]]) -> tuple[int, Any]:
        for index, item in enumerate(items):
            if not str(item.get("text") or "").strip():
                return 400, {"error": f"task {index} ({item.get('external_id')!r}) has empty text",
                             "index": index, "external_id": item.get("external_id")}
        ids = []
        for item in items:
            stamp = now()
            task = {"id": self._next_id(), "project": project_id, "text": item["text"],
                    "external_id": item.get("external_id"), "meta": item.get("meta") or {},
                    "annotations": [], "created_at": stamp, "updated_at": stamp,
                    "predictions": [{**p, "id": self._next_id(), "created_at": stamp}
                                    for p in item.get("predictions") or []]}
            self.tasks[task["id"]] = task
            ids.append(task["id"])
        return 201, {"ids": ids}

    def _list(self, project_id: int, query: dict[str, list[str]]) -> dict[str, Any]:
        page = int(query.get("page", ["1"])[0])
        limit = int(query.get("limit", ["50"])[0])
        after = query.get("updated_after", [None])[0]
        tasks = [t for t in self.tasks.values() if t["project"] == project_id]
        if after:
            since = datetime.fromisoformat(after)
            tasks = [t for t in tasks if datetime.fromisoformat(t["updated_at"]) > since]
        chunk = tasks[(page - 1) * limit : page * limit]
        more = page * limit < len(tasks)
        return {"tasks": json.loads(json.dumps(chunk)), "total": len(tasks), "next": page + 1 if more else None}

    def _annotate(self, task: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        result = [{**r, "text": r.get("text", utf16_slice(task["text"], r["start"], r["end"]))}
                  for r in body.get("result", [])]
        stamp = now()
        for annotation in task["annotations"]:
            if annotation["annotator"] == body["annotator"]:  # a second submit edits the first
                annotation.update(result=result, updated_at=stamp)
                break
        else:
            annotation = {"id": self._next_id(), "annotator": body["annotator"], "result": result,
                          "created_at": stamp, "updated_at": stamp}
            task["annotations"].append(annotation)
        task["updated_at"] = stamp
        time.sleep(0.001)  # distinct timestamps for consecutive writes, as a real database clock gives
        return annotation


def _handler(server: ToyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            server._connections.add(self.connection)

        def finish(self) -> None:
            server._connections.discard(self.connection)
            super().finish()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the client's logs
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            if status >= 400 and server.echo_headers:
                payload = {**payload, "request_headers": dict(self.headers.items())}
            data = json.dumps(payload).encode()
            if status >= 400:
                server.error_bodies.append(data.decode())
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            server.requests.append((method, parts.path))
            with server._lock:
                failing = server.fail_first > 0 and server.fail_method in (None, method)
                server.fail_first -= failing
            if failing:
                return self._send(503, {"error": "warming up"}, {"Retry-After": server.retry_after})
            if self.headers.get("Authorization") != f"Token {server.token}":
                return self._send(401, {"error": "invalid or missing token"})
            try:
                body = json.loads(raw) if raw else None
                status, payload = server.route(method, parts.path, parse_qs(parts.query), body)
            except (ValueError, KeyError, TypeError) as exc:
                status, payload = 400, {"error": f"bad request: {exc}"}
            self._send(status, payload)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler
