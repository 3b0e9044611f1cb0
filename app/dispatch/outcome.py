"""The outcome of one delivery attempt, as the sender reports it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.contract.results import ErrorKind

__all__ = ["AttemptOutcome", "is_2xx"]


def is_2xx(status: int) -> bool:
    """Whether an HTTP status is a success (2xx)."""
    return 200 <= status < 300


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """One attempt: HTTP status or error, timing, truncated body; never holds a secret."""

    at: datetime
    duration_seconds: float
    status: int | None = None
    error_kind: ErrorKind = ErrorKind.NONE
    error: str | None = None
    response_body: str | None = None
    response_truncated: bool = False
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx response."""
        return self.status is not None and is_2xx(self.status)
