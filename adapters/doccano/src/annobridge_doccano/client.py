"""doccano's flavour of :class:`annobridge.http.HttpClient`: token login, no cookie jar, task polling.

Imported by the adapter on first use (httpx comes with this package's dependencies, not the core's).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import httpx

from annobridge.http import HttpClient, LoginTokenAuth
from annobridge.kit import AdapterError, Secret, poll_until


class DoccanoClient(HttpClient):
    """doccano's REST API: token login (again on 401), no cookie jar, JSON helpers and task polling."""

    def __init__(self, base_url: str, username: str, password: Secret, *, timeout: float = 60.0,
                 retry_for: float = 120.0, transport: httpx.BaseTransport | None = None,
                 allow_http: bool = False) -> None:
        self.username = username
        auth = LoginTokenAuth(
            base_url.rstrip("/") + "/v1/auth/login/", username, password,
            failure=f"doccano login as {username!r} failed: check DOCCANO_USERNAME / DOCCANO_PASSWORD")
        # No cookie jar: a kept `sessionid` makes DRF use session auth, and then every write fails CSRF.
        # 500s are not retried: doccano answers 500 to some bad writes (a duplicate category), always.
        super().__init__(base_url, name="doccano", auth=auth, allow_http=allow_http, timeout=timeout,
                         retry_for=retry_for, transport=transport, keep_cookies=False,
                         retry_status={429, 502, 503, 504})

    def get(self, path: str, **params: Any) -> Any:
        return self.get_json(path, params or None)

    def post(self, path: str, body: Any, *, ok: Collection[int] = (), **kwargs: Any) -> Any:
        response = self.request("POST", path, json=body, ok=ok, **kwargs)
        return response.json() if response.content else None

    def wait_task(self, task_id: str, *, timeout: float, what: str) -> Any:
        """Poll ``/v1/tasks/status/ID`` until ready; doccano reports nothing if no worker runs."""
        # A status read costs the server a few ms: poll every 0.1 s while a pull's export is typically
        # finishing (1-3 s), then back off to one poll per 2 s for long imports.
        status = poll_until(
            lambda: self.get(f"/v1/tasks/status/{task_id}"), lambda s: bool(s.get("ready")),
            timeout=timeout, interval=0.1, backoff=0.1, max_interval=2.0,
            message=f"doccano {what} task {task_id} not finished after {timeout:.0f}s. doccano runs imports "
                    "and exports in Celery: is a worker (`doccano task`) running next to the web server?")
        if status.get("error"):
            err = status["error"]
            text = err.get("text") if isinstance(err, dict) else err
            raise AdapterError(self.redact(f"doccano {what} task failed: {text}"))
        return status.get("result")
