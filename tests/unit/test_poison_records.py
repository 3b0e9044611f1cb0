"""Issue 18 regressions: no record stops the worker, every output fits its topic, strict input.

Each test names the defect it guards: undecodable header keys, dead letters and jobs
over their topic's limit, unbounded alias state and history, topics created without
the limits their records need, hidden characters in names, lax timestamps, integers
beyond 64 bits.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from app.contract.dead_letters import DeadLetterCode
from app.contract.events import parse_event
from app.core.history import execution_records, fit_history
from app.core.limits import KAFKA_DEFAULT_MAX_MESSAGE_BYTES, RecordLimits, record_budget
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, ProcessResult, SourceInfo, alias_update
from app.core.topics import dispatch_topics
from app.errors import InvalidEventError
from app.kafka.admin import dispatch_topic_specs, record_limits, topic_specs
from app.kafka.records import read_batches
from app.serialization import dumps, loads
from app.settings import Settings
from tests.factories import ACTION_TOPICS, event_bytes, event_dict, make_automation, make_event

pytestmark = pytest.mark.faults

LIMIT = 1024 * 1024
BAD_KEY = b"\xff\xfe-trace"


def settings() -> Settings:
    """Default settings (no environment needed: nothing here connects)."""
    return Settings(kafka_bootstrap_servers="127.0.0.1:1")


def pipeline(*automations: Any, **kwargs: Any) -> Pipeline:
    """A pipeline with the worker's limits for default settings."""
    s = settings()
    defaults: dict[str, Any] = {
        "limits": RecordLimits.from_settings(s),
        "dlq_topic": s.dlq_topic,
        "alias_cap": s.max_aliases_per_collection,
        "alias_topic": s.alias_pointers_topic,
    }
    return Pipeline(AutomationIndex(automations), ACTION_TOPICS, LIMIT, **{**defaults, **kwargs})


def dead(p: Pipeline, raw: bytes | None, source: SourceInfo) -> tuple[ProcessResult, Any]:
    """Process one record that must become a dead letter; the result and its JSON."""
    result = p.process(raw, aliases=MemoryAliasStore(), source=source)
    assert result.dead_letter is not None, result
    return result, loads(result.dead_letter)


# --- 1. header keys that are not UTF-8 ------------------------------------------------


def batch(
    records: list[tuple[int, bytes | None, bytes | None, list[Any]]], codec: int = 0
) -> bytes:
    """A record batch (format v2) as a producer writes it, header keys as raw bytes."""

    class RawKey(str):
        raw: bytes

        def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
            return self.raw

    def raw_key(data: bytes) -> str:
        key = RawKey(data.decode("utf-8", "replace"))
        key.raw = data
        return key

    builder = _DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=codec,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 24,
    )
    for offset, key, value, headers in records:
        builder.append(
            offset, 1_700_000_000_000 + offset, key, value, [(raw_key(k), v) for k, v in headers]
        )
    return bytes(builder.build())


def test_read_batches_keeps_a_header_key_that_is_not_utf8_as_bytes() -> None:
    """aiokafka raises on this batch; the lenient reader returns every record, key as bytes."""
    data = batch(
        [
            (0, b"k0", b"v0", [(b"ok", b"1")]),
            (1, b"k1", b"v1", [(BAD_KEY, b"span"), (b"ok", None)]),
            (2, None, None, []),
        ]
    )
    records = read_batches(data, "t", 3, 0)
    assert [r.offset for r in records] == [0, 1, 2]
    assert records[0].headers == (("ok", b"1"),)
    assert records[1].headers == ((BAD_KEY, b"span"), ("ok", None))
    assert (records[1].key, records[1].value) == (b"k1", b"v1")
    assert (records[2].key, records[2].value) == (None, None)
    assert all(r.topic == "t" and r.partition == 3 for r in records)


def test_read_batches_starts_at_the_position_and_leaves_a_partial_last_batch() -> None:
    """Records before the fetch position are skipped; a batch cut by the fetch is left."""
    first = batch([(0, b"a", b"0", []), (1, b"b", b"1", [(BAD_KEY, b"")])])
    second = batch([(0, b"c", b"2", [])])
    # The second batch's base offset is 2 (bytes 0..7 hold it).
    second = (2).to_bytes(8, "big") + second[8:]
    records = read_batches(first + second[:-3], "t", 0, 1)
    assert [r.offset for r in records] == [1]
    assert [r.offset for r in read_batches(first + second, "t", 0, 1)] == [1, 2]


