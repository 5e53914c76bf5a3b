"""The HTTP layer every server adapter uses: retries where they are safe, fast failure, auth, redaction.

One :class:`HttpClient` per adapter, over httpx, with retries through tenacity:

* **what is retried**: a request that never reached the server (connect error, pool timeout) whatever its
  method; an idempotent request (GET, HEAD, PUT, DELETE, OPTIONS) that failed after it was sent or got
  429 / 5xx; a 429 whatever the method. ``Retry-After`` is honoured. Backoff is exponential with jitter
  and bounded by ``retry_for`` seconds, so a server restarting in the middle of a pull is waited for.
* **what is not**: a POST or PATCH that may have reached the server (timeout or reset after sending, or a
  5xx answer) raises :class:`AmbiguousWrite`; the ``reconcile`` callable the adapter passes is called
  first and its answer (did the write land?) travels on the exception.
* **fast failure**: connection refused, a name that does not resolve, or a connect timeout on a server
  that has not answered yet raise :class:`~annobridge.errors.ServerUnreachableError` (exit code 3)
  within ``unreachable_for`` seconds (default 8), e.g. ``cannot reach 127.0.0.1:8080 (connection
  refused): is the server running?``. DNS failures are never retried.
* **one log line per retry** on the ``annobridge.http`` logger at WARNING, e.g.
  ``retrying GET /api/tasks in 2.0s (HTTP 503), attempt 2/30``; the CLI attaches a handler to show them.
* **redaction**: every secret the client or its auth registers (tokens, keys, passwords, a refreshed
  JWT) is replaced by ``***`` in every exception message, log line and ``repr``, *before* a response
  body is cut to an excerpt (:func:`excerpt`), so a secret crossing the cut leaks nothing.
* **https** off loopback unless the URL's scheme says ``+http`` (:func:`annobridge.config.check_server_url`,
  the same rule for URLs from the command line, the environment or the config file).

Auth comes as ``httpx.Auth`` flows: :class:`StaticTokenAuth` (a fixed header), :class:`JWTRefreshAuth`
(a refresh token traded for short-lived access tokens, refreshed on expiry and on 401) and
:class:`LoginTokenAuth` (log in with a user name and password for a token; log in again on 401).

Pagination: :meth:`HttpClient.pages_offset` (offset/limit), :meth:`HttpClient.pages_numbered` (page
numbers, a 404 past the end) and :meth:`HttpClient.pages_next` (``next`` links); :meth:`HttpClient.items_offset`
reads an offset listing of known length as a few pages side by side.

This module needs ``httpx`` and ``tenacity`` (the server adapters' extras); adapters import it lazily.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import httpx
import tenacity

from .bulk import parallel_map
from .config import Secret, check_server_url
from .errors import AdapterError, AmbiguousWrite, ServerUnreachableError
from .jsonio import iter_json_array

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUS",
    "AmbiguousWrite",
    "HttpClient",
    "JWTRefreshAuth",
    "LoginTokenAuth",
    "Page",
    "Redactor",
    "Rejection",
    "StaticTokenAuth",
    "check_server_url",
    "excerpt",
    "is_jwt",
    "isolate_rejected",
    "refusal_words",
]

log = logging.getLogger("annobridge.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
#: secrets shorter than this are not redacted: replacing every "ab" in a message would garble it and
#: hide nothing worth hiding
MIN_SECRET = 4
EXCERPT_CHARS = 300

ParamsArg = Mapping[str, Any] | Iterable[tuple[str, Any]] | None
T = TypeVar("T")


# -- redaction --------------------------------------------------------------------------------------


class Redactor:
    """Replaces registered secrets by ``***``; thread-safe, never shows what it holds."""

    def __init__(self, secrets: Iterable[str | Secret | None] = ()) -> None:
        self._secrets: list[str] = []
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | Secret | None) -> None:
        """Register a secret, with the forms a server may echo it in (JSON-escaped, URL-encoded, base64)."""
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not value or len(value) < MIN_SECRET:
            return
        forms = {value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value),
                 base64.b64encode(value.encode()).decode().rstrip("=")}
        with self._lock:
            # Longest first, so a secret that contains another is replaced whole.
            self._secrets = sorted(set(self._secrets) | {f for f in forms if len(f) >= MIN_SECRET},
                                   key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret forms)"


def excerpt(text: str, redactor: Callable[[str], str] | None = None, limit: int = EXCERPT_CHARS) -> str:
    """An error excerpt of a response body: redacted first, then whitespace folded, then cut to ``limit``."""
    if redactor is not None:
        text = redactor(text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def response_text(response: httpx.Response) -> str:
    try:
        response.read()
        return response.text
    except (httpx.HTTPError, UnicodeDecodeError, RuntimeError):
        return ""


def refusal_words(response: httpx.Response) -> str:
    """The server's own words for a refusal, from the error shapes REST frameworks use, unredacted and uncut.

    FastAPI (``{"detail": [{"loc": [...], "msg": ...}]}``, or a string, or ``{"detail": {"params": ...}}``),
    Django REST framework (``{"field": ["message"]}``, ``{"detail": "..."}``), or the body as text.
    Pass the result through :func:`excerpt` (or ``client.reason``) before showing it.
    """
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response_text(response)}"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, str):
        return detail
    if isinstance(detail, dict):
        params = detail.get("params")
        if isinstance(params, dict) and params.get("detail"):
            return str(params["detail"])
        if "message" in detail or "code" in detail:
            return str(detail.get("message") or detail.get("code"))
        # DRF: field -> list of messages
        return "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in detail.items())
    if isinstance(detail, list):  # FastAPI request validation, or DRF's list of messages
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", ()) if x != "body")
                parts.append(f"{loc}: {item.get('msg', '')}".strip(": "))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def isolate_rejected(
    items: Sequence[T],
    send: Callable[[Sequence[T]], Rejection | None],
) -> list[tuple[T, str]]:
    """Send ``items`` in one batch; if the server refuses it, find the bad ones and send the rest.

    ``send(batch)`` returns None when the batch landed, or a :class:`Rejection` with the server's reason and,
    when it said so, the positions of the bad items in that batch. Named items fail with the reason and the
    others are sent again; otherwise the batch is split in halves until each refusal sits on single items.
    Returns ``(item, reason)`` for every refused item: one bad record costs only itself.
    """
    if not items:
        return []
    rejection = send(items)
    if rejection is None:
        return []
    if len(items) == 1:
        return [(items[0], rejection.reason)]
    named = sorted({p for p in rejection.positions if 0 <= p < len(items)})
    if named:
        bad = set(named)
        rest = [item for i, item in enumerate(items) if i not in bad]
        return [(items[p], rejection.reason) for p in named] + isolate_rejected(rest, send)
    half = len(items) // 2
    return isolate_rejected(items[:half], send) + isolate_rejected(items[half:], send)


@dataclass(frozen=True)
class Rejection:
    """A refused batch: the server's reason (already redacted and cut) and the positions it named, if any."""

    reason: str
    positions: tuple[int, ...] = ()


