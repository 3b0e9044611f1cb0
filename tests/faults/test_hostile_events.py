"""Scenario 4: hostile messages on the event topics, interleaved with good events.

Every bad message becomes exactly one dead letter (sent bad == dead letters), the
worker never stops, and every good event still yields its jobs. A 10 MB value is
refused by the broker at produce time with a clear error; a value just over the
1 MiB event limit reaches the dead-letter topic whole.
"""

from __future__ import annotations

import asyncio
import base64
import random
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from app.core.matching import AutomationIndex
from app.core.pipeline import MemoryAliasStore, Pipeline, SourceInfo
from app.kafka.clients import produce
from app.serialization import dumps
from app.settings import Settings
from tests.faults.report import Report
from tests.faults.support import (
    FaultWorker,
    PacedProducer,
    apply,
    event_key,
    expected_jobs,
    fault_automations,
    job_figures,
    job_id_of,
    job_topics,
    records_of,
    topic_config,
    workload,
)
from tests.support import TopicReader

GOOD = 300


def is_dead_letter(settings: Settings, raw: bytes | None) -> bool:
    """Whether the workers' own pipeline refuses this message (a precondition, offline)."""
    pipeline = Pipeline(AutomationIndex(), settings.action_topics, settings.max_event_bytes)
    result = pipeline.process(raw, aliases=MemoryAliasStore(), source=SourceInfo("t"))
    return result.dead_letter is not None


def nested(depth: int) -> bytes:
    """`depth` nested arrays."""
    return b"[" * depth + b"]" * depth


def hand_made(settings: Settings, good: dict[str, Any]) -> list[tuple[str, bytes | None]]:
    """Hand-made hostile messages: (what, value)."""
    raw = dumps(good)
    meta = dumps({**good, "artifact": {**good["artifact"], "metadata": {"x": "@@"}}})
    limit = settings.max_event_bytes
    return [
        ("random bytes", bytes(random.Random(7).randrange(256) for _ in range(4096))),
        ("invalid UTF-8", b'{"event_id": "\xff\xfe\xfd"}'),
        ("overlong UTF-8", raw.replace(b'"acme"', b'"ac\xc0\xafme"')),
        ("UTF-16", raw.decode().encode("utf-16")),
        ("UTF-8 BOM", b"\xef\xbb\xbf" + raw),
        ("100k nested arrays", nested(100_000)),
        ("100k nested arrays in metadata", meta.replace(b'"@@"', nested(100_000))),
        ("300 nested arrays in metadata", meta.replace(b'"@@"', nested(300))),
        ("lone surrogate", meta.replace(b'"@@"', b'"\\udc00"')),
        ("NUL in entity", dumps({**good, "entity": "ac\x00me"})),
        ("RTL override and slash in entity", dumps({**good, "entity": "ac\u202eme/x"})),
        ("duplicate keys", raw[:-1] + b',"event_type":"CREATE_ARTIFACT"}'),
        ("duplicate keys behind whitespace", raw[:-1] + b',"event_id" : "other"}'),
        (
            "huge alias array",
            dumps({**good, "artifact": {**good["artifact"], "aliases": ["a"] * 50_000}}),
        ),
        ("version as string", dumps({**good, "artifact": {**good["artifact"], "version": "3"}})),
        ("version as bool", dumps({**good, "artifact": {**good["artifact"], "version": True}})),
        ("numeric timestamp", dumps({**good, "occurred_at": 1764151200})),
        ("unknown event type", dumps({**good, "event_type": "DROP_TABLE"})),
        ("array", b"[1, 2, 3]"),
        ("null", b"null"),
        ("empty", b""),
        ("tombstone", None),
        ("NaN", meta.replace(b'"@@"', b"NaN")),
        ("trailing garbage", raw + b"}"),
        ("just over the 1 MiB limit", meta.replace(b'"@@"', b'"' + b"x" * limit + b'"')),
        ("twice the limit", meta.replace(b'"@@"', b'"' + b"y" * (2 * limit) + b'"')),
    ]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=40,
)
MUTATED_FIELD = st.tuples(
    st.sampled_from(["event_id", "event_type", "occurred_at", "entity", "project", "artifact"]),
    JSON_VALUES,
)
HOSTILE = st.one_of(
    st.binary(min_size=1, max_size=2048).map(lambda b: ("bytes", b)),
    JSON_VALUES.map(lambda v: ("json", dumps(v))),
    MUTATED_FIELD.map(lambda pair: ("wrong type", pair)),
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)).map(lambda p: ("flipped byte", p)),
)


