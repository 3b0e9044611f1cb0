"""Field types the contract's models share, and how their validation errors read."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError

__all__ = [
    "HIDDEN_CHARACTERS",
    "RFC3339_PATTERN",
    "EventId",
    "HeaderName",
    "Label",
    "Name",
    "SecretName",
    "Slug",
    "Timestamp",
    "TopicName",
    "Version",
    "error_message",
    "error_path",
    "field_errors",
    "short_repr",
]


# Every Unicode control and format character that can hide in a key (categories Cc,
# Cf, Zl, Zp of Unicode 15): C0, DEL, C1, the soft hyphen, bidirectional controls and
# isolates, zero-width characters, the BOM, interlinear annotation, tag characters.
# Lone surrogates (Cs) never get this far: the JSON reader refuses them.
HIDDEN_CHARACTERS = (
    r"\u0000-\u001F\u007F-\u009F\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890-\u0891"
    r"\u08E2\u180E\u200B-\u200F\u2028-\u202E\u2060-\u2064\u2066-\u206F\uFEFF"
    r"\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3"
    r"\U0001D173-\U0001D17A\U000E0001\U000E0020-\U000E007F"
)
_NAME_PATTERN = rf"^[^/:{HIDDEN_CHARACTERS}]+$"
# Labels (alias, tag, type, author) are free text: control characters (C0, DEL, C1)
# are refused, format characters allowed (a zero-width joiner builds an emoji).
_LABEL_PATTERN = r"^[^\u0000-\u001F\u007F-\u009F]+$"
_SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
_SECRET_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"
_HEADER_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$"

# Pattern constraints run in pydantic's Rust core (fast); these say what they mean.
_PATTERN_MESSAGES = {
    _NAME_PATTERN: "must not contain '/', ':' or control or format characters",
    _LABEL_PATTERN: "must not contain control characters",
    _SLUG_PATTERN: "must be a slug: 1 to 128 of a-z 0-9 . _ -, starting with a letter or digit",
    _SECRET_PATTERN: "must be the NAME of a secret (letters, digits, _), never its value",
    _TOPIC_PATTERN: "must be a Kafka topic name: 1 to 249 of A-Z a-z 0-9 . _ -",
    _HEADER_PATTERN: "must be an HTTP header name",
}


def _printable(value: str) -> str:
    if not value.isprintable():
        raise PydanticCustomError("printable", "must be printable characters only")
    return value


#: RFC 3339 section 5.6 `date-time`: full date, `T`, full time with seconds, optional
#: fraction, and `Z` or a `+hh:mm`/`-hh:mm` offset (upper or lower case T and Z). The
#: offset is optional here only so that pydantic's "should have timezone info" names
#: a missing one; AwareDatetime refuses it.
RFC3339_PATTERN: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def _timestamp(value: Any) -> Any:
    # Lax pydantic would read a number as seconds since 1970, and an ISO 8601 text
    # without seconds or with a `+0530` offset; the contract is RFC 3339 only.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 timestamp string")
    if RFC3339_PATTERN.fullmatch(value):
        return value
    raise PydanticCustomError(
        "datetime_type",
        "Input should be a valid datetime: RFC 3339 such as 2026-11-26T10:00:00Z "
        "(date, T, time with seconds, Z or a +hh:mm offset)",
    )


Name = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_NAME_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_LABEL_PATTERN)]
EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_printable)
]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp)]
Version = Annotated[StrictInt, Field(ge=0)]
SecretName = Annotated[str, StringConstraints(pattern=_SECRET_PATTERN, max_length=128)]
Slug = Annotated[str, StringConstraints(pattern=_SLUG_PATTERN)]
HeaderName = Annotated[str, StringConstraints(pattern=_HEADER_PATTERN)]


def _topic(value: str) -> str:
    if value in (".", "..") or value.startswith("__"):
        raise PydanticCustomError("topic", "'.', '..' and names starting with '__' are reserved")
    return value


TopicName = Annotated[str, StringConstraints(pattern=_TOPIC_PATTERN), AfterValidator(_topic)]


_UNION_FIELDS = {
    "scope": frozenset({"project", "registry", "artifact_collection", "entity"}),
    "action": frozenset({"webhook", "notification", "queue_job", "kafka", "no_op"}),
}


def error_path(error: ErrorDetails) -> str:
    """Dotted path of a validation error, without the union member pydantic adds."""
    loc = [str(part) for part in error["loc"]]
    if len(loc) > 1 and loc[1] in _UNION_FIELDS.get(loc[0], ()):
        del loc[1]
    extra = (error.get("ctx") or {}).get("path")
    if extra:
        loc.append(str(extra))
    return ".".join(loc)


def error_message(error: ErrorDetails) -> str:
    """Message of a validation error; pattern mismatches say what the pattern means."""
    if error["type"] == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in _PATTERN_MESSAGES:
            return _PATTERN_MESSAGES[pattern]
    return error["msg"]


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(path, message) of each error of a ValidationError."""
    return [(error_path(error), error_message(error)) for error in exc.errors(include_url=False)]


def short_repr(value: Any) -> str:
    """repr() cut to 80 characters, for messages that quote the input."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
