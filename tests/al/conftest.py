from __future__ import annotations

import pytest
from al_helpers import load

from annobridge.model import Record


@pytest.fixture(scope="session")
def sms() -> list[Record]:
    return load("sms_spam_small.jsonl")


@pytest.fixture(scope="session")
def fashion() -> list[Record]:
    return load("fashion_brands_small.jsonl")
