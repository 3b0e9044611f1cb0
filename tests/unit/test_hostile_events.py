"""Hostile event bytes through the whole Pipeline: it never raises, and every bad message
becomes exactly one dead letter that keeps the original; good events still yield jobs."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.contract.dead_letters import DeadLetter, DeadLetterCode
from app.contract.events import MAX_EVENT_DEPTH
from app.contract.jobs import WebhookActionJob, parse_action_job
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, ProcessResult, SourceInfo
from app.serialization import dumps, loads
from tests.factories import ACTION_TOPICS, NOW, event_bytes, event_dict, make_automation

pytestmark = pytest.mark.faults

LIMIT = 64 * 1024
SOURCE = SourceInfo("registry-events", 1, 7, b"acme/p/c", [("h", b"\xff\x00")])
HYPOTHESIS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_PIPELINE = Pipeline(
    AutomationIndex(
        [
            make_automation(
                id="catch-all",
                action={
                    "type": "webhook",
                    "url": "https://ci.example.com/x",
                    "payload": '{"m": "${artifact_metadata.note}", "a": "${event_author}"}',
                },
            )
        ]
    ),
    ACTION_TOPICS,
    LIMIT,
    lambda: NOW,
)


def process(raw: bytes | None) -> ProcessResult:
    """One message through the shared pipeline with a fresh alias store."""
    return _PIPELINE.process(raw, aliases=MemoryAliasStore(), source=SOURCE)


def assert_one_outcome(raw: bytes | None, result: ProcessResult) -> None:
    """Exactly one of event / dead letter; a dead letter is well formed and keeps the bytes."""
    assert (result.event is None) != (result.dead_letter is None)
    if result.dead_letter is None:
        assert result.failures == []
        for out in result.outbounds:
            parse_action_job(out.value)
        return
    record = DeadLetter.model_validate_json(result.dead_letter)
    assert record.error_code in set(DeadLetterCode)
    assert record.reason
    assert record.source_topic == SOURCE.topic
    assert record.source_offset == SOURCE.offset
    assert record.headers[0].value_b64 == base64.b64encode(b"\xff\x00").decode()
    if raw is not None and len(raw) <= 2 * LIMIT:
        assert record.original_value() == raw
        assert record.value_truncated is False


def dead(raw: bytes | None) -> DeadLetter:
    """The dead letter of a message that must be refused."""
    result = process(raw)
    assert_one_outcome(raw, result)
    assert result.dead_letter is not None, f"accepted: {raw[:120] if raw else raw!r}"
    assert result.outbounds == []
    return DeadLetter.model_validate_json(result.dead_letter)


@HYPOTHESIS
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise_and_become_one_dead_letter(raw: bytes) -> None:
    """Random bytes: never an exception, always one well-formed dead letter."""
    result = process(raw)
    assert_one_outcome(raw, result)
    assert result.dead_letter is not None


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@HYPOTHESIS
@given(JSON)
def test_arbitrary_json_never_raises(value: Any) -> None:
    """Any JSON value: never an exception; a dead letter unless it is a valid event."""
    raw = dumps(value)
    assert_one_outcome(raw, process(raw))


REQUIRED = ("event_id", "event_type", "occurred_at", "entity", "project", "artifact", "alias")
WRONG = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


@HYPOTHESIS
@given(st.sampled_from(REQUIRED), WRONG)
def test_wrong_types_in_required_fields_are_dead_letters(name: str, value: Any) -> None:
    """A required field of the wrong type (or null) is refused, naming the field."""
    data = event_dict()
    data[name] = value
    record = dead(json.dumps(data).encode())
    assert record.error_code in {"missing_field", "invalid_field", "unknown_event_type"}
    assert name in record.reason or record.error_code == "unknown_event_type"


ARTIFACT_WRONG: dict[str, list[Any]] = {
    "version": ["3", 1.5, -1, True, None, 2**70],
    "collection": ["", "a/b", "a:b", "a\x00b", 7, "x" * 300],
    "aliases": ["latest", [1], ["a"] * 1001, [None]],
    "metadata": ["text", [1, 2], 3],
    "type": [None, "", "\n"],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, values in ARTIFACT_WRONG.items() for value in values],
)
def test_wrong_artifact_fields_are_dead_letters(field: str, value: Any) -> None:
    """Hand-made wrong types and values inside the artifact are refused, naming the field."""
    data = event_dict()
    data["artifact"][field] = value
    raw = dumps(data) if not (isinstance(value, int) and value > 2**63) else None
    if raw is None:  # orjson refuses to write it; hand-write the big number
        raw = dumps(data | {"artifact": {**data["artifact"], field: 0}}).replace(
            b'"version":0', b'"version":' + str(value).encode()
        )
    record = dead(raw)
    assert f"artifact.{field}" in record.reason


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    """`depth` nested arrays around a leaf."""
    return b"[" * depth + leaf + b"]" * depth


def with_metadata_value(value: bytes) -> bytes:
    """A valid event whose metadata.note is `value` (raw JSON)."""
    return event_bytes(artifact={"metadata": {"note": "@@"}}).replace(b'"@@"', value)


HAND_MADE: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty"),
    ("whitespace", b" \n\t ", "not_json"),
    ("null", b"null", "not_object"),
    ("string", b'"event"', "not_object"),
    ("array", b"[]", "not_object"),
    ("trailing garbage", event_bytes() + b"x", "not_json"),
    ("two documents", event_bytes() + event_bytes(), "not_json"),
    ("NaN", with_metadata_value(b"NaN"), "not_json"),
    ("infinity", with_metadata_value(b"1e400"), "not_json"),
    ("invalid UTF-8", b'{"event_id": "\xff\xfe"}', "not_utf8"),
    ("overlong UTF-8 slash", b'{"event_id": "\xc0\xaf"}', "not_utf8"),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + event_bytes(), "not_json"),
    ("UTF-16", event_bytes().decode().encode("utf-16"), "not_utf8"),
    ("lone high surrogate", with_metadata_value(b'"\\ud800"'), "not_json"),
    ("lone low surrogate", with_metadata_value(b'"x\\udfff"'), "not_json"),
    ("10k nested arrays", nested(10_000), "not_json"),
    ("100k nested objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "not_json"),
    ("nesting past the limit", with_metadata_value(nested(MAX_EVENT_DEPTH)), "invalid_field"),
    ("nesting orjson reads but cannot write", with_metadata_value(nested(300)), "invalid_field"),
    ("nesting at orjson's read limit", with_metadata_value(nested(1020)), "invalid_field"),
    (
        "duplicate top-level key",
        event_bytes()[:-1] + b',"event_type":"CREATE_ARTIFACT"}',
        "invalid_field",
    ),
    (
        "duplicate key in metadata",
        event_bytes(artifact={"metadata": {"note": "a"}}).replace(
            b'"note":"a"', b'"note":"a","note":"b"'
        ),
        "invalid_field",
    ),
    (
        "duplicate key behind whitespace",
        event_bytes().replace(b'"author":', b'"author" :')[:-1] + b',"author"\t:"mallory"}',
        "invalid_field",
    ),
    (
        "duplicate key spelled with an escape",
        event_bytes().replace(b'"author":', b'"\\u0061uthor":')[:-1] + b',"author":"mallory"}',
        "invalid_field",
    ),
    (
        "duplicate key beside a quote-colon string",
        event_bytes(artifact={"metadata": {"note": 'x":y'}})[:-1] + b',"alias":"staging"}',
        "invalid_field",
    ),
    ("NUL in entity", dumps(event_dict(entity="ac\x00me")), "invalid_field"),
    ("slash in collection", dumps(event_dict(artifact={"collection": "a/b"})), "invalid_field"),
    ("control char in event_id", dumps(event_dict(event_id="e\x07")), "invalid_field"),
    ("event_id too long", dumps(event_dict(event_id="e" * 129)), "invalid_field"),
    ("numeric timestamp", dumps(event_dict(occurred_at=1764151200)), "invalid_field"),
    ("naive timestamp", dumps(event_dict(occurred_at="2026-11-26T10:00:00")), "invalid_field"),
    ("unknown event type", dumps(event_dict(event_type="DELETE_EVERYTHING")), "unknown_event_type"),
    ("alias event without alias", dumps(event_dict(alias=None)), "missing_field"),
    ("link event without source", dumps(event_dict(event_type="LINK_ARTIFACT")), "missing_field"),
    ("just over the size limit", with_metadata_value(b'"' + b"x" * LIMIT + b'"'), "too_large"),
]


@pytest.mark.parametrize(
    ("raw", "code"), [(r, c) for _, r, c in HAND_MADE], ids=[n for n, *_ in HAND_MADE]
)
def test_hand_made_hostile_messages_are_dead_letters_with_their_code(raw: bytes, code: str) -> None:
    """Each hand-made hostile message becomes one dead letter with the expected code."""
    record = dead(raw)
    assert record.error_code == code, record.reason


def test_a_null_value_is_a_dead_letter() -> None:
    """A Kafka record without a value (None) is refused as empty."""
    assert dead(None).error_code == "empty"


def test_dead_letter_of_a_huge_message_is_truncated_but_sized() -> None:
    """Over twice the limit the original is kept in part, with its real size."""
    raw = b"x" * (3 * LIMIT)
    record = dead(raw)
    assert record.error_code == "too_large"
    assert record.value_truncated is True
    assert record.value_size == len(raw)
    assert record.original_value() == raw[:LIMIT]


def test_nesting_within_the_limit_is_accepted_and_its_job_is_readable() -> None:
    """An event nested exactly to the limit is valid and its job parses back."""
    result = process(with_metadata_value(nested(MAX_EVENT_DEPTH - 3)))
    assert result.event is not None, result.reason
    assert len(result.outbounds) == 1
    job = parse_action_job(result.outbounds[0].value)
    assert job.event["artifact"]["metadata"]["note"][0][0][0] is not None


def test_huge_arrays_in_metadata_are_kept_and_the_job_fits() -> None:
    """A metadata array filling most of the size limit is carried whole into the job."""
    values = list(range(12_000))
    result = process(event_bytes(artifact={"metadata": {"note": values}}))
    assert result.event is not None
    job = parse_action_job(result.outbounds[0].value)
    assert job.event["artifact"]["metadata"]["note"] == values


ODD = [
    "\u202eevil\u202c",  # right-to-left override
    "שלום עולם",  # RTL script
    "nul\x00inside",
    "\ufeffbom",
    "\u2028line\u2029para",
    "emoji \U0001f600 and zwj \u200d",
    'quote " backslash \\ brace ${event_id} $${x}',
    "</script><script>alert(1)</script>",
]


@pytest.mark.parametrize("text", ODD)
def test_odd_unicode_in_free_text_renders_literally_into_valid_json(text: str) -> None:
    """RTL, NUL, BOM, separators and template syntax in values: valid job, value unchanged."""
    # Labels such as `author` refuse control characters; metadata takes any text.
    author = text if all(" " <= ch != "\x7f" for ch in text) else "alice"
    raw = event_bytes(author=author, artifact={"metadata": {"note": text}})
    result = process(raw)
    assert result.event is not None, result.reason
    job = parse_action_job(result.outbounds[0].value)
    assert isinstance(job, WebhookActionJob)
    assert loads(job.action.payload) == {"m": text, "a": author}


@HYPOTHESIS
@given(st.text(), st.text())
def test_any_text_in_metadata_and_author_keeps_the_payload_valid_json(
    note: str, author: str
) -> None:
    """Whatever text an event carries, the rendered payload is valid JSON holding it verbatim."""
    try:
        raw = dumps(event_dict(author=author or "a", artifact={"metadata": {"note": note}}))
    except TypeError:  # lone surrogates: orjson refuses to write them, so no producer could
        return
    result = process(raw)
    assert_one_outcome(raw, result)
    if result.event is not None:
        assert len(result.outbounds) == 1
        job = parse_action_job(result.outbounds[0].value)
        assert isinstance(job, WebhookActionJob)
        payload = loads(job.action.payload)
        assert payload["m"] == note


def test_duplicate_free_events_with_tricky_strings_are_accepted() -> None:
    """Strings holding quote-colon sequences are not mistaken for duplicate keys."""
    note = 'a": "b", "c": "d'
    raw = json.dumps(event_dict(artifact={"metadata": {"note": note, '"k":': 1}})).encode()
    result = process(raw)
    assert result.event is not None, result.reason
    assert result.event.artifact.metadata["note"] == note
