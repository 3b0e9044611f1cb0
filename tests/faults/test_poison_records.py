"""Scenario 9: no record a Kafka producer can write stops the worker (issue 18).

Records of every shape (any bytes in key, value and header keys and values, null
values, sizes up to the topic's limit, deep nesting, duplicate keys, odd numbers,
Unicode, header keys that are not UTF-8) go to both event topics among valid events,
on a broker with Kafka's stock size limits. Each record ends as exactly one dead letter
or as the jobs the offline evaluation predicts for it, and the worker never stops or
restarts (one process, one start, no crash in its log).
"""

from __future__ import annotations

import base64
import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import serialization
from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.serialization import dumps
from app.settings import Settings
from tests.faults.raw_producer import RawRecord, produce_raw
from tests.faults.report import Report
from tests.faults.support import (
    FaultWorker,
    apply,
    event_key,
    event_topic,
    expected_jobs,
    fault_automations,
    has_stock_size_limits,
    job_figures,
    job_id_of,
    job_topics,
    topic_config,
    workload,
)
from tests.support import TopicReader, wait_for

BAD_KEY = b"\xff\xfe-trace"


def _worker_starts(worker: FaultWorker) -> int:
    """How many times the worker process logged its start line."""
    return worker.log_path.read_text(errors="replace").count("Hookstream worker: web at")


def _dead_letters_by_source(reader: TopicReader, topic: str) -> dict[tuple[str, int, int], Any]:
    out: dict[tuple[str, int, int], Any] = {}
    for record in reader.records(topic):
        letter = record.json()
        out[(letter["source_topic"], letter["source_partition"], letter["source_offset"])] = letter
    return out


def test_a_header_key_that_is_not_utf8_is_a_dead_letter_and_the_worker_goes_past_it(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    tmp_path: Path,
    fault_report: Report,
) -> None:
    """Undecodable header keys between good events, both topics, one partition: no stop."""
    settings = fault_settings
    automations = fault_automations(uid)
    apply(settings, automations)
    good = workload(24, prefix=f"hdr-{uid}")
    expected = expected_jobs(automations, good, tmp_path)
    records: list[RawRecord] = []
    poisoned: list[int] = []
    for i, event in enumerate(good):
        records.append((event_topic(settings, event), event_key(event), dumps(event), []))
        if i % 4 == 1:
            # The same key as the good event: the same partition, between good events.
            poisoned.append(len(records))
            records.append(
                (
                    event_topic(settings, event),
                    event_key(event),
                    dumps({**event, "event_id": f"{event['event_id']}-poison"}),
                    [(b"ok", b"1"), (BAD_KEY, b"span-7")],
                )
            )
    topics = [*job_topics(settings, uid), settings.dlq_topic]
    wanted = {job.job_id for job in expected}
    with TopicReader(settings.kafka_bootstrap_servers, topics, key=job_id_of) as reader:
        worker = start_fault_worker(name="poison-headers")
        offsets = produce_raw(settings.kafka_bootstrap_servers, records, tmp_path)
        dead_done = reader.wait(lambda r: r.count(settings.dlq_topic) >= len(poisoned), 60)
        jobs_done = reader.wait(lambda r: r.has_all(wanted), 60)
        reader.wait(lambda r: False, timeout=1.0)
        letters = _dead_letters_by_source(reader, settings.dlq_topic)
        job_records = [r for r in reader.records() if r.topic != settings.dlq_topic]
    figures = job_figures(expected, job_records)
    fault_report.add(
        "9a. header keys that are not UTF-8",
        events_sent=len(records),
        **figures.columns(),
        dead_letters=len(letters),
        worker_stops=0 if worker.alive and _worker_starts(worker) == 1 else 1,
        notes=f"{len(poisoned)} records with header key {BAD_KEY!r} between good events",
    )
    assert dead_done, f"{len(letters)} of {len(poisoned)} dead letters:\n{worker.log_tail()}"
    assert len(letters) == len(poisoned)
    for index in poisoned:
        topic, key, value, _ = records[index]
        partition, offset = offsets[index]
        letter = letters[(topic, partition, offset)]
        assert letter["error_code"] == "unreadable_header"
        assert "not UTF-8" in letter["reason"]
        assert base64.b64decode(letter["value_b64"]) == value, "what can be read is kept"
        assert base64.b64decode(letter["key_b64"]) == key
        bad = letter["headers"][1]
        assert base64.b64decode(bad["key_b64"]) == BAD_KEY
        assert base64.b64decode(bad["value_b64"]) == b"span-7"
        assert letter["headers"][0]["key"] == "ok"
    assert jobs_done, f"{len(figures.lost)} jobs lost:\n{worker.log_tail()}"
    assert figures.lost == []
    assert figures.unexpected == []
    assert worker.alive
    assert _worker_starts(worker) == 1
    assert worker.http_status("/readyz") == 200
    assert "Crashed" not in worker.log_path.read_text(errors="replace")


