"""A job's retry state, carried in Kafka headers of its retry-topic records."""

# The record value stays the job exactly as received, so a retry topic can be read
# (and replayed) with any tool that reads action jobs; what the dispatcher needs to
# continue lives in headers.

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError

from app.contract.results import ActionResult
from app.serialization import JSONDecodeError, dumps, loads

__all__ = [
    "ATTEMPTS_HEADER",
    "DUE_HEADER",
    "FIRST_ATTEMPT_HEADER",
    "HISTORY_HEADER",
    "ORIGIN_HEADER",
    "RetryState",
]

ATTEMPTS_HEADER = "hookstream-attempts"
DUE_HEADER = "hookstream-due-ms"
FIRST_ATTEMPT_HEADER = "hookstream-first-attempt-ms"
HISTORY_HEADER = "hookstream-history"
ORIGIN_HEADER = "hookstream-origin"

_HISTORY: TypeAdapter[list[ActionResult]] = TypeAdapter(list[ActionResult])

Headers = Sequence[tuple[str, bytes]]


def _ms(when: datetime) -> bytes:
    return str(int(when.timestamp() * 1000)).encode()


def _int(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def _when(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class RetryState:
    """Attempts made so far, when the first was made, when the next is due, and their results."""

    attempts: int = 0
    first_attempt_at: datetime | None = None
    due_at: datetime | None = None
    history: list[ActionResult] = field(default_factory=list)
    origin: str | None = None

    def to_headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the retry record."""
        headers = [(ATTEMPTS_HEADER, str(self.attempts).encode())]
        if self.first_attempt_at is not None:
            headers.append((FIRST_ATTEMPT_HEADER, _ms(self.first_attempt_at)))
        if self.due_at is not None:
            headers.append((DUE_HEADER, _ms(self.due_at)))
        if self.origin is not None:
            headers.append((ORIGIN_HEADER, self.origin.encode()))
        headers.append((HISTORY_HEADER, dumps([r.model_dump(mode="json") for r in self.history])))
        return headers

    @classmethod
    def from_headers(cls, headers: Headers | None) -> RetryState:
        """The state a record carries; a record without headers is a first attempt."""
        found = dict(headers or ())
        history: list[ActionResult] = []
        raw_history = found.get(HISTORY_HEADER)
        if raw_history:
            try:
                history = _HISTORY.validate_python(loads(raw_history))
            except (JSONDecodeError, ValidationError):
                history = []  # lost history only shortens the dead letter, never the retries
        origin = found.get(ORIGIN_HEADER)
        return cls(
            attempts=max(_int(found.get(ATTEMPTS_HEADER)) or 0, 0),
            first_attempt_at=_when(_int(found.get(FIRST_ATTEMPT_HEADER))),
            due_at=_when(_int(found.get(DUE_HEADER))),
            history=history,
            origin=origin.decode(errors="replace") if origin else None,
        )

    @staticmethod
    def due_ms(headers: Headers | None) -> int | None:
        """Only the due time (epoch ms) of a record, read without parsing the history."""
        for key, value in headers or ():
            if key == DUE_HEADER:
                return _int(value)
        return None
