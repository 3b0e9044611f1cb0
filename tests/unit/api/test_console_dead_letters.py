"""Dead-letter records as the console lists them."""

from __future__ import annotations

from datetime import UTC, datetime

from app.api.console import dead_letter_row
from app.contract.dead_letters import DeadLetter
from app.serialization import dumps


def letter(value: bytes, **overrides: object) -> bytes:
    """A dead letter of `value` as the topic holds it."""
    fields: dict[str, object] = {
        "value_b64": DeadLetter.encode(value),
        "key_b64": None,
        "source_topic": "registry-events",
        "source_partition": 2,
        "source_offset": 41,
        "reason": "not valid JSON: unexpected character",
        "error_code": "not_json",
        "failed_at": datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        **overrides,
    }
    return dumps(DeadLetter.model_validate(fields).model_dump(mode="json"))


def test_a_dead_letter_shows_its_reason_place_and_value() -> None:
    """Code, reason, where it came from and the start of the original value."""
    row = dead_letter_row(letter(b"{not json"), 0, 7)
    assert row.error_code == "not_json"
    assert row.reason == "not valid JSON: unexpected character"
    assert row.source == "registry-events[2]@41"
    assert row.failed_at == "2026-12-01T10:00:00Z"
    assert row.preview == "{not json"


def test_a_long_or_truncated_value_is_cut_and_marked() -> None:
    """Only the start of a long value is shown, with an ellipsis."""
    assert dead_letter_row(letter(b"x" * 1000), 0, 0).preview == "x" * 300 + " ..."
    kept = dead_letter_row(letter(b"short", value_truncated=True), 0, 0)
    assert kept.preview.endswith(" ...")


def test_a_record_that_is_not_a_dead_letter_says_so() -> None:
    """Garbage on the topic is a row saying where it is, not an error page."""
    row = dead_letter_row(b"garbage", 3, 9)
    assert row.error_code == "unreadable"
    assert "partition 3 offset 9" in row.source
