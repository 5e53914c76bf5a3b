"""One real Label Studio server per test run (annobridge_labelstudio.testserver), stopped by PID."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from ls_helpers import LabelStudioServer

_titles = itertools.count(1)


@pytest.fixture(scope="session")
def ls_server() -> Iterator[Any]:
    with LabelStudioServer() as server:
        yield server


@pytest.fixture
def new_project_url() -> Iterator[str]:
    """A ``projects/new?title=`` path with a title no other test uses."""
    yield f"/projects/new?title=annobridge-test-{next(_titles)}"