# --- every shape --------------------------------------------------------------------


def _pipeline(settings: Settings) -> Pipeline:
    return Pipeline.from_settings(AutomationIndex(), settings)


def is_dead_letter(settings: Settings, raw: bytes | None, headers: list[Any]) -> bool:
    """Whether the workers' own pipeline refuses this record (offline)."""
    result = _pipeline(settings).process(
        raw, aliases=MemoryAliasStore(), source=SourceInfo("t", headers=headers)
    )
    return result.dead_letter is not None


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def shapes(settings: Settings, good: dict[str, Any], rng: random.Random) -> list[RawRecord]:
    """Hostile records of every shape a producer can write (topic filled in later)."""
    raw = dumps(good)
    meta = dumps({**good, "artifact": {**good["artifact"], "metadata": {"x": "@@"}}})
    key = event_key(good)
    limit = settings.max_event_bytes
    # The largest value the event topics take (their max.message.bytes), less headroom.
    topic_limit = settings.max_record_bytes - 8 * 1024

    def with_meta(value: bytes) -> bytes:
        return meta.replace(b'"@@"', value)

    odd_numbers = [
        b"1e400",
        b"-1e400",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"123456789012345678901234567890",
        b"-0",
        b"1E5",
        b"0.1e-400",
        b"1.0000000000000000000000001",
        b"NaN",
        b"Infinity",
        b"01",
        b"+1",
        b".5",
        b"0x10",
    ]
    unicode = [
        "caf\u00e9",
        "\u202eevil\u202c",
        "\ufeffbom",
        "\u2028line\u2029para",
        "emoji \U0001f600 zwj \u200d",
        "\x00nul",
        "\x85nel",
        "\U000e0041tag",
        "\ud800" * 0 + "\uffff",
    ]
    out: list[RawRecord] = [
        ("", key, None, []),  # tombstone
        ("", key, b"", []),
        ("", None, b"null", []),
        ("", key, os.urandom(4096), []),
        ("", os.urandom(64), raw, []),  # any key bytes: the event still counts
        ("", b"\x00" * 10_000, raw, []),
        ("", key, raw, [(os.urandom(16), os.urandom(32))]),
        ("", key, raw, [(b"\xc0\xaf", None)]),
        ("", key, raw, [(b"", b"")]),
        ("", key, raw, [(b"trace", None)] * 200),
        ("", key, raw, [(b"ok", os.urandom(512 * 1024))]),  # large header value
        ("", key, raw.replace(b'"acme"', b'"ac\xc0\xafme"'), []),
        ("", key, raw.decode().encode("utf-16"), []),
        ("", key, b"\xef\xbb\xbf" + raw, []),
        ("", key, with_meta(_nested(63)), []),
        ("", key, with_meta(_nested(64)), []),
        ("", key, with_meta(b"[" * 100_000 + b"]" * 100_000), []),
        ("", key, raw[:-1] + b',"event_id":"dup"}', []),
        ("", key, raw[:-1] + b',"artifact" : {}}', []),
        ("", key, with_meta(b'{"k":1,"k":2}'), []),
        ("", key, with_meta(b'"' + b"x" * (limit - len(meta)) + b'"'), []),
        ("", key, with_meta(b'"' + b"y" * (2 * limit) + b'"'), []),
        ("", key, with_meta(b'"' + b"z" * (topic_limit - len(meta)) + b'"'), []),
        # A 2 MB value with a 1.5 MB header: the dead letter must still fit.
        ("", key, b"v" * (2 * 1024 * 1024), [(b"big", os.urandom(1024 * 1024 + 512 * 1024))]),
        ("", os.urandom(1024 * 1024), b"not json", []),
        ("", key, dumps({**good, "occurred_at": "1700000000"}), []),
        ("", key, dumps({**good, "occurred_at": "-1"}), []),
        ("", key, dumps({**good, "occurred_at": "2026-11-26T10:00Z"}), []),
        ("", key, dumps({**good, "occurred_at": "2026-11-26T10:00:00+0530"}), []),
        ("", key, dumps({**good, "occurred_at": 1764151200}), []),
    ]
    out.extend(("", key, with_meta(number), []) for number in odd_numbers)
    for text in unicode:
        out.append(("", key, dumps({**good, "entity": text}), []))
        out.append(("", key, with_meta(dumps(text)), []))
    # Any bytes anywhere, at random.
    for _ in range(60):
        value = bytearray(raw)
        for _ in range(rng.randrange(1, 4)):
            value[rng.randrange(len(value))] = rng.randrange(256)
        headers: list[tuple[bytes, bytes | None]] = [
            (os.urandom(rng.randrange(0, 8)), os.urandom(rng.randrange(0, 8)))
        ]
        out.append(("", os.urandom(rng.randrange(0, 16)) or None, bytes(value), headers))
    return out


