"""Dead letters of the event topics: the message kept byte for byte, and why it failed."""

from __future__ import annotations

import base64
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "DeadLetter",
    "DeadLetterCode",
    "DeadLetterHeader",
]


class DeadLetterCode(StrEnum):
    """Why an event went to the dead-letter topic (``error_code``)."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    UNREADABLE_HEADER = "unreadable_header"


class DeadLetterHeader(BaseModel):
    """One Kafka header of the original message."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    key: str
    value_b64: str | None
    # The key's bytes when they are not UTF-8 (`key` then shows them with U+FFFD).
    key_b64: str | None = None
    # Size of the original value; `value_truncated` marks one kept only in part so that
    # the dead letter fits its topic's record limit.
    value_size: int | None = None
    value_truncated: bool = False


class DeadLetter(BaseModel):
    """A message that could not be processed, kept byte for byte with the reason."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    value_b64: str | None
    key_b64: str | None
    headers: list[DeadLetterHeader] = Field(default_factory=list)
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    error_code: str
    failed_at: AwareDatetime
    event_id: str | None = None
    # Size of the original value; `value_truncated` marks a value kept only in part
    # because in full it could not fit in a Kafka record (see docs/decisions.md).
    value_size: int | None = None
    value_truncated: bool = False
    # The same for the key (`key_b64`), and the headers left out for lack of room.
    key_size: int | None = None
    key_truncated: bool = False
    headers_dropped: int = 0

    @staticmethod
    def encode(data: bytes | None) -> str | None:
        """Base64 of raw bytes (None stays None)."""
        return None if data is None else base64.b64encode(data).decode("ascii")

    def original_value(self) -> bytes | None:
        """The original message value."""
        return None if self.value_b64 is None else base64.b64decode(self.value_b64)