def test_read_batches_decompresses_gzip_batches() -> None:
    """A compressed batch (gzip here) is read the same way."""
    data = batch([(0, b"k", b"v" * 1000, [(BAD_KEY, b"x")])], codec=1)
    (record,) = read_batches(data, "t", 0, 0)
    assert record.value == b"v" * 1000
    assert record.headers == ((BAD_KEY, b"x"),)


def test_a_record_with_an_undecodable_header_key_is_a_dead_letter_with_what_can_be_read() -> None:
    """The record becomes one dead letter: value, key, headers (key in base64), source."""
    raw = event_bytes()
    source = SourceInfo("registry-events", 2, 41, b"acme/x/y", [("ok", b"1"), (BAD_KEY, b"s")])
    result, letter = dead(pipeline(make_automation()), raw, source)
    assert result.error_code == "unreadable_header"
    assert DeadLetterCode.UNREADABLE_HEADER.value == "unreadable_header"
    assert "header 1" in letter["reason"]
    assert "not UTF-8" in letter["reason"]
    assert base64.b64decode(letter["value_b64"]) == raw
    assert base64.b64decode(letter["key_b64"]) == b"acme/x/y"
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "registry-events",
        2,
        41,
    )
    assert letter["headers"][0] == {
        "key": "ok",
        "value_b64": base64.b64encode(b"1").decode(),
        "key_b64": None,
        "value_size": 1,
        "value_truncated": False,
    }
    assert base64.b64decode(letter["headers"][1]["key_b64"]) == BAD_KEY
    assert letter["headers"][1]["key"] == BAD_KEY.decode("utf-8", "replace")
    assert result.outbounds == []
    assert result.event is None


def test_a_bytes_header_key_that_is_utf8_is_read_as_usual() -> None:
    """Only keys that are not UTF-8 are refused."""
    source = SourceInfo("registry-events", 0, 0, None, [(b"trace", b"1")])
    result = pipeline(make_automation()).process(
        event_bytes(), aliases=MemoryAliasStore(), source=source
    )
    assert result.dead_letter is None
    assert len(result.outbounds) == 1


# --- 2. every output sized against its topic's limit -----------------------------------


def test_a_dead_letter_of_a_2mb_value_and_a_1_5mb_header_fits_its_topic() -> None:
    """The issue's case: 3.5 MB in, a dead letter under the dead-letter topic's budget."""
    p = pipeline()
    value = b"v" * (2 * 1024 * 1024)
    header = bytes(range(256)) * (1536 * 4)  # 1.5 MiB
    source = SourceInfo("registry-events", 0, 7, b"acme/x/y", [("big", header)])
    result, letter = dead(p, value, source)
    budget = p.limits.budget(settings().dlq_topic)
    assert result.dead_letter is not None
    assert len(result.dead_letter) + len(result.dead_letter_key or b"") <= budget
    assert letter["value_truncated"] is False, "the 2 MB value fits whole"
    assert base64.b64decode(letter["value_b64"]) == value
    (kept,) = letter["headers"]
    assert kept["value_truncated"] is True
    assert kept["value_size"] == len(header)
    assert header.startswith(base64.b64decode(kept["value_b64"]))


def test_a_dead_letter_cuts_a_huge_key_and_many_headers_and_says_so() -> None:
    """A 3 MB key and 100,000 headers: cut with flags and real sizes; the Kafka key dropped."""
    p = pipeline()
    key = b"k" * (3 * 1024 * 1024)
    headers = [(f"h{i}", b"x" * 10) for i in range(100_000)]
    result, letter = dead(p, b"not json", SourceInfo("artifact-events", 1, 2, key, headers))
    assert result.dead_letter is not None
    assert len(result.dead_letter) <= p.limits.budget(settings().dlq_topic)
    assert result.dead_letter_key is None, "a cut key would not route like the original"
    assert letter["key_truncated"] is True
    assert letter["key_size"] == len(key)
    assert key.startswith(base64.b64decode(letter["key_b64"]))
    assert 0 < letter["headers_dropped"] < len(headers)
    assert len(letter["headers"]) + letter["headers_dropped"] == len(headers)
    assert base64.b64decode(letter["value_b64"]) == b"not json"


