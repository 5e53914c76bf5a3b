"""annobridge.http against a real HTTP server on loopback that echoes requests back in its errors.

The server (``http.server`` in a thread) answers errors with the request's headers and body in the response
text, the way misconfigured proxies and debug-mode servers do: whatever the client sent must not come back
out of annobridge in an exception, a log line or a repr.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("tenacity")

from annobridge.adapter import AdapterURL  # noqa: E402
from annobridge.config import AdapterConfig, Secret  # noqa: E402
from annobridge.errors import AdapterError, ServerUnreachableError, UsageError  # noqa: E402
from annobridge.http import (  # noqa: E402
    AmbiguousWrite,
    HttpClient,
    JWTRefreshAuth,
    LoginTokenAuth,
    StaticTokenAuth,
    excerpt,
)


def _jwt(exp: float) -> str:
    import base64

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    header, payload = part({"alg": "HS256", "typ": "JWT"}), part({"exp": exp, "n": secrets.token_hex(8)})
    return f"{header}.{payload}.{secrets.token_hex(16)}"


class EchoServer:
    """Endpoints: /echo?status=N&pad=K (error echoing the request, the headers K characters into the body),
    /flaky/<key>?fail=N (N answers 503 with Retry-After: 1, then 200), /slow?sleep=S, /login, /token/refresh,
    /protected (needs the latest access token), /ok."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.access_tokens: list[str] = []
        self.session_token = "sess-" + secrets.token_hex(20)
        self.port = 0
        self._start()

    def _start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (the timeout tests): nothing to answer

            def _reply(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _echo(self, status: int, body: bytes, pad: int = 0) -> None:
                # Credentials first, so `pad` decides where they fall against an excerpt's cut.
                keys = sorted(self.headers.keys(), key=lambda k: k.lower() not in ("authorization", "x-api-key"))
                echoed = "".join(f"{k}: {self.headers[k]}\n" for k in keys)
                self._reply(status, "x" * pad + echoed + "body: " + body.decode("utf-8", "replace"))

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.hits[f"{self.command} {parts.path}"] += 1
                path = parts.path
                if path == "/ok":
                    self._reply(200, json.dumps({"ok": True}))
                elif path == "/echo":
                    self._echo(int(query.get("status", 400)), body, int(query.get("pad", 0)))
                elif path.startswith("/flaky/"):
                    if owner.hits[f"{self.command} {path}"] <= int(query.get("fail", 2)):
                        self._reply(503, "busy", {"Retry-After": "1"})
                    else:
                        self._reply(200, json.dumps({"done": True}))
                elif path == "/slow":
                    time.sleep(float(query.get("sleep", 2)))
                    self._reply(201, "{}")
                elif path == "/login":
                    sent = json.loads(body or b"{}")
                    if sent.get("password") != "correct horse battery":
                        self._echo(400, body)
                    else:
                        # a session cookie too, which a token client must not send back (doccano: CSRF)
                        self._reply(200, json.dumps({"key": owner.session_token}),
                                    {"Set-Cookie": "sessionid=cookie-session-1; Path=/"})
                elif path == "/token/refresh":
                    access = _jwt(time.time() + 300)
                    owner.access_tokens.append(access)
                    self._reply(200, json.dumps({"access": access}))
                elif path == "/protected":
                    want = f"Bearer {owner.access_tokens[-1]}" if owner.access_tokens else None
                    if self.headers.get("Authorization") != want:
                        self._echo(401, body)
                    else:
                        self._echo(int(query.get("status", 200)), body)
                else:
                    self._reply(404, "{}")

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def restart(self) -> None:
        self._start()


@pytest.fixture
def server() -> Iterator[EchoServer]:
    srv = EchoServer()
    yield srv
    srv.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_hidden(secret: str, exc: BaseException, records: list[logging.LogRecord], *objects: Any) -> None:
    texts = [str(exc), repr(exc), *(r.getMessage() for r in records), *(repr(o) for o in objects)]
    for text in texts:
        assert secret not in text
        assert secret[:8] not in text  # not even a prefix (the cut of an excerpt must not expose one)


# -- redaction -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pad", [0, 150, 270, 275, 285, 299])
def test_static_token_never_shown_even_across_the_cut(
    server: EchoServer, caplog: pytest.LogCaptureFixture, pad: int
) -> None:
    token = "tok-" + secrets.token_hex(24)
    client = HttpClient(server.url, name="Tool", auth=StaticTokenAuth(Secret(token)))
    with caplog.at_level(logging.DEBUG), pytest.raises(AdapterError) as err:
        # `pad` puts the echoed Authorization header where the 300-character excerpt is cut
        client.request("POST", "/echo", params={"status": 400, "pad": pad}, json={"api_key": token})
    assert "HTTP 400" in str(err.value)
    assert ("Authorization: Token ***" in str(err.value)) == (pad + len("Authorization: Token ***") <= 300)
    _assert_hidden(token, err.value, caplog.records, client, client.auth)


def test_excerpt_redacts_before_cutting() -> None:
    from annobridge.http import Redactor

    secret = "s3cr3t-" + "q" * 40
    body = "a" * 290 + secret + " tail"
    cut = excerpt(body, Redactor([secret]), 300)
    assert "s3cr3t" not in cut and "***" in cut
    naive = " ".join(body.split())[:300]  # what cutting first would have left
    assert "s3cr3t" in naive


def test_api_key_header_and_json_escaped_forms(server: EchoServer, caplog: pytest.LogCaptureFixture) -> None:
    key = 'key/with"quote-' + secrets.token_hex(12)
    client = HttpClient(server.url, name="Argilla", auth=StaticTokenAuth(key, header="X-Api-Key", prefix=""))
    with caplog.at_level(logging.DEBUG), pytest.raises(AdapterError) as err:
        client.request("PUT", "/echo", params={"status": 422}, json={"echo": key})  # body has it JSON-escaped
    _assert_hidden(key, err.value, caplog.records, client)
    assert json.dumps(key)[1:-1] not in str(err.value)


def test_login_password_and_session_token(server: EchoServer, caplog: pytest.LogCaptureFixture) -> None:
    password = "wrong pass " + secrets.token_hex(10)
    bad = HttpClient(server.url, auth=LoginTokenAuth(server.url + "/login", "alice", Secret(password),
                                                     failure="login as 'alice' failed"), keep_cookies=False)
    with caplog.at_level(logging.DEBUG), pytest.raises(AdapterError) as err:
        bad.get_json("/ok")
    assert "login as 'alice' failed (HTTP 400)" in str(err.value)
    _assert_hidden(password, err.value, caplog.records, bad, bad.auth)

    good = HttpClient(server.url, auth=LoginTokenAuth(server.url + "/login", "alice",
                                                      Secret("correct horse battery")), keep_cookies=False)
    assert good.get_json("/ok") == {"ok": True}
    with caplog.at_level(logging.DEBUG), pytest.raises(AdapterError) as err:
        good.request("GET", "/echo", params={"status": 500}, retry_status=())
    assert "Token ***" in str(err.value)  # the token the login returned is redacted as well
    assert "sessionid" not in str(err.value)  # keep_cookies=False: the login's cookie was never sent back
    _assert_hidden(server.session_token, err.value, caplog.records, good, good.auth)
    _assert_hidden("correct horse battery", err.value, caplog.records, good, good.auth)


def test_refreshed_jwt_never_shown(server: EchoServer, caplog: pytest.LogCaptureFixture) -> None:
    refresh = _jwt(time.time() + 10**8)
    auth = JWTRefreshAuth(Secret(refresh), server.url + "/token/refresh", name="Label Studio")
    client = HttpClient(server.url, auth=auth)
    client.request("GET", "/protected")
    first = server.access_tokens[-1]
    auth.access = _jwt(time.time() + 300)  # a token the server no longer accepts: refreshed on the 401
    with caplog.at_level(logging.DEBUG), pytest.raises(AdapterError) as err:
        client.request("GET", "/protected", params={"status": 418})
    assert len(server.access_tokens) == 2 and auth.access == server.access_tokens[-1]
    assert "HTTP 418" in str(err.value)
    for secret in (refresh, first, server.access_tokens[-1]):
        _assert_hidden(secret, err.value, caplog.records, client, auth)


# -- fast failure ----------------------------------------------------------------------------------------


def test_refused_connection_fails_fast_with_the_exact_message() -> None:
    port = _free_port()
    client = HttpClient(f"http://127.0.0.1:{port}", name="Tool")
    began = time.monotonic()
    with pytest.raises(ServerUnreachableError) as err:
        client.get_json("/api/projects")
    assert time.monotonic() - began < 10
    assert str(err.value) == f"cannot reach 127.0.0.1:{port} (connection refused): is the server running?"
    assert err.value.exit_code == 3


def test_dns_failure_fails_fast_without_retries(caplog: pytest.LogCaptureFixture) -> None:
    client = HttpClient("http://no-such-host.invalid", allow_http=True)
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="annobridge.http"), pytest.raises(ServerUnreachableError) as err:
        client.get_json("/")
    assert time.monotonic() - began < 10
    assert str(err.value) == "cannot reach no-such-host.invalid:80 (name not resolved): is the server running?"
    assert client.retries == 0 and not [r for r in caplog.records if r.name == "annobridge.http"]


