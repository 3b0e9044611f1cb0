"""Event validation: every failure class of the contract, and what a valid event exposes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.contract.dead_letters import DeadLetterCode
from app.contract.events import Event, EventType, parse_event
from app.errors import InvalidEventError
from app.serialization import dumps
from tests.factories import event_bytes, event_dict, make_event

LIMIT = 1 << 20


def _error(raw: bytes, limit: int = LIMIT) -> InvalidEventError:
    """The InvalidEventError that parsing `raw` raises."""
    with pytest.raises(InvalidEventError) as info:
        parse_event(raw, limit)
    return info.value


def test_valid_event_parses_and_keeps_the_raw_object() -> None:
    """A valid event gives the model and the object exactly as received."""
    event, received = parse_event(event_bytes(), LIMIT)
    assert event.event_type is EventType.ADD_ARTIFACT_ALIAS
    assert event.occurred_at == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert received == event_dict()


def test_event_properties() -> None:
    """collection_path, version strings and registry flag follow the contract."""
    event = make_event()
    assert event.collection_path == "acme/wandb-registry-model/mnist-classifier"
    assert event.is_registry_event
    assert event.version_string == "v3"
    assert event.artifact_version_string == "acme/wandb-registry-model/mnist-classifier:v3"
    assert not make_event(registry=None).is_registry_event


def test_extra_fields_are_kept() -> None:
    """Producers may add fields; they survive on the model and in the raw object."""
    event, received = parse_event(event_bytes(trace_id="t-1", artifact={"size": 10}), LIMIT)
    assert event.model_extra == {"trace_id": "t-1"}
    assert event.artifact.model_extra == {"size": 10}
    assert received["trace_id"] == "t-1"


def test_legacy_link_model_is_normalised() -> None:
    """LINK_MODEL is accepted as the legacy name of LINK_ARTIFACT."""
    source = {"entity": "acme", "project": "vision", "collection": "mnist", "version": 7}
    event = make_event(event_type="LINK_MODEL", source=source, alias=None)
    assert event.event_type is EventType.LINK_ARTIFACT
    assert event.source is not None
    assert event.source.version == 7


def test_not_json() -> None:
    """Bytes that are not JSON are refused with code not_json."""
    error = _error(b"{not json")
    assert error.code == DeadLetterCode.NOT_JSON
    assert "not valid JSON" in error.reason


def test_invalid_utf8_is_refused_not_crashing() -> None:
    """Invalid UTF-8 is refused with code not_utf8 and the byte offset."""
    error = _error(b'{"event_id": "\xff\xfe"}')
    assert error.code == DeadLetterCode.NOT_UTF8
    assert "byte 14" in error.reason


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[1, 2]", "an array"), (b'"text"', "a string"), (b"42", "a number"), (b"null", "null")],
)
def test_not_an_object(raw: bytes, kind: str) -> None:
    """JSON that is not an object is refused with code not_object, naming what it is."""
    error = _error(raw)
    assert error.code == DeadLetterCode.NOT_OBJECT
    assert kind in error.reason


def test_over_size_is_checked_before_parsing() -> None:
    """An oversized message is refused as too_large even when it is not JSON at all."""
    error = _error(b"x" * 2048, limit=1024)
    assert error.code == DeadLetterCode.TOO_LARGE
    assert "2048 bytes" in error.reason
    assert "1024" in error.reason


def test_empty_message() -> None:
    """An empty message is refused with code empty."""
    assert _error(b"").code == DeadLetterCode.EMPTY


def test_unknown_event_type() -> None:
    """An unknown event_type is refused with its own code and names the value."""
    error = _error(event_bytes(event_type="RUN_METRIC"))
    assert error.code == DeadLetterCode.UNKNOWN_EVENT_TYPE
    assert "RUN_METRIC" in error.reason
    assert error.reason.startswith("event_type:")


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"event_id": None}, "event_id"),
        ({"event_type": None}, "event_type"),
        ({"occurred_at": None}, "occurred_at"),
        ({"entity": None}, "entity"),
        ({"project": None}, "project"),
        ({"artifact": None}, "artifact"),
        ({"alias": None}, "alias"),
    ],
)
def test_missing_required_field(overrides: dict[str, None], path: str) -> None:
    """A missing required field is refused with code missing_field, naming the field."""
    error = _error(event_bytes(**overrides))
    assert error.code == DeadLetterCode.MISSING_FIELD
    assert error.reason.startswith(f"{path}: ")


def test_missing_nested_field_names_its_path() -> None:
    """A missing nested field is named by its dotted path."""
    data = event_dict()
    del data["artifact"]["version"]
    error = _error(dumps(data))
    assert error.code == DeadLetterCode.MISSING_FIELD
    assert error.reason == "artifact.version: Field required"


def test_link_artifact_needs_source() -> None:
    """LINK_ARTIFACT without source is refused, naming source."""
    error = _error(event_bytes(event_type="LINK_ARTIFACT"))
    assert error.code == DeadLetterCode.MISSING_FIELD
    assert error.reason.startswith("source: ")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"artifact": {"version": "x"}}, "artifact.version: Input should be a valid integer"),
        ({"artifact": {"version": True}}, "artifact.version: Input should be a valid integer"),
        ({"artifact": {"version": -1}}, "artifact.version: Input should be greater than or equal"),
        ({"occurred_at": "2026-11-26T10:00:00"}, "occurred_at: Input should have timezone info"),
        ({"occurred_at": 1700000000}, "occurred_at: Input should be an RFC 3339 timestamp"),
        ({"occurred_at": "yesterday"}, "occurred_at: Input should be a valid datetime"),
        ({"event_id": ""}, "event_id: String should have at least 1 character"),
        ({"event_id": "x" * 129}, "event_id: String should have at most 128 characters"),
        ({"event_id": "a\nb"}, "event_id: must be printable characters only"),
        ({"entity": "a/b"}, "entity: must not contain '/'"),
        (
            {"artifact": {"aliases": ["ok", 5]}},
            "artifact.aliases.1: Input should be a valid string",
        ),
        ({"artifact": {"metadata": [1]}}, "artifact.metadata: Input should be a valid dictionary"),
        ({"alias": "a\x00"}, "alias: must not contain control characters"),
    ],
)
def test_wrong_field_names_path_and_problem(overrides: dict[str, object], expected: str) -> None:
    """A field of the wrong type or shape is refused with code invalid_field and its path."""
    error = _error(event_bytes(**overrides))
    assert error.code == DeadLetterCode.INVALID_FIELD
    assert error.reason.startswith(expected)


def test_naive_datetime_object_refused_in_python() -> None:
    """Building an Event from Python refuses a naive datetime too."""
    data = event_dict()
    data["occurred_at"] = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="timezone"):
        Event.model_validate(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    """Any bytes either parse or raise InvalidEventError with a known code."""
    code: str | None = None
    try:
        parse_event(raw, 1024)
    except InvalidEventError as exc:
        code = exc.code
    assert code is None or code in set(DeadLetterCode)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_arbitrary_json_never_crashes(value: object) -> None:
    """Any JSON value either parses or raises InvalidEventError."""
    reason = "parsed"
    try:
        parse_event(dumps(value), 1 << 16)
    except InvalidEventError as exc:
        reason = exc.reason
    assert reason