# -- errors -----------------------------------------------------------------------------------------


class _Retry(Exception):
    """One failed attempt worth another (never leaves this module)."""

    def __init__(self, reason: str, *, kind: str = "lost", response: httpx.Response | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.kind, self.response, self.retry_after = reason, kind, response, retry_after


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_DNS_WORDS = ("name or service not known", "nodename nor servname", "name resolution", "getaddrinfo",
              "no address associated", "name does not resolve")


def _connect_kind(exc: httpx.TransportError) -> str:
    """``dns``, ``refused``, ``timeout`` or ``connect`` for an error before the request was sent."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timeout"
    for link in _chain(exc):
        if isinstance(link, socket.gaierror):
            return "dns"
        if isinstance(link, ConnectionRefusedError):
            return "refused"
    text = str(exc).lower()
    if any(word in text for word in _DNS_WORDS):
        return "dns"
    if "refused" in text or "errno 111" in text:
        return "refused"
    return "connect"


_UNREACHABLE_WHY = {"dns": "name not resolved", "refused": "connection refused", "timeout": "timed out",
                    "connect": "cannot connect"}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


# -- auth flows ---------------------------------------------------------------------------------------


class _SecretAuth(httpx.Auth):
    """An auth flow that registers what it sends with the client's redactor."""

    redactor: Redactor | None = None

    def bind(self, redactor: Redactor) -> None:
        self.redactor = redactor
        for secret in self.secrets():
            redactor.add(secret)

    def secrets(self) -> list[str]:
        return []

    def _register(self, value: str) -> None:
        if self.redactor is not None:
            self.redactor.add(value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


class StaticTokenAuth(_SecretAuth):
    """A fixed credential in one header: ``Authorization: Token KEY`` or ``X-Argilla-Api-Key: KEY``."""

    def __init__(self, token: Secret | str, *, header: str = "Authorization", prefix: str = "Token") -> None:
        self._token = token if isinstance(token, Secret) else Secret(token)
        self.header, self.prefix = header, prefix

    def secrets(self) -> list[str]:
        return [self._token.reveal()]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = self._token.reveal()
        request.headers[self.header] = f"{self.prefix} {value}" if self.prefix else value
        yield request


def is_jwt(value: str) -> bool:
    return len(value.split(".")) == 3 and value.startswith("eyJ")


def jwt_expiry(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return float(json.loads(base64.urlsafe_b64decode(payload))["exp"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class _RenewingAuth(_SecretAuth):
    """A credential the flow fetches with a request of its own: before the first request, whenever it is due,
    and once more when the server answers 401 (it may have been revoked or expired early)."""

    requires_response_body = True

    def _due(self) -> bool:
        raise NotImplementedError

    def _renew(self) -> Generator[httpx.Request, httpx.Response, None]:
        raise NotImplementedError

    def _header(self) -> str:
        raise NotImplementedError

    def _fetch(self, url: str, body: dict[str, str], field: str, *, refused: str, missing: str
               ) -> Generator[httpx.Request, httpx.Response, str]:
        """POST ``body`` to ``url``; the answer's ``field``, registered for redaction. A refusal is an
        :class:`AdapterError` ``"<refused> (HTTP <code>): <excerpt>"``, an answer without it one saying ``missing``."""
        response = yield httpx.Request("POST", url, json=body, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise AdapterError(f"{refused} (HTTP {response.status_code}): "
                               f"{excerpt(response_text(response), self.redactor)}")
        try:
            value = response.json()[field]
        except (ValueError, KeyError, TypeError):
            value = None
        if not value:
            raise AdapterError(missing)
        self._register(str(value))
        return str(value)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._due():
            yield from self._renew()
        request.headers["Authorization"] = self._header()
        response = yield request
        if response.status_code == 401:
            yield from self._renew()
            request.headers["Authorization"] = self._header()
            yield request


class JWTRefreshAuth(_RenewingAuth):
    """A long-lived refresh JWT (Label Studio's personal access token) traded for short-lived access tokens.

    The access token is fetched before the first request, renewed 30 s before it expires, and once more
    when the server answers 401 (it may have been revoked). Every access token is registered for redaction.
    """

    def __init__(self, refresh_token: Secret | str, refresh_url: str, *, name: str = "The server",
                 field: str = "refresh", answer_field: str = "access") -> None:
        self._refresh = refresh_token if isinstance(refresh_token, Secret) else Secret(refresh_token)
        self.refresh_url, self.name, self.field, self.answer_field = refresh_url, name, field, answer_field
        self.access: str | None = None
        self.access_expires = 0.0
        self.refreshes = 0

    def secrets(self) -> list[str]:
        return [self._refresh.reveal(), *([self.access] if self.access else [])]

    def _due(self) -> bool:
        return self.access is None or time.time() > self.access_expires - 30

    def _renew(self) -> Generator[httpx.Request, httpx.Response, None]:
        self.access = yield from self._fetch(
            self.refresh_url, {self.field: self._refresh.reveal()}, self.answer_field,
            refused=f"{self.name} refused the personal access token",
            missing=f"{self.name}'s token refresh returned no access token.")
        self.access_expires = jwt_expiry(self.access) or time.time() + 240
        self.refreshes += 1

    def _header(self) -> str:
        return f"Bearer {self.access}"


class LoginTokenAuth(_RenewingAuth):
    """Log in with user name and password for a token (doccano's ``/v1/auth/login/``), again on 401.

    Use it with ``HttpClient(keep_cookies=False)``: a session cookie kept from the login makes some
    servers (Django REST framework) switch to session auth, and then every write fails CSRF.
    """

    def __init__(self, login_url: str, username: str, password: Secret | str, *, token_field: str = "key",
                 prefix: str = "Token", failure: str = "login failed") -> None:
        self.login_url, self.username = login_url, username
        self._password = password if isinstance(password, Secret) else Secret(password)
        self.token_field, self.prefix, self.failure = token_field, prefix, failure
        self._token: str | None = None
        self.logins = 0

    def secrets(self) -> list[str]:
        return [self._password.reveal(), *([self._token] if self._token else [])]

    def _due(self) -> bool:
        return self._token is None

    def _renew(self) -> Generator[httpx.Request, httpx.Response, None]:
        self._token = yield from self._fetch(
            self.login_url, {"username": self.username, "password": self._password.reveal()}, self.token_field,
            refused=self.failure, missing=f"{self.failure}: the login answer had no {self.token_field!r}")
        self.logins += 1

    def _header(self) -> str:
        return f"{self.prefix} {self._token}"


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


# -- the client -----------------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of a paginated listing: its items and the whole decoded body (for totals and links)."""

    items: list[Any]
    body: Any


def _params(params: ParamsArg) -> list[tuple[str, Any]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        return list(params.items())
    return list(params)


def _items(body: Any, key: str | Callable[[Any], list[Any]]) -> list[Any]:
    if callable(key):
        return list(key(body))
    if isinstance(body, list):
        return body
    return list((body or {}).get(key) or [])


class HttpClient:
    """JSON over httpx for one server, with the retry, failure, auth and redaction rules of this module.

    ``name`` goes into messages ("Label Studio GET /api/projects/3/ failed with HTTP 404: ..."),
    ``error_hints`` adds a hint per status code. ``transport`` replaces httpx's (fault injection in tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str = "The server",
        auth: httpx.Auth | None = None,
        secrets: Iterable[str | Secret | None] = (),
        allow_http: bool = False,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retry_for: float = 120.0,
        unreachable_for: float = 8.0,
        max_attempts: int = 30,
        retry_status: Collection[int] = RETRY_STATUS,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        keep_cookies: bool = True,
        error_hints: Mapping[int, str] | None = None,
        api_prefix: str = "",
    ) -> None:
        self.base_url = check_server_url(base_url, allow_http=allow_http, source=f"{name} URL")
        self.name = name
        self.redactor = Redactor(secrets)
        if isinstance(auth, _SecretAuth):
            auth.bind(self.redactor)
        self.auth = auth
        self.retry_for, self.unreachable_for = retry_for, unreachable_for
        self.connect_timeout = connect_timeout
        self.max_attempts = max_attempts
        self.retry_status = frozenset(retry_status)
        self.error_hints = dict(error_hints or {})
        #: retries so far (tests and reports read it)
        self.retries = 0
        #: whether the server ever answered: before that, connection failures fail fast
        self.reached = False
        # A bare CookieJar (httpx copies a Cookies object into a jar of its own, losing the policy).
        cookies = None if keep_cookies else CookieJar(policy=_NoCookies())
        self._http = httpx.Client(
            base_url=self.base_url + api_prefix,
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            headers={"Accept": "application/json", **(headers or {})},
            cookies=cookies,
            follow_redirects=False,
        )

    # -- plumbing ---------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r}, name={self.name!r})"

    def redact(self, text: str) -> str:
        return self.redactor(text)

    def add_secret(self, secret: str | Secret | None) -> None:
        self.redactor.add(secret)

    @property
    def transport(self) -> httpx.BaseTransport:
        return self._http._transport

    @transport.setter
    def transport(self, value: httpx.BaseTransport) -> None:
        self._http._transport = value

    def excerpt(self, response: httpx.Response, limit: int = EXCERPT_CHARS) -> str:
        return excerpt(response_text(response), self.redactor, limit)

    def reason(self, response: httpx.Response, limit: int = 500) -> str:
        """The server's words for a refusal (:func:`refusal_words`), redacted first, then cut."""
        return excerpt(refusal_words(response), self.redactor, limit)

    def error(self, response: httpx.Response, what: str) -> AdapterError:
        """A token-free :class:`AdapterError` for a refused request, with the body's excerpt and a hint."""
        hint = self.error_hints.get(response.status_code, "")
        return AdapterError(self.redact(
            f"{self.name} {what} failed with HTTP {response.status_code}: {self.excerpt(response)}{hint}"))

    def _where(self, request: httpx.Request | None) -> str:
        url = request.url if request is not None else httpx.URL(self.base_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        return f"{url.host}:{port}"

    # -- sending ------------------------------------------------------------------------------------------
    def send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        stream: bool = False,
        reconcile: Callable[[], Any] | None = None,
        retry_status: Collection[int] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with the retry rules and return whatever status came back (see :meth:`request`)."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        statuses = self.retry_status if retry_status is None else frozenset(retry_status)
        started = time.monotonic()
        last: dict[str, httpx.Request] = {}

        def attempt() -> httpx.Response:
            request = self._http.build_request(method, path, **kwargs)
            last["request"] = request
            try:
                response = self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                kind = _connect_kind(exc)
                if kind == "dns":
                    raise self._unreachable(request, kind) from None
                raise _Retry(_UNREACHABLE_WHY[kind], kind=kind) from None
            except httpx.PoolTimeout:
                raise _Retry("connection pool busy", kind="connect") from None
            except httpx.TransportError as exc:
                reason = f"connection lost ({type(exc).__name__})"
                if not idempotent:
                    raise self._ambiguous(method, path, reason, reconcile) from None
                raise _Retry(reason) from None
            self.reached = True
            code = response.status_code
            if code in statuses:
                if not idempotent and code != 429:  # a 5xx to a write: it may have been applied
                    detail = self.excerpt(response)
                    response.close()
                    raise self._ambiguous(method, path, f"HTTP {code}: {detail}", reconcile)
                if stream:
                    response.read()
                raise _Retry(f"HTTP {code}", kind="status", response=response, retry_after=_retry_after(response))
            return response

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retry),
            wait=self._wait,
            stop=lambda rs: self._stop(rs, started),
            before_sleep=lambda rs: self._log_retry(rs, method, path),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retry as exc:
            if exc.response is not None:
                return exc.response  # the last answer, for the caller to turn into an error
            if exc.kind in _UNREACHABLE_WHY:
                raise self._unreachable(last.get("request"), exc.kind) from None
            raise AdapterError(self.redact(
                f"{self.name} at {self.base_url} failed {method} {path} after {self.retries} retries: {exc.reason}"
            )) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: Collection[int] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; a non-2xx answer not in ``ok`` raises a token-free :class:`AdapterError`.

        ``idempotent`` (default: by method) decides whether a request that may have been applied is sent
        again; ``reconcile`` is called when a non-idempotent one may have been applied, just before
        :class:`AmbiguousWrite` is raised. Other keywords go to httpx (``params``, ``json``, ``files`` ...).
        """
        response = self.send(method, path, **kwargs)
        if response.is_success or response.status_code in ok:
            return response
        raise self.error(response, f"{method.upper()} {path}")

    def server_time(self, path: str = "/") -> datetime:
        """The server's clock, from the ``Date`` header of a GET of ``path`` (one-second resolution), or this
        machine's (UTC) when the answer carries none: a watermark on the server's clock is safe from skew
        between the machines."""
        response = self.request("GET", path)
        try:
            return parsedate_to_datetime(response.headers["date"])
        except (KeyError, TypeError, ValueError):
            return datetime.now(timezone.utc)

    def get_json(self, path: str, params: ParamsArg = None, **kwargs: Any) -> Any:
        return self.request("GET", path, params=_params(params) or None, **kwargs).json()

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        response = self.send(method, path, stream=True, **kwargs)
        try:
            if not response.is_success:
                response.read()
                raise self.error(response, f"{method.upper()} {path}")
            yield response
        finally:
            response.close()

    def stream_json_array(self, method: str, path: str, *, attempts: int = 20, what: str = "The download",
                          on_resume: Callable[[Exception], None] | None = None, **kwargs: Any) -> Iterator[Any]:
        """The items of a JSON array body, parsed as they arrive (one item in memory at a time).

        When the connection breaks off mid-body (a server restart), the request is sent again and the items
        already yielded are skipped: use it for bodies that do not change between requests (a snapshot
        export). ``on_resume`` is called with the error before each new attempt.
        """
        done = 0
        last: Exception | None = None
        for _attempt in range(attempts):
            try:
                with self.stream(method, path, **kwargs) as response:
                    for item in iter_json_array(response.iter_bytes(1 << 16), skip=done, what=what):
                        done += 1
                        yield item
                return
            except (AdapterError, httpx.TransportError, OSError) as exc:
                # AdapterError: the retried request gave up, or the body ended early; TransportError: it broke off
                last = exc
                if on_resume is not None:
                    on_resume(exc)
        raise AdapterError(f"{what} kept failing after {attempts} attempts: {self.redact(str(last))}")

    # -- retry policy ---------------------------------------------------------------------------------------
    def _wait(self, rs: tenacity.RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        if isinstance(exc, _Retry) and exc.retry_after is not None:
            return min(exc.retry_after, 60.0)
        return min(8.0, 0.25 * 2 ** (rs.attempt_number - 1)) * (0.75 + random.random() / 2)

    def _stop(self, rs: tenacity.RetryCallState, started: float) -> bool:
        if rs.attempt_number >= self.max_attempts:
            return True
        exc = rs.outcome.exception() if rs.outcome is not None else None
        kind = exc.kind if isinstance(exc, _Retry) else "lost"
        # A server that never answered is probably not running: give up within seconds, not minutes.
        budget = self.unreachable_for if kind in _UNREACHABLE_WHY and not self.reached else self.retry_for
        next_try = rs.upcoming_sleep + (self.connect_timeout if kind == "timeout" else 0.0)
        return time.monotonic() - started + next_try > budget

    def _log_retry(self, rs: tenacity.RetryCallState, method: str, path: str) -> None:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        reason = exc.reason if isinstance(exc, _Retry) else type(exc).__name__
        if isinstance(exc, _Retry) and exc.response is not None:
            exc.response.close()
        self.retries += 1
        log.warning(self.redact(f"retrying {method} {path} in {rs.upcoming_sleep:.1f}s ({reason}), "
                                f"attempt {rs.attempt_number + 1}/{self.max_attempts}"))

    def _unreachable(self, request: httpx.Request | None, kind: str) -> ServerUnreachableError:
        return ServerUnreachableError(self.redact(
            f"cannot reach {self._where(request)} ({_UNREACHABLE_WHY[kind]}): is the server running?"))

    def _ambiguous(self, method: str, path: str, reason: str, reconcile: Callable[[], Any] | None
                   ) -> AmbiguousWrite:
        message = f"{self.name} {method} {path}: {reason}; the write may or may not have been applied"
        reconciled: Any = None
        error: BaseException | None = None
        if reconcile is not None:
            try:
                reconciled = reconcile()
            except Exception as exc:  # reported on the exception; the ambiguity stays the caller's to settle
                error = exc
                message += f" (checking failed: {exc})"
        return AmbiguousWrite(self.redact(message), method=method, path=path, reconciled=reconciled,
                              reconcile_error=error)

    # -- pagination ---------------------------------------------------------------------------------------
    def pages_offset(
        self,
        path: str,
        *,
        limit: int,
        params: ParamsArg = None,
        items: str | Callable[[Any], list[Any]] = "items",
        method: str = "GET",
        offset_param: str = "offset",
        limit_param: str = "limit",
        start: int = 0,
        **kwargs: Any,
    ) -> Iterator[Page]:
        """Pages of an offset/limit listing, until a short page."""
        offset = start
        base = _params(params)
        while True:
            body = self.request(method, path, params=[*base, (offset_param, offset), (limit_param, limit)],
                                **kwargs).json()
            page = Page(_items(body, items), body)
            yield page
            if len(page.items) < limit:
                return
            offset += len(page.items)

    def items_offset(
        self,
        path: str,
        *,
        expected: int,
        params: ParamsArg = None,
        items: str | Callable[[Any], list[Any]] = "items",
        workers: int = 4,
        limit: int = 1000,
        offset_param: str = "offset",
        limit_param: str = "limit",
    ) -> list[Any]:
        """All items of an offset/limit listing about ``expected`` long (a count read elsewhere, say a cheap
        counter endpoint): those are fetched as ``workers`` pages side by side, which a server with several
        workers serves in parallel; should the listing be longer, the rest follows page by page of ``limit``."""
        size = max(1, -(-expected // workers)) if expected > 0 else limit
        starts = list(range(0, max(expected, 1), size))
        base = _params(params)

        def page(offset: int) -> list[Any]:
            return _items(self.get_json(path, [*base, (offset_param, offset), (limit_param, size)]), items)

        found = [item for batch in parallel_map(page, starts, workers=workers) for item in batch]
        if len(found) >= len(starts) * size:  # as long as expected, or longer: read on from there
            found.extend(self.iter_items(self.pages_offset(path, params=base, limit=limit, items=items,
                                                           offset_param=offset_param, limit_param=limit_param,
                                                           start=len(found))))
        return found

    def pages_numbered(
        self,
        path: str,
        *,
        page_size: int,
        params: ParamsArg = None,
        items: str | Callable[[Any], list[Any]] = "results",
        page_param: str = "page",
        size_param: str = "page_size",
        first: int = 1,
        end_status: Collection[int] = (404,),
    ) -> Iterator[Page]:
        """Pages of a page-number listing, until a short page, a body without ``next``, or ``end_status``
        (Label Studio answers 404 "Invalid page" past the end)."""
        number = first
        base = _params(params)
        while True:
            response = self.request("GET", path, params=[*base, (page_param, number), (size_param, page_size)],
                                    ok=end_status)
            if response.status_code in end_status and not response.is_success:
                return
            body = response.json()
            page = Page(_items(body, items), body)
            yield page
            if len(page.items) < page_size or (isinstance(body, dict) and "next" in body and not body["next"]):
                return
            number += 1

    def pages_next(
        self,
        path: str,
        *,
        params: ParamsArg = None,
        items: str | Callable[[Any], list[Any]] = "results",
    ) -> Iterator[Page]:
        """Pages linked by ``next`` URLs. Only the link's path and query are used, against this client's
        base URL: credentials never follow a link to another host (a proxy may also rewrite hosts)."""
        body = self.get_json(path, params)
        while True:
            page = Page(_items(body, items), body)
            yield page
            link = body.get("next") if isinstance(body, dict) else None
            if not link:
                return
            parts = urlsplit(str(link))
            # Absolute on this base, so an api_prefix in the client's base URL is not applied twice.
            body = self.request("GET", self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")).json()

    def iter_items(self, pages: Iterable[Page]) -> Iterator[Any]:
        for page in pages:
            yield from page.items

    @staticmethod
    def unique_items(
        listing: Callable[[], Iterable[Page]],
        *,
        key: Callable[[Any], str] = lambda item: str(item["id"]),
        total: Callable[[Any], Any] = lambda body: body.get("total") if isinstance(body, dict) else None,
        passes: int = 3,
        on_missing: Callable[[int], None] | None = None,
    ) -> Iterator[Any]:
        """Every item of a listing whose order may shift between pages (a sort key with ties, which PostgreSQL
        may break differently per query), each once by ``key``. ``listing()`` starts the pages again; when fewer
        items came than the pages' ``total`` says, another pass reads them, up to ``passes``; ``on_missing(n)``
        hears of the ``n`` still missing after that."""
        seen: set[str] = set()
        expected: int | None = None
        for _ in range(passes):
            for page in listing():
                reported = total(page.body)
                expected = int(reported) if reported is not None else expected
                for item in page.items:
                    if key(item) not in seen:
                        seen.add(key(item))
                        yield item
            if expected is None or len(seen) >= expected:
                return
        if on_missing is not None and expected is not None and len(seen) < expected:
            on_missing(expected - len(seen))