def test_restart_after_success_is_waited_for(server: EchoServer, caplog: pytest.LogCaptureFixture) -> None:
    client = HttpClient(server.url, retry_for=30)
    assert client.get_json("/ok") == {"ok": True}
    server.stop()
    timer = threading.Timer(3.0, server.restart)  # down for longer than a never-reached server is tried
    timer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="annobridge.http"):
            assert client.get_json("/ok") == {"ok": True}
    finally:
        timer.join()
    assert client.retries > 0
    assert any("(connection refused)" in r.getMessage() for r in caplog.records)


# -- retries -----------------------------------------------------------------------------------------------


def test_503_with_retry_after_is_retried_one_log_line_each(
    server: EchoServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-" + secrets.token_hex(20)
    client = HttpClient(server.url, auth=StaticTokenAuth(token), secrets=[token])
    path = f"/flaky/{token}"  # a secret in the path: the log lines must not show it either
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="annobridge.http"):
        assert client.get_json(path, {"fail": 2}) == {"done": True}
    lines = [r.getMessage() for r in caplog.records if r.name == "annobridge.http"]
    assert len(lines) == 2 and client.retries == 2
    assert lines[0] == f"retrying GET /flaky/*** in 1.0s (HTTP 503), attempt 2/{client.max_attempts}"
    assert all("\n" not in line and token not in line for line in lines)
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "annobridge.http")
    assert time.monotonic() - began >= 2.0  # Retry-After was honoured
    assert server.hits[f"GET {path}"] == 3


