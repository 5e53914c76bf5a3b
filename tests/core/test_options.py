"""Typed adapter options: URL over environment over config file; typos and bad values refused by name."""

from __future__ import annotations

import pytest
from pydantic import Field, SecretStr

from annobridge.errors import UsageError
from annobridge.options import AdapterOptions, parse_options


class ToolOptions(AdapterOptions):
    chunk_size: int = Field(100, ge=1, description="items per request")
    mode: str = Field("fast", description="how")
    token: SecretStr | None = Field(None, json_schema_extra={"env": "TOOL_TOKEN"})


def test_precedence_url_over_env_over_config_over_default() -> None:
    assert parse_options(ToolOptions, "tool", {}, {}, env={}).chunk_size == 100
    assert parse_options(ToolOptions, "tool", {}, {"chunk_size": 7}, env={}).chunk_size == 7
    opts = parse_options(ToolOptions, "tool", {"chunk_size": "9"}, {"chunk_size": 7, "password": "x"}, env={})
    assert opts.chunk_size == 9  # the URL's string is read as the field's type; unknown config keys are left alone
    token = parse_options(ToolOptions, "tool", {}, {"token": "from-config"}, env={"TOOL_TOKEN": "from-env"}).token
    assert token is not None and token.get_secret_value() == "from-env"


def test_a_misspelt_option_is_refused_with_the_known_ones() -> None:
    with pytest.raises(UsageError) as err:
        parse_options(ToolOptions, "tool", {"chunksize": "5"}, {}, env={})
    assert str(err.value) == "tool: unknown URL option chunksize (known: chunk_size, mode, token)"


def test_a_bad_value_names_the_option_and_never_the_secret() -> None:
    with pytest.raises(UsageError, match=r"tool: bad option value: chunk_size: Input should be greater than or equal"):
        parse_options(ToolOptions, "tool", {"chunk_size": "0"}, {}, env={})
    with pytest.raises(UsageError) as err:
        parse_options(ToolOptions, "tool", {"chunk_size": "s3cr3t-value"}, {}, env={})
    assert "s3cr3t-value" not in str(err.value)
    opts = parse_options(ToolOptions, "tool", {}, {}, env={"TOOL_TOKEN": "tok-123456"})
    assert "tok-123456" not in repr(opts) and "tok-123456" not in str(opts)


def test_describe_lists_defaults_and_help() -> None:
    assert ("chunk_size", "100", "items per request") in ToolOptions.describe()
