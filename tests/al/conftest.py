"""The data fixtures live in al_helpers, so tests/ray can use the same ones."""

from __future__ import annotations

from al_helpers import fashion, sms

__all__ = ["fashion", "sms"]