def test_post_is_not_retried_on_5xx_and_reports_ambiguity(server: EchoServer) -> None:
    client = HttpClient(server.url)
    with pytest.raises(AmbiguousWrite):
        client.request("POST", "/flaky/post", params={"fail": 1})
    assert server.hits["POST /flaky/post"] == 1
    # an idempotent write (PUT) is sent again after a 503
    assert client.request("PUT", "/flaky/put", params={"fail": 1}).json() == {"done": True}


def test_post_timeout_raises_ambiguous_write_after_reconcile(server: EchoServer) -> None:
    client = HttpClient(server.url, timeout=0.5)
    calls: list[str] = []

    def reconcile() -> bool:
        calls.append("checked")
        return server.hits["POST /slow"] == 1  # "did it land?": the adapter would look its ids up

    with pytest.raises(AmbiguousWrite) as err:
        client.request("POST", "/slow", params={"sleep": 1.5}, json={"x": 1}, reconcile=reconcile)
    assert calls == ["checked"] and err.value.reconciled is True
    assert err.value.method == "POST" and err.value.path == "/slow"
    assert isinstance(err.value, AdapterError)
    time.sleep(1.2)
    assert server.hits["POST /slow"] == 1  # sent once, never again
    # an idempotent request that times out is retried instead
    client.retry_for = 3
    with pytest.raises(AdapterError, match="ReadTimeout"):
        client.request("GET", "/slow", params={"sleep": 1.5})
    assert server.hits["GET /slow"] >= 2