@pytest.mark.parametrize("size", [3 * LIMIT, 4 * LIMIT])
def test_a_value_as_large_as_the_event_topic_takes_makes_a_dead_letter_that_fits(
    size: int,
) -> None:
    """Up to the event topic's own limit: the dead letter is cut to fit, with its real size."""
    p = pipeline()
    raw = b'{"blob": "' + b"z" * size + b'"}'
    result, letter = dead(p, raw, SourceInfo("registry-events", 0, 0, b"k", [("a", b"b")]))
    assert result.dead_letter is not None
    assert len(result.dead_letter) + 1 <= p.limits.budget(settings().dlq_topic)
    assert letter["value_truncated"] is True
    assert letter["value_size"] == len(raw)
    assert raw.startswith(base64.b64decode(letter["value_b64"]))
    assert result.dead_letter_key == b"k"


def test_a_job_over_a_kafka_action_topics_default_limit_is_produced_no_job() -> None:
    """A kafka action's topic is assumed stock (1 MiB): a larger job is not sent, with why."""
    mirror = make_automation(
        id="mirror",
        action={
            "type": "kafka",
            "topic": "mirror",
            "payload": '{"m": "${artifact_metadata.blob}"}',
        },
    )
    hook = make_automation()
    p = pipeline(mirror, hook)
    raw = event_bytes(artifact={"metadata": {"blob": "b" * (LIMIT - 2000)}})
    result = p.process(raw, aliases=MemoryAliasStore(), source=SourceInfo("registry-events"))
    assert [o.automation_id for o in result.outbounds] == ["deploy-on-production"]
    ((automation_id, reason),) = result.failures
    assert automation_id == "mirror"
    assert "JobTooLargeError" in reason
    assert "topic 'mirror'" in reason
    assert f"max.message.bytes {KAFKA_DEFAULT_MAX_MESSAGE_BYTES}" in reason
    # The webhook job (a Hookstream topic, created with the larger limit) was sent.
    (out,) = result.outbounds
    assert len(out.value) > KAFKA_DEFAULT_MAX_MESSAGE_BYTES // 2
    assert len(out.value) + len(out.key) <= p.limits.budget(out.topic)
    (history,) = [r for r in execution_records(result, _now()) if r.key == b"mirror"]
    assert loads(history.value)["status"] == "FAILED"


def _now() -> datetime:
    return datetime(2026, 11, 26, tzinfo=UTC)


def test_an_execution_record_clips_a_long_failure_reason() -> None:
    """A history record stays small whatever the failure said."""
    p = pipeline(make_automation())
    processed = p.process(event_bytes(), aliases=MemoryAliasStore(), source=SourceInfo("t"))
    processed.outbounds.clear()
    processed.failures.append(("deploy-on-production", "E: " + "x" * 1_000_000))
    (record,) = execution_records(processed, _now())
    assert len(record.value) < 2000
    assert loads(record.value)["reason"].endswith("...")


def test_record_budget_leaves_room_for_batch_framing_and_compression() -> None:
    """The budget is below the limit by the framing and lz4's worst-case growth."""
    assert record_budget(KAFKA_DEFAULT_MAX_MESSAGE_BYTES) < KAFKA_DEFAULT_MAX_MESSAGE_BYTES - 5000
    assert record_budget(100) == 0
    limits = RecordLimits(producer=2 * LIMIT, default=LIMIT, topics={"big": 8 * LIMIT})
    assert limits.limit("big") == 2 * LIMIT, "never above the producer's max_request_size"
    assert limits.limit("other") == LIMIT


def test_history_is_cut_to_its_changelogs_record_limit_oldest_first() -> None:
    """A history of large executions loses its oldest ones until the record fits."""
    entry = {"job_id": "", "status": "FAILED", "error": "é" * 500, "reason": "r" * 500}
    value = {
        "automation_id": "a",
        "counters": {"matched": 1000},
        "executions": [{**entry, "job_id": f"j{i}"} for i in range(1000)],
    }
    fitted, dropped = fit_history(value, 200_000)
    assert len(dumps(fitted)) <= 200_000
    assert dropped > 0
    assert [e["job_id"] for e in fitted["executions"]] == [f"j{i}" for i in range(1000 - dropped)]
    assert fit_history(value, 100 * 1024 * 1024) == (value, 0)


