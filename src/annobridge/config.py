"""Where adapters find credentials: environment variables first, then a TOML file.

The file is ``$ANNOBRIDGE_CONFIG`` or ``~/.config/annobridge/config.toml`` with one
table per adapter scheme::

    [labelstudio]
    url = "http://127.0.0.1:8080"
    api_key = "..."

Secrets are wrapped in :class:`Secret`, whose ``str`` and ``repr`` never show the value.

Server URLs follow one rule wherever they come from (the command line, an environment variable such
as ``ARGILLA_API_URL`` or the config file): https, unless the host is loopback or the URL's scheme
says ``+http`` (see :func:`check_server_url`).
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from .adapter import AdapterURL

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str | None) -> bool:
    """True for names and addresses that never leave this machine (where plain http is acceptable)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_server_url(url: str, *, allow_http: bool = False, source: str = "the server URL", scheme: str = "") -> str:
    """``url`` without a trailing slash, if it may carry credentials: https, or http to loopback, or
    http anywhere when the user said so with ``SCHEME+http://``. The one place this rule lives."""
    value = url.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source}: expected http(s)://HOST[:PORT], got {_no_userinfo(value)!r}")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        tool = scheme or "SCHEME"
        raise UsageError(
            f"{source} uses plain http to a non-loopback host ({parts.hostname}): credentials would travel "
            f"unencrypted. Use https, or write the source as {tool}+http://... to confirm plain http."
        )
    return value


def _no_userinfo(url: str) -> str:
    head, sep, rest = url.partition("//")
    return head + sep + rest.split("@", 1)[-1] if sep else url


class Secret:
    """A credential. Call :meth:`reveal` at the one place it is sent to a server."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def config_path() -> Path:
    env = os.environ.get("ANNOBRIDGE_CONFIG")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "annobridge" / "config.toml"


def load_config(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Cannot read config file {path}: {exc}") from None


class AdapterConfig:
    """Settings for one adapter: environment variables win over the config file."""

    def __init__(self, section: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> None:
        self._section = dict(section or {})
        self._env = os.environ if env is None else env

    @property
    def section(self) -> dict[str, Any]:
        """The adapter's section of the config file, as read."""
        return dict(self._section)

    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    @classmethod
    def for_scheme(cls, scheme: str) -> AdapterConfig:
        return cls(load_config().get(scheme, {}))

    def get(self, key: str, env: str | None = None, default: Any = None) -> Any:
        if env and self._env.get(env):
            return self._env[env]
        return self._section.get(key, default)

    def secret(self, key: str, env: str | None = None) -> Secret | None:
        value = self.get(key, env)
        return Secret(str(value)) if value else None

    def server_url(self, url: AdapterURL, env: str) -> str:
        """The base URL of the server ``url`` names: its host, else ``env`` or ``url`` in the config file.

        Whichever it comes from, the https rule of :func:`check_server_url` applies, and ``+http`` in the
        URL's scheme is what allows plain http to a remote host.
        """
        if url.host:
            return url.base_url()
        configured = self.get("url", env=env)
        if not configured:
            raise UsageError(
                f"{url}: no host in the URL and {env} is not set (nor url in the [{url.scheme}] config section)"
            )
        source = env if env and self._env.get(env) else f"url in the [{url.scheme}] section of {config_path()}"
        value = str(configured).strip()
        if url.transport == "https" and value.startswith("http://"):
            value = "https://" + value[len("http://"):]  # +https in the scheme wins over what was configured
        return check_server_url(value, allow_http=url.transport == "http", source=source, scheme=url.scheme)
