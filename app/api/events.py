"""Events received over HTTP: the same parse_event as the workers, errors as HTTP statuses."""

from __future__ import annotations

from typing import Any

from app.api.problems import ApiError
from app.contract.dead_letters import DeadLetterCode
from app.contract.events import Event, parse_event
from app.errors import InvalidEventError

__all__ = ["event_error_status", "event_refusal", "parse_http_event"]

# Not a JSON object at all: 400. Too large: 413. An object with bad fields: 422.
_STATUS = {
    DeadLetterCode.EMPTY: 400,
    DeadLetterCode.NOT_UTF8: 400,
    DeadLetterCode.NOT_JSON: 400,
    DeadLetterCode.NOT_OBJECT: 400,
    DeadLetterCode.TOO_LARGE: 413,
    DeadLetterCode.UNKNOWN_EVENT_TYPE: 422,
    DeadLetterCode.MISSING_FIELD: 422,
    DeadLetterCode.INVALID_FIELD: 422,
}


def event_error_status(code: str) -> int:
    """The HTTP status of a dead-letter code."""
    try:
        return _STATUS[DeadLetterCode(code)]
    except ValueError:
        return 422


def parse_http_event(raw: bytes, max_bytes: int) -> tuple[Event, dict[str, Any]]:
    """Validate an event from a request body; raises ApiError with the reason."""
    try:
        return parse_event(raw, max_bytes)
    except InvalidEventError as exc:
        raise event_refusal(exc) from None


def event_refusal(exc: InvalidEventError, what: str = "invalid event") -> ApiError:
    """The 400 / 413 / 422 answer to a refused event, naming each bad field."""
    status = event_error_status(exc.code)
    errors = _field_errors(exc) if status == 422 else []
    return ApiError(status, f"{what} ({exc.code}): {exc.reason}", errors=errors)


def _field_errors(exc: InvalidEventError) -> list[tuple[str, str]]:
    # parse_event joins "path: message" pairs with "; " (an unknown type is one message).
    parts = (
        [exc.reason] if exc.code == DeadLetterCode.UNKNOWN_EVENT_TYPE else exc.reason.split("; ")
    )
    out = []
    for part in parts:
        field, sep, reason = part.partition(": ")
        out.append((field, reason) if sep else ("", part))
    return out