# --- 3. alias pointers bounded per collection -------------------------------------------


def test_alias_pointers_are_capped_per_collection_oldest_set_first() -> None:
    """Past the cap the pointers set longest ago go; `latest`, set every time, stays."""
    store = MemoryAliasStore()
    for version in range(1, 6):
        event = make_event(
            event_type="CREATE_ARTIFACT",
            alias=None,
            artifact={"version": version, "aliases": ["latest", f"v-{version}"]},
        )
        _, dropped = alias_update(event, store, 3)
        assert dropped == (1 if version >= 3 else 0)
    assert store.data["acme/wandb-registry-model/mnist-classifier"] == {
        "v-4": 4,
        "v-5": 5,
        "latest": 5,
    }


def test_events_adding_a_thousand_long_aliases_each_keep_the_state_record_bounded() -> None:
    """The issue's case: the state record stays under its topic's budget; drops counted."""
    p = pipeline()
    store = MemoryAliasStore()
    dropped = 0
    for version in range(1, 7):
        aliases = [f"{version}-{i}-" + "a" * 240 for i in range(1000)]
        raw = event_bytes(
            event_type="CREATE_ARTIFACT",
            alias=None,
            artifact={"version": version, "aliases": aliases},
        )
        result = p.process(raw, aliases=store, source=SourceInfo("registry-events"))
        assert result.event is not None, result.reason
        dropped += result.aliases_dropped
    (pointers,) = store.data.values()
    assert len(pointers) == settings().max_aliases_per_collection == 1000
    assert dropped == 5000
    record = len(dumps("acme/wandb-registry-model/mnist-classifier")) + len(dumps(pointers))
    assert record <= p.limits.budget(settings().alias_pointers_topic)


def test_alias_state_is_also_bounded_by_bytes() -> None:
    """With a high cap the size bound still holds: the oldest pointers go."""
    store = MemoryAliasStore()
    event = make_event(
        event_type="CREATE_ARTIFACT",
        alias=None,
        artifact={"aliases": [f"{i:04d}" + "b" * 250 for i in range(1000)]},
    )
    _, dropped = alias_update(event, store, None, 100_000)
    (pointers,) = store.data.values()
    assert dropped > 0
    assert len(pointers) == 1000 - dropped
    assert len(dumps(pointers)) + 64 <= 100_000


# --- 4. topics created with the limits their records need ------------------------------


def test_every_topic_hookstream_writes_is_created_with_the_record_limit() -> None:
    """Jobs, dead letters, results, changelogs: max.message.bytes = max_record_bytes."""
    s = settings()
    specs = {spec.name: spec.configs for spec in topic_specs(s)}
    written = [
        *s.action_topics.values(),
        s.dlq_topic,
        s.actions_dlq_topic,
        s.action_results_topic,
        s.alias_pointers_topic,
        s.history_changelog_topic,
        s.registry_events_topic,
        s.artifact_events_topic,
    ]
    for name in written:
        assert specs[name]["max.message.bytes"] == str(s.max_record_bytes), name
    assert set(RecordLimits.from_settings(s).topics) <= set(specs)


# --- 5. names refuse every control and format character --------------------------------

HIDDEN = [
    "\x00",
    "\x1f",
    "\x7f",
    "\x80",
    "\x85",
    "\x9f",
    "\u00ad",
    "\u061c",
    "\u200b",
    "\u200d",
    "\u200e",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\U000e0041",
    "\U0001d173",
]


@pytest.mark.parametrize("char", HIDDEN)
@pytest.mark.parametrize("field", ["entity", "project", "registry", "collection", "source"])
def test_names_refuse_control_and_format_characters(field: str, char: str) -> None:
    """C0, DEL, C1, soft hyphen, bidi controls, zero-width, separators, BOM, tags."""
    name = f"ac{char}me"
    if field == "collection":
        overrides: dict[str, Any] = {"artifact": {"collection": name}}
    elif field == "source":
        overrides = {
            "event_type": "LINK_ARTIFACT",
            "source": {"entity": "acme", "project": name, "collection": "c", "version": 1},
        }
    else:
        overrides = {field: name}
    with pytest.raises(InvalidEventError) as refused:
        parse_event(event_bytes(**overrides), LIMIT)
    assert "control or format characters" in refused.value.reason