def generate(count: int, seed_value: int) -> list[tuple[str, Any]]:
    """`count` hostile messages explored by hypothesis (generation only, no shrinking)."""
    collected: list[tuple[str, Any]] = []

    @seed(seed_value)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(HOSTILE)
    def collect(message: tuple[str, Any]) -> None:
        collected.append(message)

    collect()
    return collected


def test_hostile_messages_all_reach_the_dead_letter_topic_and_good_events_still_fire(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    tmp_path: Path,
    fault_report: Report,
) -> None:
    """Hypothesis-made and hand-made bad messages: one dead letter each; the worker goes on."""
    settings_ = fault_settings
    # docs/decisions.md: event topics take 4x the event limit + 64 KiB, no more.
    for topic in (settings_.registry_events_topic, settings_.artifact_events_topic):
        limit = topic_config(settings_.kafka_bootstrap_servers, topic, "max.message.bytes")
        assert limit == str(settings_.max_record_bytes), (
            f"{topic} was created with max.message.bytes={limit}, not "
            f"{settings_.max_record_bytes} (app/kafka/admin.py topic_specs)"
        )
    seed_value = random.randrange(2**32)
    generated = generate(250, seed_value)
    automations = fault_automations(uid)
    apply(settings_, automations)
    good = workload(GOOD, prefix=f"good-{uid}")
    expected = expected_jobs(automations, good, tmp_path)
    template = good[0]

    hand = hand_made(settings_, template)
    bad: list[tuple[str, bytes | None]] = list(hand)
    accepted = [kind for kind, raw in bad if not is_dead_letter(settings_, raw)]
    assert accepted == [], "every hand-made message is invalid (checked offline)"
    candidates: list[tuple[str, bytes | None]] = []
    for kind, item in generated:
        if kind == "wrong type":
            name, value = item
            candidates.append((kind, dumps({**template, name: value})))
        elif kind == "flipped byte":
            position, byte = item
            flipped = bytearray(dumps(template))
            flipped[position % len(flipped)] = byte
            candidates.append((kind, bytes(flipped)))
        else:
            candidates.append((kind, item))
    # A generated message may happen to be a valid event; only refused ones count as bad.
    bad.extend((kind, raw) for kind, raw in candidates if is_dead_letter(settings_, raw))
    assert len(bad) >= 150, (
        f"hypothesis' batch is mostly invalid by construction (seed {seed_value})"
    )
    good_records = records_of(settings_, good)
    stream: list[tuple[str, bytes | None, bytes | None]] = []
    rng = random.Random(uid)
    for i, (_, raw) in enumerate(bad):
        topic = settings_.registry_events_topic if i % 2 else settings_.artifact_events_topic
        # Kafka needs a key or a value: a tombstone is always keyed.
        key = rng.choice([None, event_key(template), b"\xff"]) if raw is not None else b"k"
        stream.append((topic, key, raw))
    stream.extend(good_records)
    rng.shuffle(stream)

    topics = [*job_topics(settings_, uid), settings_.dlq_topic]
    wanted = {job.job_id for job in expected}
    with TopicReader(settings_.kafka_bootstrap_servers, topics, key=job_id_of) as reader:
        worker = start_fault_worker(name="hostile")
        producer = PacedProducer(
            settings_.kafka_bootstrap_servers,
            stream,
            batch=50,
            pause=0.02,
            max_request_size=settings_.max_record_bytes,
        ).start()
        producer.join(180)
        # Mid-stream refusal: a 10 MB value never reaches the topic.
        with pytest.raises(MessageSizeTooLargeError) as refused:
            asyncio.run(
                produce(
                    settings_.kafka_bootstrap_servers,
                    settings_.registry_events_topic,
                    [(None, b'{"blob": "' + b"z" * (10 * 1024 * 1024) + b'"}')],
                    max_request_size=16 * 1024 * 1024,
                )
            )
        assert worker.http_status("/healthz") == 200, "alive while the stream runs"
        done = reader.wait(lambda r: r.count(settings_.dlq_topic) >= len(bad), timeout=120)
        jobs_done = reader.wait(lambda r: r.has_all(wanted), timeout=120)
        reader.wait(lambda r: False, timeout=2.0)  # nothing more must arrive
        dead = [r.json() for r in reader.records(settings_.dlq_topic)]
        job_records = [r for r in reader.records() if r.topic != settings_.dlq_topic]

    figures = job_figures(expected, job_records)
    fault_report.add(
        "4. hostile events",
        events_sent=len(bad) + len(good),
        **figures.columns(),
        dead_letters=len(dead),
        notes=(
            f"{len(bad)} bad ({len(hand)} hand-made, rest hypothesis, "
            f"seed {seed_value}) "
            f"+ {len(good)} good; 10 MB value refused by the broker at produce time; "
            f"codes {dict(sorted(Counter(d['error_code'] for d in dead).items()))}"
        ),
    )
    assert "larger than" in str(refused.value) or "MessageSizeTooLarge" in repr(refused.value)
    assert done, f"dead letters: {len(dead)} of {len(bad)}"
    assert len(dead) == len(bad), f"sent bad == dead letters (seed {seed_value})"
    sent = Counter(
        raw for _, raw in bad if raw is None or len(raw) <= 2 * settings_.max_event_bytes
    )
    kept = Counter(
        None if d["value_b64"] is None else base64.b64decode(d["value_b64"])
        for d in dead
        if not d["value_truncated"]
    )
    assert kept == sent, "every dead letter keeps its original, byte for byte"
    truncated = [d for d in dead if d["value_truncated"]]
    assert [d["error_code"] for d in truncated] == ["too_large"]
    assert all(d["reason"] for d in dead)
    over_limit = [d for d in dead if d["error_code"] == "too_large" and not d["value_truncated"]]
    assert len(over_limit) == 1, "the just-over-1-MiB event reached events.dlq whole"
    assert jobs_done
    assert figures.lost == []
    assert figures.unexpected == []
    assert worker.alive
    assert worker.http_status("/healthz") == 200
    assert worker.http_status("/readyz") == 200
    assert "Crashed" not in worker.log_path.read_text(errors="replace"), "no agent crashed"


