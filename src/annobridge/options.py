"""Typed adapter options: one pydantic model per adapter, filled from the URL, the environment and the config file.

An adapter declares what it accepts::

    class Options(AdapterOptions):
        chunk_size: int = Field(5000, ge=1, description="tasks per import request")
        timeout: float = Field(300, gt=0, description="seconds per request")
        api_key: SecretStr | None = Field(None, json_schema_extra={"env": "LABEL_STUDIO_API_KEY"})

and reads ``self.options.chunk_size``. Where a value comes from, strongest first: the URL's query string
(``?chunk_size=500``), the field's environment variable (``json_schema_extra={"env": ...}``), the
adapter's section of the config file (``[labelstudio]``), the default. A misspelt or unknown URL option,
or a value of the wrong type, is a :class:`~annobridge.errors.UsageError` naming the option and listing the
known ones, before any work starts; ``SecretStr`` values never show in a message or a ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import UsageError

__all__ = ["AdapterOptions", "parse_options"]

T = TypeVar("T", bound="AdapterOptions")


class AdapterOptions(BaseModel):
    """Base of every adapter's options model: unknown keys refused, values frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> environment variable, for the fields that declare one."""
        names: dict[str, str] = {}
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and isinstance(extra.get("env"), str):
                names[name] = str(extra["env"])
        return names

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(name, default, description) per option, for help texts and docs."""
        rows = []
        for name, info in cls.model_fields.items():
            default = "" if info.is_required() else repr(info.default)
            rows.append((name, default, info.description or ""))
        return rows


def parse_options(
    model: type[T],
    scheme: str,
    params: Mapping[str, str],
    section: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> T:
    """Build ``model`` from URL ``params`` over environment variables over the config ``section``.

    Config-file keys the model does not know are left alone (the section also holds credentials read
    elsewhere).
    """
    env = os.environ if env is None else env
    known = set(model.model_fields)
    unknown = sorted(set(params) - known)
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise UsageError(
            f"{scheme}: unknown URL option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (known: {names})"
        )
    values: dict[str, Any] = {k: v for k, v in (section or {}).items() if k in known}
    for name, variable in model.env_names().items():
        if env.get(variable):
            values[name] = env[variable]
    values.update({k: v for k, v in params.items() if k in known})
    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'options'}: {error['msg']}" for error in exc.errors()
        )
        raise UsageError(f"{scheme}: bad option value: {problems}") from None
