"""Label Studio's flavour of :class:`annobridge.http.HttpClient`: which auth a key means, and its error hints.

A key that parses as a JWT is a personal access token: it is traded for short-lived access tokens (sent as
``Bearer``) and refreshed; anything else is a legacy token sent as ``Token``. Retries, fast failure, ambiguous
writes and redaction are the HTTP layer's (see :mod:`annobridge.http`).
"""

from __future__ import annotations

import httpx

from annobridge.http import AmbiguousWrite, HttpClient, JWTRefreshAuth, StaticTokenAuth, is_jwt
from annobridge.kit import Secret, UsageError

__all__ = ["AmbiguousWrite", "LabelStudioClient", "is_jwt"]

HINTS = {
    401: (" - check LABEL_STUDIO_API_KEY; a legacy token also needs legacy tokens enabled for the organisation "
          "(LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true or Organization > API Tokens Settings)"),
    404: " - no such project or object on this server",
}


class LabelStudioClient(HttpClient):
    def __init__(
        self,
        base_url: str,
        api_key: Secret | None,
        *,
        timeout: float = 120.0,
        retry_for: float = 180.0,
        transport: httpx.BaseTransport | None = None,
        allow_http: bool = False,
    ) -> None:
        if not api_key:
            raise UsageError(
                "Label Studio needs an API key: set LABEL_STUDIO_API_KEY (legacy token or personal access token, "
                "from Account & Settings in the UI) or api_key in the [labelstudio] section of the config file."
            )
        self.pat = is_jwt(api_key.reveal())
        auth: httpx.Auth
        if self.pat:
            auth = JWTRefreshAuth(api_key, base_url.rstrip("/") + "/api/token/refresh/", name="Label Studio")
        else:
            auth = StaticTokenAuth(api_key)
        super().__init__(base_url, name="Label Studio", auth=auth, allow_http=allow_http, timeout=timeout,
                         connect_timeout=5.0, retry_for=retry_for, transport=transport, error_hints=HINTS)