def test_names_keep_ordinary_unicode_and_labels_keep_format_characters() -> None:
    """Accents and emoji in names; a zero-width joiner in an alias (emoji sequences)."""
    event, _ = parse_event(event_bytes(entity="café-😀", alias="👩\u200d💻"), LIMIT)
    assert event.entity == "café-😀"
    assert event.alias == "👩\u200d💻"
    with pytest.raises(InvalidEventError, match="alias: must not contain control characters"):
        parse_event(event_bytes(alias="a\x85b"), LIMIT)


# --- 6. strict RFC 3339 and integers beyond 64 bits ------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        "1700000000",
        "-1",
        "2026-11-26T10:00Z",
        "2026-11-26T10:00:00+0530",
        "2026-11-26",
        "2026-11-26 10:00:00Z",
        "20261126T100000Z",
        "2026-W48-4T10:00:00Z",
        " 2026-11-26T10:00:00Z",
    ],
)
def test_timestamps_that_are_not_rfc3339_are_refused(stamp: str) -> None:
    """Numbers as text, missing seconds, +hhmm offsets, week dates, spaces: all refused."""
    with pytest.raises(InvalidEventError) as refused:
        parse_event(event_bytes(occurred_at=stamp), LIMIT)
    assert refused.value.reason.startswith("occurred_at: Input should be a valid datetime")


@pytest.mark.parametrize(
    "stamp", ["2026-11-26T10:00:00Z", "2026-11-26t10:00:00.5z", "2026-11-26T10:00:00.123456+05:30"]
)
def test_rfc3339_timestamps_are_accepted(stamp: str) -> None:
    """Z or an offset, optional fraction, T or t."""
    event, _ = parse_event(event_bytes(occurred_at=stamp), LIMIT)
    assert event.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    "number", ["18446744073709551616", "-9223372036854775809", "123456789012345678901234567890"]
)
def test_integers_beyond_64_bits_are_refused_with_a_reason(number: str) -> None:
    """orjson would read them as floats and the job would carry a changed number."""
    raw = event_bytes().replace(b'"accuracy":0.93', f'"accuracy":{number}'.encode())
    assert number.encode() in raw
    with pytest.raises(InvalidEventError) as refused:
        parse_event(raw, LIMIT)
    assert "does not fit 64 bits" in refused.value.reason
    assert refused.value.code == DeadLetterCode.INVALID_FIELD


def test_64_bit_integers_and_long_digit_strings_are_kept_exactly() -> None:
    """The largest 64-bit values stay integers in the job's event; digits in text stay text."""
    top, bottom = 2**64 - 1, -(2**63)
    raw = dumps(event_dict(artifact={"metadata": {"a": top, "b": bottom, "c": "9" * 40}}))
    p = pipeline(make_automation())
    result = p.process(raw, aliases=MemoryAliasStore(), source=SourceInfo("t"))
    (out,) = result.outbounds
    metadata = loads(out.value)["event"]["artifact"]["metadata"]
    assert metadata == {"a": top, "b": bottom, "c": "9" * 40}
    assert type(metadata["a"]) is int
    assert type(metadata["b"]) is int


def test_dispatcher_retry_topics_take_a_whole_job() -> None:
    """A retry record carries the job: its topics get the worker's record limit too."""
    s = settings()
    specs = {spec.name: spec.configs for spec in dispatch_topic_specs(s)}
    for kind in ("webhook", "notification"):
        for name in dispatch_topics(s, kind).retries:
            assert specs[name]["max.message.bytes"] == str(s.max_record_bytes), name


async def test_record_limits_fall_back_to_the_created_ones_when_the_broker_says_nothing() -> None:
    """No broker (or no DescribeConfigs permission): the worker still starts, sizing to
    the limits Hookstream creates its topics with."""
    s = settings()
    limits = await record_limits(s)
    assert limits == RecordLimits.from_settings(s)