def post(url: str, body: bytes, *, chunked: bool = False) -> int:
    """POST a body; the HTTP status (a refused connection counts as 0)."""
    headers = {"Content-Type": "application/json"}
    data: bytes | Any = body
    if chunked:  # no Content-Length: the server must stop reading at its limit
        data = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        headers["Transfer-Encoding"] = "chunked"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, ConnectionError):
        return 0


def test_hostile_bodies_on_post_events_are_refused_with_4xx_and_never_reach_kafka(
    fault_settings: Settings,
    start_fault_worker: Callable[..., FaultWorker],
    uid: str,
    tmp_path: Path,
    fault_report: Report,
) -> None:
    """POST /events: every hostile body gets a 4xx and writes nothing; good ones get 202."""
    settings_ = fault_settings
    good = workload(40, prefix=f"http-{uid}")
    template = good[0]
    bodies = [raw for _, raw in hand_made(settings_, template) if raw is not None]
    bodies += [
        raw
        for kind, raw in generate(150, random.randrange(2**32))
        if kind in ("bytes", "json") and is_dead_letter(settings_, raw)
    ]
    worker = start_fault_worker(name="http")
    url = worker.url + "/events"
    statuses = Counter(post(url, body) for body in bodies)
    big = post(url, b'{"blob": "' + b"z" * (10 * 1024 * 1024) + b'"}')
    big_chunked = post(url, b'{"blob": "' + b"z" * (3 * 1024 * 1024) + b'"}', chunked=True)
    accepted = Counter(post(url, dumps(event)) for event in good)
    with TopicReader(
        settings_.kafka_bootstrap_servers,
        [settings_.registry_events_topic, settings_.artifact_events_topic],
    ) as reader:
        reader.wait(lambda r: r.count() >= len(good), timeout=30)
        reader.wait(lambda r: False, timeout=1.0)
        written = [r.json() for r in reader.records()]
    fault_report.add(
        "4b. hostile POST /events",
        events_sent=len(bodies) + 2 + len(good),
        notes=(
            f"{len(bodies)} hostile bodies: statuses {dict(sorted(statuses.items()))}; "
            f"10 MB body -> {big}, 3 MB chunked -> {big_chunked}; "
            f"{len(good)} good -> {dict(accepted)}; {len(written)} records reached Kafka"
        ),
    )
    assert set(statuses) <= {400, 413, 422}, statuses
    assert sum(statuses.values()) == len(bodies)
    assert big == 413
    assert big_chunked == 413
    assert accepted == Counter({202: len(good)})
    assert sorted(e["event_id"] for e in written) == sorted(e["event_id"] for e in good)
    assert worker.http_status("/healthz") == 200
    assert "Crashed" not in worker.log_path.read_text(errors="replace")
