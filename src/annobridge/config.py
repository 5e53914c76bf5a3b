"""Where adapters find credentials: environment variables first, then a TOML file.

The file is ``$ANNOBRIDGE_CONFIG`` or ``~/.config/annobridge/config.toml`` with one
table per adapter scheme::

    [labelstudio]
    url = "http://127.0.0.1:8080"
    api_key = "..."

Secrets are wrapped in :class:`Secret`, whose ``str`` and ``repr`` never show the value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


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
