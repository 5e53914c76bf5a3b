"""Exceptions with messages meant for users (never containing credentials)."""

from __future__ import annotations

from typing import Any


class AnnobridgeError(Exception):
    """Base class: the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class UsageError(AnnobridgeError):
    """The user asked for something that cannot work (bad URL, unknown option)."""

    exit_code = 2


class UnknownAdapterError(UsageError):
    pass


class MissingDependencyError(UsageError):
    """An adapter needs an optional package that is not installed.

    ``requirement`` is what to install, as pip takes it: ``"annobridge-prodigy[postgres]"``, ``"httpx>=0.27"``.
    """

    def __init__(self, adapter: str, module: str, requirement: str) -> None:
        self.adapter, self.module, self.requirement = adapter, module, requirement
        #: the command that fixes it, quoted for the shell (the brackets must survive)
        self.install_hint = f"pip install '{requirement}'"
        super().__init__(f"The {adapter} adapter needs the '{module}' package: {self.install_hint}")


class AdapterNotInstalledError(MissingDependencyError):
    """A URL names a tool whose adapter is a package of its own, and it is not installed."""

    def __init__(self, scheme: str, distribution: str, folder: str) -> None:
        super().__init__(scheme, distribution.replace("-", "_"), distribution)
        self.folder = folder
        self.args = (
            f"'{scheme}:' needs the {distribution} adapter: {self.install_hint} "
            f"(from a checkout of annobridge: pip install -e {folder})",
        )


class AdapterError(AnnobridgeError):
    """The tool refused or failed an operation."""


class AmbiguousWrite(AdapterError):
    """A write that may have been applied: the request went out, the answer never came (or was a 5xx).

    Raised by :mod:`annobridge.http` (which re-exports it); here so that an adapter can catch it without
    importing the HTTP layer (and httpx) first. ``reconciled`` is what the ``reconcile`` callable passed to
    the request returned (e.g. the ids that landed), or ``None`` when none was passed; ``reconcile_error``
    is set when reconciling itself failed.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "", reconciled: Any = None,
                 reconcile_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.method, self.path = method, path
        self.reconciled = reconciled
        self.reconcile_error = reconcile_error


class SchemaError(AdapterError):
    """Data does not fit the project's label schema (e.g. a label the project lacks)."""


class DataError(AnnobridgeError):
    """Input data is malformed."""


class ServerUnreachableError(AdapterError):
    """The tool's server cannot be reached at all (refused, no such host, timed out connecting).

    Its own exit code, so scripts can tell "start the server" from "fix the data" (1) and
    "fix the command" (2).
    """

    exit_code = 3