def test_records_of_every_shape_end_as_one_job_set_or_one_dead_letter_and_never_stop(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    tmp_path: Path,
    fault_report: Report,
) -> None:
    """Every shape on both event topics, on a stock-limit broker: one outcome each, no stop."""
    settings = fault_settings
    bootstrap = settings.kafka_bootstrap_servers
    assert has_stock_size_limits(bootstrap), "the fault suite runs on a stock-limit broker"
    for topic in (*settings.action_topics.values(), settings.alias_pointers_topic):
        limit = topic_config(bootstrap, topic, "max.message.bytes")
        assert limit == str(settings.max_record_bytes), f"{topic}: max.message.bytes {limit}"
    automations = fault_automations(uid)
    apply(settings, automations)
    rng = random.Random(uid)
    good = workload(120, prefix=f"shape-{uid}")
    template = good[0]
    records: list[RawRecord] = []
    # (index in records, what the record must become): "dead" or its event's jobs.
    outcome: dict[int, str] = {}
    valid_events: list[dict[str, Any]] = []
    hostile = shapes(settings, template, rng)
    for n, (_, shape_key, shape_value, headers) in enumerate(hostile):
        for topic in (settings.registry_events_topic, settings.artifact_events_topic):
            key, value = shape_key, shape_value
            if value is None and key is None:
                key = b"k"
            dead = is_dead_letter(settings, value, list(headers))
            if not dead and value is not None:
                # A hostile shape that is a valid event (odd key bytes, say) gets an id of
                # its own, of the same length, so that its size does not change.
                old_id = template["event_id"].encode()
                new_id = old_id[:-6] + f"v{n:04d}{topic[0]}".encode()
                value = value.replace(old_id, new_id)
                valid_events.append(serialization.loads(value))
            outcome[len(records)] = "dead" if dead else "jobs"
            records.append((topic, key, value, headers))
    for event in good:
        outcome[len(records)] = "jobs"
        records.append((event_topic(settings, event), event_key(event), dumps(event), []))
        valid_events.append(event)
    order = list(range(len(records)))
    rng.shuffle(order)
    shuffled = [records[i] for i in order]
    outcome = {new: outcome[old] for new, old in enumerate(order)}
    expected = expected_jobs(automations, valid_events, tmp_path)
    wanted = {job.job_id for job in expected}
    dead_expected = sum(1 for kind in outcome.values() if kind == "dead")

    topics = [*job_topics(settings, uid), settings.dlq_topic]
    with TopicReader(bootstrap, topics, key=job_id_of) as reader:
        worker = start_fault_worker(name="every-shape")
        offsets = produce_raw(bootstrap, shuffled, tmp_path)
        dead_done = reader.wait(lambda r: r.count(settings.dlq_topic) >= dead_expected, 180)
        jobs_done = reader.wait(lambda r: r.has_all(wanted), 120)
        reader.wait(lambda r: False, timeout=2.0)
        letters = _dead_letters_by_source(reader, settings.dlq_topic)
        dead_count = reader.count(settings.dlq_topic)
        job_records = [r for r in reader.records() if r.topic != settings.dlq_topic]
    figures = job_figures(expected, job_records)
    starts = _worker_starts(worker)
    log_text = worker.log_path.read_text(errors="replace")
    stops = 0 if worker.alive and starts == 1 and "Crashed" not in log_text else 1
    codes = Counter(letter["error_code"] for letter in letters.values())
    fault_report.add(
        "9. records of every shape (stock-limit broker)",
        events_sent=len(shuffled),
        **figures.columns(),
        dead_letters=dead_count,
        worker_stops=stops,
        notes=(
            f"{len(hostile)} shapes x 2 topics + {len(good)} good; expected dead "
            f"{dead_expected}, jobs {len(wanted)}; worker starts {starts}; "
            f"codes {dict(sorted(codes.items()))}"
        ),
    )
    assert dead_done, f"dead letters {dead_count} of {dead_expected}:\n{worker.log_tail()}"
    assert dead_count == dead_expected, "exactly one dead letter per refused record"
    for index, kind in outcome.items():
        topic, _, value, _ = shuffled[index]
        partition, offset = offsets[index]
        letter = letters.get((topic, partition, offset))
        if kind == "dead":
            assert letter is not None, f"record {index} at {topic}[{partition}]@{offset}"
            assert letter["reason"]
            if not letter["value_truncated"]:
                kept = letter["value_b64"]
                assert (None if kept is None else base64.b64decode(kept)) == value
            else:
                assert letter["value_size"] == len(value or b"")
        else:
            assert letter is None, f"a valid record became a dead letter: {letter}"
    assert jobs_done, f"{len(figures.lost)} jobs lost:\n{worker.log_tail()}"
    assert figures.lost == []
    assert figures.unexpected == []
    assert figures.split_pairs == [], "one job set per event: every copy has its job_id"
    assert stops == 0, worker.log_tail(80)
    assert wait_for(lambda: worker.http_status("/readyz") == 200, 30), worker.log_tail(80)