def test_pagination_helpers(server: EchoServer) -> None:
    class Listing(httpx.BaseTransport):
        """A listing of 23 items in three styles, behind the real transport for everything else."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            q = dict(request.url.params)
            items = list(range(23))
            if request.url.path == "/offset":
                off, lim = int(q["offset"]), int(q["limit"])
                return httpx.Response(200, json={"items": items[off:off + lim]})
            if request.url.path == "/pages":
                page, size = int(q["page"]), int(q["page_size"])
                if (page - 1) * size >= len(items):
                    return httpx.Response(404, json={"detail": "Invalid page."})
                return httpx.Response(200, json={"tasks": items[(page - 1) * size:page * size]})
            off = int(q.get("offset", 0))
            nxt = f"http://elsewhere.example/next?offset={off + 10}" if off + 10 < len(items) else None
            return httpx.Response(200, json={"results": items[off:off + 10], "next": nxt})

    client = HttpClient(server.url, transport=Listing())
    assert list(client.iter_items(client.pages_offset("/offset", limit=5))) == list(range(23))
    assert list(client.iter_items(client.pages_numbered("/pages", page_size=23, items="tasks"))) == list(range(23))
    assert list(client.iter_items(client.pages_numbered("/pages", page_size=5, items="tasks"))) == list(range(23))
    assert list(client.iter_items(client.pages_next("/next"))) == list(range(23))


# -- https off loopback: one rule for argument, environment and config file ---------------------------------


def test_plain_http_to_a_remote_host_needs_plus_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # from the argument
    assert AdapterURL.parse("argilla://argilla.example.org/w/d").base_url() == "https://argilla.example.org"
    assert AdapterURL.parse("argilla+http://argilla.example.org/w/d").base_url() == "http://argilla.example.org"
    with pytest.raises(UsageError, match="plain http"):
        HttpClient("http://argilla.example.org")
    assert HttpClient("http://argilla.example.org", allow_http=True).base_url == "http://argilla.example.org"
    assert HttpClient("http://[::1]:6900").base_url == "http://[::1]:6900"

    # from the environment
    env = AdapterConfig({}, env={"ARGILLA_API_URL": "http://10.1.2.3:6900/"})
    with pytest.raises(UsageError, match="ARGILLA_API_URL uses plain http"):
        env.server_url(AdapterURL.parse("argilla:///w/d"), "ARGILLA_API_URL")
    assert env.server_url(AdapterURL.parse("argilla+http:///w/d"), "ARGILLA_API_URL") == "http://10.1.2.3:6900"
    local = AdapterConfig({}, env={"LABEL_STUDIO_URL": "http://localhost:8080"})
    assert local.server_url(AdapterURL.parse("labelstudio:///projects/1"), "LABEL_STUDIO_URL") == "http://localhost:8080"

    # from the config file
    path = tmp_path / "config.toml"
    path.write_text('[labelstudio]\nurl = "http://ls.example.org:8080"\napi_key = "k"\n', encoding="utf-8")
    monkeypatch.setenv("ANNOBRIDGE_CONFIG", str(path))
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    config = AdapterConfig.for_scheme("labelstudio")
    with pytest.raises(UsageError, match="plain http"):
        config.server_url(AdapterURL.parse("labelstudio:///projects/1"), "LABEL_STUDIO_URL")
    assert config.server_url(AdapterURL.parse("labelstudio+http:///projects/1"), "LABEL_STUDIO_URL") == (
        "http://ls.example.org:8080")
