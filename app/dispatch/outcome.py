"""The outcome of one delivery attempt, as the sender reports it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["AttemptOutcome", "ErrorKind"]


class ErrorKind(StrEnum):
    """What went wrong before or instead of an HTTP response."""

    NONE = "none"  # an HTTP response arrived (any status)
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    BLOCKED = "blocked"  # refused by the network policy
    SECRET = "secret"  # a named secret is not configured
    INVALID_JOB = "invalid_job"
    ENDPOINT_GONE = "endpoint_gone"  # not sent: an earlier attempt got 410 at this revision


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
        return self.status is not None and 200 <= self.status < 300
