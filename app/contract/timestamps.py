"""The contract's timestamp text: ISO 8601 with `Z` for UTC, as every record writes it."""

from __future__ import annotations

from datetime import datetime

__all__ = ["iso_z"]


def iso_z(moment: datetime, timespec: str = "auto") -> str:
    """`moment` as ISO 8601 text, `+00:00` written `Z` (the moment is not converted)."""
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
