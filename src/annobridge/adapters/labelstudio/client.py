"""A small REST client for Label Studio: auth (legacy token or personal access token), retries, redaction.

Retry rules, so that nothing is created twice:

* a request that never reached the server (connect error/timeout) is always retried;
* a request that may have been applied (read error, 5xx, dropped connection) is retried only when
  ``idempotent``; otherwise :class:`MaybeAppliedError` is raised and the caller checks what the server holds
  before sending the rest again (see ``LabelStudioAdapter._import_chunk``).

Retries back off exponentially (capped, with jitter) until ``retry_for`` seconds have passed, which covers a
server restart.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from ...config import Secret
from ...errors import AdapterError, UsageError
from .labelconfig import MaybeAppliedError

__all__ = ["LabelStudioClient", "MaybeAppliedError", "is_jwt"]

RETRY_STATUS = {429, 500, 502, 503, 504}


def is_jwt(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 3 and value.startswith("eyJ")


def _jwt_exp(token: str) -> float | None:
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return float(json.loads(base64.urlsafe_b64decode(payload))["exp"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class LabelStudioClient:
    def __init__(
        self,
        base_url: str,
        api_key: Secret | None,
        *,
        timeout: float = 120.0,
        retry_for: float = 180.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise UsageError(
                "Label Studio needs an API key: set LABEL_STUDIO_API_KEY (legacy token or personal access token, "
                "from Account & Settings in the UI) or api_key in the [labelstudio] section of the config file."
            )
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._pat = is_jwt(api_key.reveal())
        self._access: str | None = None
        self._access_exp = 0.0
        self.retry_for = retry_for
        self.retries = 0  # how many retries happened (tests and reports read it)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    # -- auth ------------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        if not self._pat:
            return {"Authorization": f"Token {self._key.reveal()}"}
        if self._access is None or time.time() > self._access_exp - 30:
            self._refresh()
        return {"Authorization": f"Bearer {self._access}"}

    def _refresh(self) -> None:
        """Trade the personal access token (a refresh JWT) for a short-lived access token."""
        resp = self._send("POST", "/api/token/refresh/", json={"refresh": self._key.reveal()}, auth=False)
        if resp.status_code != 200:
            raise AdapterError(
                f"Label Studio refused the personal access token (HTTP {resp.status_code}): {self._excerpt(resp)}"
            )
        access = resp.json().get("access")
        if not access:
            raise AdapterError("Label Studio's token refresh returned no access token.")
        self._access = str(access)
        self._access_exp = _jwt_exp(self._access) or time.time() + 240

    # -- requests --------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        for secret in (self._key.reveal(), self._access):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _excerpt(self, resp: httpx.Response) -> str:
        try:
            text = resp.text
        except (httpx.HTTPError, UnicodeDecodeError):
            text = ""
        return self._redact(" ".join(text.split())[:300])

    def _send(self, method: str, path: str, *, auth: bool = True, idempotent: bool = True, stream: bool = False,
              **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        refreshed = False
        extra_headers = dict(kwargs.pop("headers", None) or {})
        while True:
            try:
                headers = dict(extra_headers)
                if auth:
                    headers.update(self._auth())
                request = self._http.build_request(method, path, headers=headers, **kwargs)
                resp = self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                reason: str = f"cannot connect ({type(exc).__name__})"
            except httpx.TransportError as exc:
                reason = f"connection lost ({type(exc).__name__})"
                if not idempotent:
                    raise MaybeAppliedError(f"{method} {path}: {reason}") from None
            else:
                if resp.status_code == 401 and auth and self._pat and not refreshed:
                    resp.close()
                    refreshed = True
                    self._access = None
                    continue
                if resp.status_code not in RETRY_STATUS:
                    return resp
                reason = f"HTTP {resp.status_code}"
                if stream:
                    resp.read()
                if not idempotent and resp.status_code != 429:
                    raise MaybeAppliedError(f"{method} {path}: {reason}: {self._excerpt(resp)}")
                resp.close()
            attempt += 1
            delay = min(8.0, 0.25 * 2**attempt) * (0.75 + random.random() / 2)
            if time.monotonic() + delay > deadline:
                raise AdapterError(
                    f"Label Studio at {self.base_url} failed {method} {path} after {attempt} tries: {reason}"
                )
            self.retries += 1
            time.sleep(delay)

    def request(self, method: str, path: str, *, idempotent: bool | None = None, ok: tuple[int, ...] = (),
                **kwargs: Any) -> httpx.Response:
        """Send a request; raise a clear :class:`AdapterError` (token-free) on a non-2xx answer."""
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE", "PATCH")
        resp = self._send(method, path, idempotent=idempotent, **kwargs)
        if resp.is_success or resp.status_code in ok:
            return resp
        raise self.error(resp, f"{method} {path}")

    def error(self, resp: httpx.Response, what: str) -> AdapterError:
        hint = ""
        if resp.status_code == 401:
            hint = (" - check LABEL_STUDIO_API_KEY; a legacy token also needs legacy tokens enabled for the "
                    "organisation (LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true or Organization > API Tokens Settings)")
        elif resp.status_code == 404:
            hint = " - no such project or object on this server"
        return AdapterError(f"Label Studio {what} failed with HTTP {resp.status_code}: {self._excerpt(resp)}{hint}")

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        resp = self._send(method, path, stream=True, **kwargs)
        try:
            if not resp.is_success:
                resp.read()
                raise self.error(resp, f"{method} {path}")
            yield resp
        finally:
            resp.close()
