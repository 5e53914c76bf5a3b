"""Exceptions with messages meant for users (never containing credentials)."""

from __future__ import annotations


class AnnobridgeError(Exception):
    """Base class: the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class UsageError(AnnobridgeError):
    """The user asked for something that cannot work (bad URL, unknown option)."""

    exit_code = 2


class UnknownAdapterError(UsageError):
    pass


class MissingDependencyError(UsageError):
    """An adapter needs an optional extra that is not installed."""

    def __init__(self, adapter: str, module: str, extra: str) -> None:
        self.adapter, self.module, self.extra = adapter, module, extra
        #: the command that fixes it, quoted for the shell (the brackets must survive)
        self.install_hint = f"pip install 'annobridge[{extra}]'"
        super().__init__(f"The {adapter} adapter needs the '{module}' package: {self.install_hint}")


class AdapterError(AnnobridgeError):
    """The tool refused or failed an operation."""


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
